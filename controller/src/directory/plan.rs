//! What a directory sync would change (sans-IO): from the people the
//! directory lists and Porta's users, the changes that make Porta follow
//! the directory, and whether they cross the safety threshold.
//!
//! Rules (see the module above for why suspend, not revoke):
//! * a person in at least one mapped group, enabled in the directory, is a
//!   Porta user in exactly the mapped groups they are in (memberships of
//!   groups the directory does not map are left as they are);
//! * a person not yet in Porta is created; a Porta user of the same name
//!   made by hand is adopted (it follows the directory from then on);
//! * a directory-managed user who is disabled there, gone from it, or in
//!   no mapped group any more is disabled and marked suspended; a
//!   suspended user who is back is enabled; a user an admin disabled stays
//!   disabled;
//! * people with a login Porta cannot use as a name are skipped, with the
//!   reason, and change nothing.

use crate::store::records::{DirectoryLink, UserRecord};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One person as the directory describes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// The entry's DN.
    pub dn: String,
    /// The login attribute (the Porta user name).
    pub login: String,
    /// The display name ("" if the entry has none).
    pub display_name: String,
    /// The e-mail address ("" if none).
    pub email: String,
    /// The preferred language, as the directory writes it ("" if none).
    pub language: String,
    /// Disabled in the directory.
    pub disabled: bool,
    /// The Porta groups their mapped directory groups give them.
    pub groups: BTreeSet<String>,
}

/// What one read of the directory found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Everyone the people filter matched under the base DN.
    pub people: Vec<Person>,
}

/// What happens to one user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A new Porta user.
    Create,
    /// Name, e-mail, language or groups follow the directory.
    Update,
    /// Suspended: disabled, devices cut off at the gateways.
    Disable,
    /// Back from a suspension.
    Enable,
}

impl Action {
    /// As shown in tables and the admin log.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Disable => "disable",
            Action::Enable => "enable",
        }
    }
}

/// One user's change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// What happens.
    pub action: Action,
    /// The user as Porta has them now (`None` for a new user).
    pub before: Option<UserRecord>,
    /// The user after the change.
    pub after: UserRecord,
    /// Why, for a disable or enable; "" otherwise.
    pub reason: String,
}

impl Change {
    /// The user's name.
    pub fn user(&self) -> &str {
        &self.after.name
    }

    /// Porta groups the change adds.
    pub fn groups_added(&self) -> Vec<String> {
        let before = self.before.as_ref().map(|u| &u.groups);
        self.after
            .groups
            .iter()
            .filter(|g| before.is_none_or(|b| !b.contains(*g)))
            .cloned()
            .collect()
    }

    /// Porta groups the change removes.
    pub fn groups_removed(&self) -> Vec<String> {
        let Some(before) = &self.before else {
            return Vec::new();
        };
        before
            .groups
            .difference(&self.after.groups)
            .cloned()
            .collect()
    }
}

/// A person the sync leaves out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Their DN.
    pub dn: String,
    /// Why.
    pub reason: String,
}

/// Everything one sync would change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Changes, by user name.
    pub changes: Vec<Change>,
    /// People left out.
    pub skipped: Vec<Skipped>,
    /// Entries the directory returned.
    pub directory_entries: usize,
    /// Directory-managed users enabled before the sync (the threshold's
    /// base).
    pub synced_users: usize,
}

impl Plan {
    /// How many users the plan disables.
    pub fn disables(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| c.action == Action::Disable)
            .count()
    }

    /// The share of synced users the plan disables.
    pub fn disable_fraction(&self) -> f64 {
        if self.synced_users == 0 {
            return 0.0;
        }
        self.disables() as f64 / self.synced_users as f64
    }

    /// Why the plan must not be applied without a human's `--force`, if it
    /// disables more than `max_fraction` of the synced users.
    pub fn refusal(&self, max_fraction: f64) -> Option<String> {
        let disables = self.disables();
        (disables > 0 && self.disable_fraction() > max_fraction).then(|| {
            format!(
                "the sync would disable {disables} of {} synced users ({:.0}%), more than \
                 max_disable_fraction allows ({:.0}%); nothing was changed. Look at the plan \
                 (`portactl directory sync --dry-run`) and apply it with \
                 `portactl directory sync --force` if it is right",
                self.synced_users,
                self.disable_fraction() * 100.0,
                max_fraction * 100.0
            )
        })
    }
}

