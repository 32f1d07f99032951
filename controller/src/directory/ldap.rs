//! Reading a [`Snapshot`] from the directory over LDAP (ldap3, rustls).
//!
//! One connection per sync: bind as the service account, then paged
//! searches (500 entries a page, so a 10,000-person directory never meets a
//! server's size limit) for the people, for the disabled people, and for
//! each mapped group's members:
//! * Active Directory resolves nested groups itself: people whose
//!   `memberOf` matches the group through the in-chain matching rule
//!   (1.2.840.113556.1.4.1941);
//! * OpenLDAP's `groupOfNames`/`groupOfUniqueNames` are walked here: a
//!   `member` that is itself a group is read in turn (each group once, so
//!   a cycle ends).

use super::plan::{Person, Snapshot};
use super::{ConfigError, Directory, Preset, TlsMode};
use ldap3::adapters::PagedResults;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole read may take, 10,000 people included.
const READ_TIMEOUT: Duration = Duration::from_secs(300);
/// Entries per page of a paged search.
const PAGE_SIZE: i32 = 500;
/// LDAP result codes met here (RFC 4511).
const NO_SUCH_OBJECT: u32 = 32;
const INVALID_CREDENTIALS: u32 = 49;

/// Why a read failed; nothing is changed when it does.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The config cannot work (password file, CA file).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No connection: refused, timed out, or the TLS handshake failed
    /// (a certificate the CA does not vouch for, or for another name).
    #[error("cannot reach the directory at {url}: {reason}")]
    Unreachable {
        /// The configured URL.
        url: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The directory refused the service account.
    #[error("the directory refused the bind as {bind_dn:?}: {reason}")]
    Bind {
        /// The configured bind DN.
        bind_dn: String,
        /// What the directory said.
        reason: String,
    },
    /// A mapped directory group does not exist.
    #[error(
        "directory group {dn:?} (mapped to Porta group {group:?}) does not exist in the directory"
    )]
    MissingGroup {
        /// The group's DN as configured.
        dn: String,
        /// The Porta group it maps to.
        group: String,
    },
    /// A search failed.
    #[error("the directory refused a search ({what}): {reason}")]
    Search {
        /// Which search.
        what: String,
        /// What the directory said.
        reason: String,
    },
    /// The whole read took too long.
    #[error("the directory did not answer within {} s", READ_TIMEOUT.as_secs())]
    Timeout,
}

/// Reads everyone the config covers.
pub async fn read(dir: &Directory) -> Result<Snapshot, ReadError> {
    let password = dir.password()?;
    tokio::time::timeout(READ_TIMEOUT, read_with(dir, &password))
        .await
        .map_err(|_| ReadError::Timeout)?
}

async fn read_with(dir: &Directory, password: &str) -> Result<Snapshot, ReadError> {
    let mut settings = LdapConnSettings::new().set_conn_timeout(CONNECT_TIMEOUT);
    if dir.tls != TlsMode::None {
        settings = settings
            .set_config(tls_config(dir)?)
            .set_starttls(dir.tls == TlsMode::Starttls);
    }
    let unreachable = |e: LdapError| ReadError::Unreachable {
        url: dir.url.clone(),
        reason: porta_proto::describe_error(&e),
    };
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &dir.url)
        .await
        .map_err(unreachable)?;
    ldap3::drive!(conn);
    let bind = ldap
        .simple_bind(&dir.bind_dn, password)
        .await
        .map_err(unreachable)?;
    if bind.rc != 0 {
        let reason = if bind.rc == INVALID_CREDENTIALS {
            "invalid credentials (check bind_dn and the password file)".to_owned()
        } else {
            format!("result code {} {}", bind.rc, bind.text)
        };
        return Err(ReadError::Bind {
            bind_dn: dir.bind_dn.clone(),
            reason,
        });
    }
    let snapshot = snapshot(&mut ldap, dir).await;
    let _ = ldap.unbind().await;
    snapshot
}

async fn snapshot(ldap: &mut Ldap, dir: &Directory) -> Result<Snapshot, ReadError> {
    let a = &dir.attributes;
    let attrs = vec![
        a.login.clone(),
        a.display_name.clone(),
        a.email.clone(),
        a.language.clone(),
    ];
    let entries = search_all(ldap, &dir.base_dn, &dir.user_filter, attrs, "people").await?;
    let mut people: BTreeMap<String, Person> = BTreeMap::new();
    for entry in entries {
        let first = |name: &str| {
            entry
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first().cloned())
                .unwrap_or_default()
        };
        let person = Person {
            dn: entry.dn.clone(),
            login: first(&a.login),
            display_name: first(&a.display_name),
            email: first(&a.email),
            language: first(&a.language),
            disabled: false,
            groups: BTreeSet::new(),
        };
        people.insert(dn_key(&entry.dn), person);
    }
    let disabled_filter = format!("(&{}{})", dir.user_filter, dir.disabled_filter);
    for dn in search_dns(ldap, &dir.base_dn, &disabled_filter, "disabled people").await? {
        if let Some(person) = people.get_mut(&dn) {
            person.disabled = true;
        }
    }
    for (group_dn, porta_group) in &dir.groups {
        let members = match dir.preset {
            Preset::ActiveDirectory => ad_members(ldap, dir, group_dn, porta_group).await?,
            Preset::Openldap => walk_members(ldap, group_dn, porta_group, &people).await?,
        };
        for dn in members {
            if let Some(person) = people.get_mut(&dn) {
                person.groups.insert(porta_group.clone());
            }
        }
    }
    Ok(Snapshot {
        people: people.into_values().collect(),
    })
}

