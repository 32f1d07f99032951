//! Windows: the town's DNS as one Name Resolution Policy Table rule.
//!
//! An NRPT rule tells the Windows DNS client which servers answer for
//! which namespaces. Porta writes one rule per tunnel interface, under the
//! DNS client's local policy key
//! (`HKLM\SYSTEM\CurrentControlSet\Services\Dnscache\Parameters\DnsPolicyConfig\Porta-<interface>`),
//! naming the town's search domains and servers: names in those domains
//! go to the town's servers through the tunnel, every other name is
//! resolved as before (split DNS). A config without search domains sends
//! every name to the town (the namespace "."), as the resolv.conf way does
//! on Linux. The rule goes when the tunnel goes; one left by a crash is
//! removed at the next start, before a new one is written.
//!
//! [`Rule`] is the pure part (which values the key holds), tested on
//! every platform; writing and removing the key is Windows-only.

/// The values of one NRPT rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The rule's key name under `DnsPolicyConfig`.
    pub key: String,
    /// Namespaces, each with its leading dot (".ajuntament.local"), or "."
    /// for every name.
    pub namespaces: Vec<String>,
    /// The servers, separated by semicolons, as the `GenericDNSServers`
    /// value wants them.
    pub servers: String,
}

/// `ConfigOptions`: the rule names generic DNS servers.
pub const CONFIG_GENERIC_SERVERS: u32 = 0x8;
/// `Version` of the rule format.
pub const RULE_VERSION: u32 = 2;
/// Where the DNS client reads its local policy rules.
pub const POLICY_KEY: &str =
    r"SYSTEM\CurrentControlSet\Services\Dnscache\Parameters\DnsPolicyConfig";

impl Rule {
    /// The rule for `interface`, or None when there are no servers.
    pub fn new(interface: &str, servers: &[String], search: &[String]) -> Option<Self> {
        if servers.is_empty() {
            return None;
        }
        let mut namespaces: Vec<String> = search
            .iter()
            .map(|domain| domain.trim().trim_matches('.'))
            .filter(|domain| !domain.is_empty())
            .map(|domain| format!(".{domain}"))
            .collect();
        namespaces.dedup();
        if namespaces.is_empty() {
            namespaces.push(".".into());
        }
        Some(Self {
            key: key_name(interface),
            namespaces,
            servers: servers.join(";"),
        })
    }
}

/// The rule's key name for `interface`.
pub fn key_name(interface: &str) -> String {
    format!("Porta-{interface}")
}

#[cfg(windows)]
mod registry {
    use super::{CONFIG_GENERIC_SERVERS, POLICY_KEY, RULE_VERSION, Rule, key_name};
    use anyhow::{Context, Result};
    use std::path::Path;
    use winreg::RegKey;
    use winreg::enums::{HKEY_LOCAL_MACHINE, KEY_ALL_ACCESS};

    /// What was changed, so it can be undone.
    #[derive(Debug)]
    pub enum Applied {
        /// No DNS in the config: nothing changed.
        Nothing,
        /// The rule written for this interface.
        Rule {
            /// Its key name under [`POLICY_KEY`].
            key: String,
        },
    }

    /// Writes the rule for `interface` (removing one a crash left first).
    pub fn apply(
        interface: &str,
        servers: &[String],
        search: &[String],
        state_dir: &Path,
    ) -> Result<Applied> {
        restore_leftover(state_dir, interface)?;
        let Some(rule) = Rule::new(interface, servers, search) else {
            return Ok(Applied::Nothing);
        };
        let policy = RegKey::predef(HKEY_LOCAL_MACHINE);
        let (key, _) = policy
            .create_subkey(format!(r"{POLICY_KEY}\{}", rule.key))
            .with_context(|| format!(r"creating HKLM\{POLICY_KEY}\{}", rule.key))?;
        key.set_value("Name", &rule.namespaces)?;
        key.set_value("GenericDNSServers", &rule.servers)?;
        key.set_value("ConfigOptions", &CONFIG_GENERIC_SERVERS)?;
        key.set_value("Version", &RULE_VERSION)?;
        key.set_value("IPSECCARestriction", &"")?;
        flush_cache();
        Ok(Applied::Rule { key: rule.key })
    }