/// The changes that make `users` follow `snapshot`. `mapped` holds every
/// Porta group the config maps to; `now` stamps created users.
pub fn plan(
    snapshot: &Snapshot,
    users: &[UserRecord],
    mapped: &BTreeSet<String>,
    now: u64,
) -> Plan {
    let by_name: BTreeMap<&str, &UserRecord> = users.iter().map(|u| (u.name.as_str(), u)).collect();
    let mut result = Plan {
        directory_entries: snapshot.people.len(),
        synced_users: users
            .iter()
            .filter(|u| u.directory.is_some() && !u.disabled)
            .count(),
        ..Plan::default()
    };
    // A login two entries claim (a contact in another OU, a test account)
    // names nobody for sure: every entry with it is skipped, whatever the
    // order the directory returned them in, and the Porta user of that name
    // is left as it is (neither followed nor suspended) until it is fixed.
    // Without case: directories match logins so ("Anna" is "anna").
    let mut claims: BTreeMap<String, usize> = BTreeMap::new();
    for person in &snapshot.people {
        *claims.entry(person.login.to_lowercase()).or_default() += 1;
    }
    let mut seen = BTreeSet::new();
    for person in &snapshot.people {
        let claimed = claims
            .get(&person.login.to_lowercase())
            .copied()
            .unwrap_or(0);
        if claimed > 1 && crate::validate::name("login", &person.login).is_ok() {
            seen.insert(person.login.clone());
            result.skipped.push(Skipped {
                dn: person.dn.clone(),
                reason: format!(
                    "{claimed} directory entries have the login {:?}; none is followed until \
                     only one does (the Porta user of that name is left as it is)",
                    person.login
                ),
            });
            continue;
        }
        let login = match crate::validate::name("login", &person.login) {
            Ok(login) => login,
            Err(error) => {
                if !person.groups.is_empty() {
                    result.skipped.push(Skipped {
                        dn: person.dn.clone(),
                        reason: error.to_string(),
                    });
                }
                continue;
            }
        };
        seen.insert(login.clone());
        let existing = by_name.get(login.as_str()).copied();
        let in_scope = !person.groups.is_empty();
        match existing {
            // Not ours, and not in a mapped group: not a Porta user.
            None if !in_scope || person.disabled => {}
            Some(user) if user.directory.is_none() && !in_scope => {}
            None => {
                let mut user = UserRecord::new(&login, now);
                follow(&mut user, person, mapped);
                result.changes.push(Change {
                    action: Action::Create,
                    before: None,
                    after: user,
                    reason: String::new(),
                });
            }
            Some(user) => {
                let mut after = user.clone();
                follow(&mut after, person, mapped);
                let leaving = if person.disabled {
                    Some("disabled in the directory")
                } else if !in_scope {
                    Some("in no mapped directory group")
                } else {
                    None
                };
                let suspended = user.directory.as_ref().is_some_and(|d| d.suspended);
                let (action, reason) = match leaving {
                    Some(why) if !user.disabled => {
                        after.disabled = true;
                        set_suspended(&mut after, true);
                        (Action::Disable, why)
                    }
                    None if user.disabled && suspended => {
                        after.disabled = false;
                        set_suspended(&mut after, false);
                        (Action::Enable, "enabled and in a mapped group again")
                    }
                    _ => (Action::Update, ""),
                };
                if after != *user {
                    result.changes.push(Change {
                        action,
                        before: Some(user.clone()),
                        after,
                        reason: reason.into(),
                    });
                }
            }
        }
    }
    for user in users {
        if user.directory.is_some() && !user.disabled && !seen.contains(&user.name) {
            let mut after = user.clone();
            after.disabled = true;
            set_suspended(&mut after, true);
            after.groups.retain(|g| !mapped.contains(g));
            result.changes.push(Change {
                action: Action::Disable,
                before: Some(user.clone()),
                after,
                reason: "no longer in the directory".into(),
            });
        }
    }
    result.changes.sort_by(|a, b| a.user().cmp(b.user()));
    result
}

/// Copies what the directory says about `person` into `user`: names,
/// contact, language, the link, and memberships of mapped groups.
fn follow(user: &mut UserRecord, person: &Person, mapped: &BTreeSet<String>) {
    user.display_name = clip(&person.display_name);
    user.email = clip(&person.email);
    user.language = language_code(&person.language);
    let suspended = user.directory.as_ref().is_some_and(|d| d.suspended);
    user.directory = Some(DirectoryLink {
        dn: person.dn.clone(),
        suspended,
    });
    user.groups.retain(|g| !mapped.contains(g));
    user.groups.extend(person.groups.iter().cloned());
}