/// Active Directory: the people in `group_dn`, nested groups included.
async fn ad_members(
    ldap: &mut Ldap,
    dir: &Directory,
    group_dn: &str,
    porta_group: &str,
) -> Result<BTreeSet<String>, ReadError> {
    if read_group(ldap, group_dn).await?.is_none() {
        return Err(ReadError::MissingGroup {
            dn: group_dn.to_owned(),
            group: porta_group.to_owned(),
        });
    }
    let filter = format!(
        "(&{}(memberOf:1.2.840.113556.1.4.1941:={}))",
        dir.user_filter,
        ldap3::ldap_escape(group_dn)
    );
    search_dns(
        ldap,
        &dir.base_dn,
        &filter,
        &format!("members of {group_dn}"),
    )
    .await
    .map(|dns| dns.into_iter().collect())
}

/// OpenLDAP: the DNs reachable through `member`/`uniqueMember` from
/// `group_dn`, each group read once. A member that is one of `people` is
/// taken as is; any other is read in case it is a nested group.
async fn walk_members(
    ldap: &mut Ldap,
    group_dn: &str,
    porta_group: &str,
    people: &BTreeMap<String, Person>,
) -> Result<BTreeSet<String>, ReadError> {
    let mut members = BTreeSet::new();
    let mut visited = BTreeSet::new();
    let mut queue = VecDeque::from([group_dn.to_owned()]);
    while let Some(dn) = queue.pop_front() {
        let key = dn_key(&dn);
        if people.contains_key(&key) {
            members.insert(key);
            continue;
        }
        if !visited.insert(key) {
            continue;
        }
        match read_group(ldap, &dn).await? {
            Some(values) => queue.extend(values),
            None if dn == group_dn => {
                return Err(ReadError::MissingGroup {
                    dn: group_dn.to_owned(),
                    group: porta_group.to_owned(),
                });
            }
            // A member that is not a group: a person (or something else,
            // which matches nobody).
            None => {
                members.insert(dn_key(&dn));
            }
        }
    }
    Ok(members)
}

/// The member DNs of the group at `dn`, or `None` if there is no group
/// there.
async fn read_group(ldap: &mut Ldap, dn: &str) -> Result<Option<Vec<String>>, ReadError> {
    let filter = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))";
    let result = ldap
        .search(dn, Scope::Base, filter, vec!["member", "uniqueMember"])
        .await
        .map_err(|e| search_error(&format!("group {dn}"), &e))?;
    let (entries, status) = (result.0, result.1);
    if status.rc == NO_SUCH_OBJECT {
        return Ok(None);
    }
    if status.rc != 0 {
        return Err(ReadError::Search {
            what: format!("group {dn}"),
            reason: format!("result code {} {}", status.rc, status.text),
        });
    }
    Ok(entries
        .into_iter()
        .filter(|e| !e.is_ref() && !e.is_intermediate())
        .map(SearchEntry::construct)
        .next()
        .map(|entry| {
            entry
                .attrs
                .into_iter()
                .filter(|(k, _)| {
                    k.eq_ignore_ascii_case("member") || k.eq_ignore_ascii_case("uniqueMember")
                })
                .flat_map(|(_, values)| values)
                .collect()
        }))
}

/// The (normalised) DNs of the entries `filter` matches.
async fn search_dns(
    ldap: &mut Ldap,
    base: &str,
    filter: &str,
    what: &str,
) -> Result<Vec<String>, ReadError> {
    Ok(search_all(ldap, base, filter, vec!["1.1".to_owned()], what)
        .await?
        .into_iter()
        .map(|e| dn_key(&e.dn))
        .collect())
}

/// Every entry `filter` matches under `base`, page by page.
async fn search_all(
    ldap: &mut Ldap,
    base: &str,
    filter: &str,
    attrs: Vec<String>,
    what: &str,
) -> Result<Vec<SearchEntry>, ReadError> {
    let mut stream = ldap
        .streaming_search_with(
            PagedResults::new(PAGE_SIZE),
            base,
            Scope::Subtree,
            filter,
            attrs,
        )
        .await
        .map_err(|e| search_error(what, &e))?;
    let mut entries = Vec::new();
    while let Some(entry) = stream.next().await.map_err(|e| search_error(what, &e))? {
        if !entry.is_ref() && !entry.is_intermediate() {
            entries.push(SearchEntry::construct(entry));
        }
    }
    let status = stream.finish().await;
    if status.rc != 0 {
        return Err(ReadError::Search {
            what: what.to_owned(),
            reason: format!("result code {} {}", status.rc, status.text),
        });
    }
    Ok(entries)
}

fn search_error(what: &str, error: &LdapError) -> ReadError {
    ReadError::Search {
        what: what.to_owned(),
        reason: porta_proto::describe_error(error),
    }
}

/// The rustls client config: the configured CA file, else the system's
/// roots.
fn tls_config(dir: &Directory) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    super::client_tls_config("[directory]", dir.ca_file.as_deref(), None).map_err(ConfigError::new)
}

/// A DN as a comparison key: lower case, no spaces around `,` and `=`
/// (directories spell the same DN in `member` values and entry names
/// differently).
pub fn dn_key(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            rdn.split('=')
                .map(|part| part.trim().to_lowercase())
                .collect::<Vec<_>>()
                .join("=")
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::dn_key;

    #[test]
    fn dns_compare_without_case_or_spacing() {
        assert_eq!(
            dn_key("CN=Núria Puig, OU=Staff,DC=Ajuntament"),
            dn_key("cn=núria puig,ou=staff, dc=ajuntament")
        );
    }
}