    /// Removes the rule [`apply`] wrote.
    pub fn undo(applied: &Applied) -> Result<()> {
        match applied {
            Applied::Nothing => Ok(()),
            Applied::Rule { key } => remove(key),
        }
    }

    /// Removes a rule a crashed tunnel on `interface` left.
    pub fn restore_leftover(_state_dir: &Path, interface: &str) -> Result<()> {
        remove(&key_name(interface))
    }

    fn remove(name: &str) -> Result<()> {
        let parent = match RegKey::predef(HKEY_LOCAL_MACHINE)
            .open_subkey_with_flags(POLICY_KEY, KEY_ALL_ACCESS)
        {
            Ok(parent) => parent,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).context(format!(r"opening HKLM\{POLICY_KEY}")),
        };
        match parent.delete_subkey_all(name) {
            Ok(()) => {
                flush_cache();
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).context(format!(r"removing HKLM\{POLICY_KEY}\{name}")),
        }
    }

    /// The DNS client re-reads its policy and forgets answers it cached
    /// under the old one.
    fn flush_cache() {
        let _ = std::process::Command::new("ipconfig")
            .arg("/flushdns")
            .output();
    }
}

#[cfg(windows)]
pub use registry::{Applied, apply, restore_leftover, undo};

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_towns_domains_go_to_the_towns_servers() {
        let rule = Rule::new(
            "porta0",
            &strings(&["10.1.0.53", "10.1.0.54"]),
            &strings(&["ajuntament.local", ".gis.local."]),
        )
        .expect("a rule");
        assert_eq!(rule.key, "Porta-porta0");
        assert_eq!(
            rule.namespaces,
            strings(&[".ajuntament.local", ".gis.local"])
        );
        assert_eq!(rule.servers, "10.1.0.53;10.1.0.54");
    }

    #[test]
    fn without_search_domains_every_name_goes_to_the_town() {
        let rule = Rule::new("porta0", &strings(&["10.1.0.53"]), &[]).expect("a rule");
        assert_eq!(rule.namespaces, strings(&["."]));
    }

    #[test]
    fn without_servers_there_is_no_rule() {
        assert_eq!(
            Rule::new("porta0", &[], &strings(&["ajuntament.local"])),
            None
        );
    }

    /// Under Wine (the Windows target's test runner) the registry is real:
    /// the rule is written where the DNS client reads it, and removed.
    #[cfg(windows)]
    #[test]
    fn the_rule_is_written_to_the_registry_and_removed() {
        use winreg::RegKey;
        use winreg::enums::HKEY_LOCAL_MACHINE;
        let dir = tempfile::tempdir().expect("temp dir");
        let applied = apply(
            "porta-test",
            &strings(&["10.1.0.53"]),
            &strings(&["ajuntament.local"]),
            dir.path(),
        )
        .expect("apply");
        let path = format!(r"{POLICY_KEY}\Porta-porta-test");
        let key = RegKey::predef(HKEY_LOCAL_MACHINE)
            .open_subkey(&path)
            .expect("the rule's key");
        let names: Vec<String> = key.get_value("Name").expect("Name");
        assert_eq!(names, strings(&[".ajuntament.local"]));
        let servers: String = key.get_value("GenericDNSServers").expect("servers");
        assert_eq!(servers, "10.1.0.53");
        let options: u32 = key.get_value("ConfigOptions").expect("options");
        assert_eq!(options, CONFIG_GENERIC_SERVERS);
        undo(&applied).expect("undo");
        assert!(
            RegKey::predef(HKEY_LOCAL_MACHINE)
                .open_subkey(&path)
                .is_err()
        );
    }
}