fn set_suspended(user: &mut UserRecord, suspended: bool) {
    if let Some(link) = &mut user.directory {
        link.suspended = suspended;
    }
}

/// Free text as Porta keeps it: no control characters, at most 256
/// characters (directory values are not trusted to be either).
/// Text from the directory as Porta keeps it: without control characters
/// and without the invisible ones (direction overrides, zero-width
/// characters) that an admin may not type either
/// ([`crate::validate::text`]), so that a name cannot display as another.
fn clip(value: &str) -> String {
    value
        .chars()
        .filter(|&c| !c.is_control() && !porta_proto::terminal::is_invisible(c))
        .take(crate::validate::MAX_TEXT_CHARS)
        .collect()
}

/// A language Porta speaks, from a directory's `preferredLanguage`
/// (RFC 4646 tags, possibly with quality values: "ca-ES, es;q=0.8"); ""
/// when none of them is one Porta speaks.
pub fn language_code(value: &str) -> String {
    value
        .split(',')
        .filter_map(|tag| {
            let tag = tag.split(';').next()?.trim();
            let primary = tag.split(['-', '_']).next()?.to_ascii_lowercase();
            ["ca", "es", "it", "en"]
                .contains(&primary.as_str())
                .then_some(primary)
        })
        .next()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(login: &str, groups: &[&str]) -> Person {
        Person {
            dn: format!("uid={login},ou=people,dc=town"),
            login: login.into(),
            display_name: format!("{login} display"),
            email: format!("{login}@town.cat"),
            language: String::new(),
            disabled: false,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn mapped() -> BTreeSet<String> {
        ["gis", "staff"].iter().map(|g| g.to_string()).collect()
    }

    /// The users after applying `plan` to `users`.
    fn apply(users: &[UserRecord], plan: &Plan) -> Vec<UserRecord> {
        let mut map: BTreeMap<String, UserRecord> =
            users.iter().map(|u| (u.name.clone(), u.clone())).collect();
        for change in &plan.changes {
            map.insert(change.user().to_owned(), change.after.clone());
        }
        map.into_values().collect()
    }

    fn sync(users: &[UserRecord], people: Vec<Person>) -> (Plan, Vec<UserRecord>) {
        let plan = plan(&Snapshot { people }, users, &mapped(), 7);
        let after = apply(users, &plan);
        (plan, after)
    }

    #[test]
    fn people_in_mapped_groups_become_users_and_others_are_ignored() {
        let mut outsider = person("pere", &[]);
        outsider.display_name = "Pere".into();
        let mut locked = person("lluis", &["gis"]);
        locked.disabled = true;
        let (plan, users) = sync(
            &[],
            vec![person("nuria", &["gis", "staff"]), outsider, locked],
        );
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.changes[0].action, Action::Create);
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].name, "nuria");
        assert_eq!(users[0].groups, mapped());
        assert_eq!(users[0].email, "nuria@town.cat");
        assert!(users[0].directory.is_some());
        // A second sync of the same directory changes nothing.
        let (again, _) = sync(&users, vec![person("nuria", &["staff", "gis"])]);
        assert!(again.changes.is_empty(), "{again:?}");
    }

    #[test]
    fn leavers_are_suspended_and_come_back_without_re_enrolling() {
        let (_, users) = sync(
            &[],
            vec![person("anna", &["gis"]), person("joan", &["gis"])],
        );
        // joan leaves the mapped group; anna is disabled in the directory.
        let mut anna = person("anna", &["gis"]);
        anna.disabled = true;
        let (plan, users) = sync(&users, vec![anna, person("joan", &[])]);
        assert_eq!(plan.disables(), 2);
        assert!(users.iter().all(|u| u.disabled));
        assert!(
            users
                .iter()
                .all(|u| u.directory.as_ref().is_some_and(|d| d.suspended))
        );
        let joan = users.iter().find(|u| u.name == "joan").expect("joan");
        assert!(
            joan.groups.is_empty(),
            "mapped memberships follow the directory"
        );
        // Both come back.
        let (plan, users) = sync(
            &users,
            vec![person("anna", &["gis"]), person("joan", &["staff"])],
        );
        assert!(
            plan.changes.iter().all(|c| c.action == Action::Enable),
            "{plan:?}"
        );
        assert!(users.iter().all(|u| !u.disabled));
    }

    #[test]
    fn deleted_entries_are_suspended_and_hand_made_users_are_left_alone() {
        let hand_made = UserRecord::new("admin.local", 1);
        let (_, mut users) = sync(&[], vec![person("anna", &["gis"])]);
        users.push(hand_made.clone());
        let (plan, after) = sync(&users, vec![]);
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.changes[0].user(), "anna");
        assert_eq!(plan.changes[0].reason, "no longer in the directory");
        assert!(after.contains(&hand_made));
    }

    #[test]
    fn an_admin_disabled_user_stays_disabled() {
        let (_, mut users) = sync(&[], vec![person("anna", &["gis"])]);
        users[0].disabled = true; // by an admin: not suspended
        let (plan, after) = sync(&users, vec![person("anna", &["gis", "staff"])]);
        assert_eq!(plan.changes[0].action, Action::Update);
        assert!(after[0].disabled);
        assert_eq!(plan.changes[0].groups_added(), vec!["staff".to_owned()]);
    }

    #[test]
    fn a_hand_made_user_in_a_mapped_group_is_adopted_keeping_other_groups() {
        let mut maria = UserRecord::new("maria", 1);
        maria.groups.insert("phones".into());
        let (plan, after) = sync(&[maria], vec![person("maria", &["gis"])]);
        assert_eq!(plan.changes[0].action, Action::Update);
        let expected: BTreeSet<String> = ["gis", "phones"].iter().map(|g| g.to_string()).collect();
        assert_eq!(after[0].groups, expected);
        assert!(after[0].directory.is_some());
    }

    #[test]
    fn bad_logins_and_duplicates_are_skipped_with_a_reason() {
        let (plan, users) = sync(
            &[],
            vec![
                person("bad login", &["gis"]),
                person("anna", &["gis"]),
                person("anna", &["staff"]),
            ],
        );
        assert!(users.is_empty(), "{users:?}");
        assert_eq!(plan.skipped.len(), 3);
        assert!(
            plan.skipped[0].reason.contains("not a valid name"),
            "{plan:?}"
        );
    }

    #[test]
    fn a_login_two_entries_claim_follows_neither_in_any_order() {
        let mut real = person("anna", &["gis"]);
        real.dn = "uid=anna,ou=people,dc=town".into();
        real.display_name = "Anna Puig".into();
        let (_, users) = sync(&[], vec![real.clone()]);
        let mut contact = person("anna", &[]);
        contact.dn = "uid=anna,ou=contacts,dc=town".into();
        contact.display_name = "Impostora".into();
        contact.disabled = true;
        for people in [
            vec![contact.clone(), real.clone()],
            vec![real.clone(), contact.clone()],
        ] {
            let (plan, after) = sync(&users, people);
            assert!(plan.changes.is_empty(), "{plan:?}");
            assert_eq!(after, users, "anna is left as she was");
            let dns: BTreeSet<&str> = plan.skipped.iter().map(|s| s.dn.as_str()).collect();
            assert_eq!(dns.len(), 2, "both entries reported: {plan:?}");
            assert!(
                plan.skipped[0].reason.contains("2 directory entries"),
                "{plan:?}"
            );
        }
    }

    #[test]
    fn invisible_characters_do_not_come_in_from_the_directory() {
        let mut tricky = person("pere", &["gis"]);
        tricky.display_name = "Pere \u{202e}lleP\u{200b}".into();
        let (_, users) = sync(&[], vec![tricky]);
        assert_eq!(users[0].display_name, "Pere lleP");
    }

    #[test]
    fn the_threshold_counts_disables_among_synced_users() {
        let people: Vec<Person> = (0..10)
            .map(|i| person(&format!("u{i}"), &["gis"]))
            .collect();
        let (_, users) = sync(&[], people.clone());
        let (plan, _) = sync(&users, people[..9].to_vec());
        assert_eq!(plan.synced_users, 10);
        assert!(plan.refusal(0.1).is_none(), "1 of 10 is at the limit");
        let (plan, _) = sync(&users, people[..8].to_vec());
        let why = plan.refusal(0.1).expect("2 of 10 is over");
        assert!(why.contains("2 of 10"), "{why}");
        let (plan, _) = sync(&users, vec![]);
        assert!(
            plan.refusal(0.1).is_some(),
            "an empty directory disables everyone"
        );
    }

    #[test]
    fn languages_come_from_rfc4646_tags() {
        assert_eq!(language_code("ca-ES"), "ca");
        assert_eq!(language_code("fr, es;q=0.8"), "es");
        assert_eq!(language_code("IT"), "it");
        assert_eq!(language_code("de"), "");
    }
}
