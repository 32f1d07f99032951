//! A real OpenLDAP `slapd` for the directory tests: its own config, a
//! test CA and server certificate (made with openssl), and a town's
//! people and groups loaded with `slapadd`. The caller starts the command
//! it returns where it needs it (on the host, or in a lab namespace).
//!
//! The town (base `dc=ajuntament,dc=test`):
//! * `cn=gis`: nuria (Núria Puig i Solà, Catalan) and lluis (locked by the
//!   ppolicy overlay: disabled);
//! * `cn=staff`: jordi (Spanish), marta, and the nested group
//!   `cn=planning` with anna (Italian);
//! * pere, in no group; `cn=porta,ou=services`, the service account.

use base64::Engine;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory's suffix.
pub const BASE: &str = "dc=ajuntament,dc=test";
/// Its administrator (slapd's rootdn), for changes made by the tests.
pub const ROOT_DN: &str = "cn=admin,dc=ajuntament,dc=test";
/// The rootdn's password.
pub const ROOT_PASSWORD: &str = "root-secret";
/// The account Porta binds as.
pub const BIND_DN: &str = "cn=porta,ou=services,dc=ajuntament,dc=test";
/// Its password.
pub const BIND_PASSWORD: &str = "porta-bind-secret";
/// The name in the server certificate.
pub const SERVER_NAME: &str = "ldap.ajuntament.test";

/// A prepared slapd: files in `dir`, ready to run with [`Slapd::command`].
pub struct Slapd {
    /// Where config, certificates, database and pid live.
    pub dir: PathBuf,
    /// ldaps:// port on 127.0.0.1.
    pub ldaps_port: u16,
    /// ldap:// port on 127.0.0.1 (StartTLS, and the tests' changes).
    pub ldap_port: u16,
}

/// A person's DN.
pub fn person(uid: &str) -> String {
    format!("uid={uid},ou=people,{BASE}")
}

/// A group's DN.
pub fn group(cn: &str) -> String {
    format!("cn={cn},ou=groups,{BASE}")
}

impl Slapd {
    /// Writes the config, certificates and data under `dir`.
    pub fn prepare(dir: &Path, ldaps_port: u16, ldap_port: u16) -> Self {
        std::fs::create_dir_all(dir.join("db")).unwrap();
        crate::certs::make(dir, SERVER_NAME);
        let d = dir.display();
        let config = format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload ppolicy
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
TLSCACertificateFile {d}/ca.pem
TLSCertificateFile {d}/server.pem
TLSCertificateKeyFile {d}/server.key
database mdb
maxsize 104857600
suffix \"{BASE}\"
rootdn \"{ROOT_DN}\"
rootpw {ROOT_PASSWORD}
directory {d}/db
overlay ppolicy
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact=\"{BIND_DN}\" read by * none
"
        );
        std::fs::write(dir.join("slapd.conf"), config).unwrap();
        std::fs::write(dir.join("town.ldif"), town_ldif()).unwrap();
        run_ok(Command::new("slapadd").args([
            "-f",
            &format!("{d}/slapd.conf"),
            "-l",
            &format!("{d}/town.ldif"),
        ]));
        Self {
            dir: dir.to_owned(),
            ldaps_port,
            ldap_port,
        }
    }

    /// The command that runs slapd in the foreground on 127.0.0.1.
    pub fn command(&self) -> Vec<String> {
        vec![
            "/usr/sbin/slapd".into(),
            "-d".into(),
            "0".into(),
            "-f".into(),
            self.dir.join("slapd.conf").display().to_string(),
            "-h".into(),
            format!(
                "ldaps://127.0.0.1:{}/ ldap://127.0.0.1:{}/",
                self.ldaps_port, self.ldap_port
            ),
        ]
    }

    /// The test CA's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Another CA, which did not sign the server's certificate.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.join("other-ca.pem")
    }

    /// An `ldapmodify` command line (as the rootdn, over ldap:// on
    /// loopback) reading LDIF from `ldif`.
    pub fn modify_command(&self, ldif: &Path) -> Vec<String> {
        vec![
            "ldapmodify".into(),
            "-x".into(),
            "-H".into(),
            format!("ldap://127.0.0.1:{}", self.ldap_port),
            "-D".into(),
            ROOT_DN.into(),
            "-w".into(),
            ROOT_PASSWORD.into(),
            "-f".into(),
            ldif.display().to_string(),
        ]
    }

    /// Writes `ldif` to a file for [`Slapd::modify_command`].
    pub fn change_file(&self, name: &str, ldif: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.ldif"));
        std::fs::write(&path, ldif).unwrap();
        path
    }

    /// The controller's `[directory]` section for this slapd, with the
    /// bind password written to a 0600 file; `extra` lines are appended.
    pub fn directory_toml(&self, url: &str, extra: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let password = self.dir.join("bind-password");
        std::fs::write(&password, format!("{BIND_PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
        format!(
            "[directory]
url = \"{url}\"
ca_file = \"{ca}\"
bind_dn = \"{BIND_DN}\"
password_file = \"{pw}\"
base_dn = \"{BASE}\"
preset = \"openldap\"
{extra}
[directory.groups]
\"{gis}\" = \"gis\"
\"{staff}\" = \"staff\"
",
            ca = self.ca_file().display(),
            pw = password.display(),
            gis = group("gis"),
            staff = group("staff"),
        )
    }
}

/// The LDIF of the town; values outside ASCII base64-encoded as RFC 2849
/// requires.
fn town_ldif() -> String {
    let mut ldif = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Ajuntament\ndc: ajuntament\n\n\
         dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: ou=services,{BASE}\nobjectClass: organizationalUnit\nou: services\n\n\
         dn: {BIND_DN}\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: porta\nsn: porta\nuserPassword: {BIND_PASSWORD}\n\n"
    );
    let people = [
        ("nuria", "Núria Puig i Solà", "ca-ES", false),
        ("jordi", "Jordi Martí", "es", false),
        ("anna", "Anna Rossi", "it", false),
        ("marta", "Marta Ferrer", "", false),
        ("lluis", "Lluís Soler", "ca", true),
        ("pere", "Pere Vila", "ca", false),
    ];
    for (uid, name, language, locked) in people {
        let _ = write!(
            ldif,
            "dn: {}\nobjectClass: inetOrgPerson\nuid: {uid}\n{}\n{}\nsn: {uid}\nmail: {uid}@ajuntament.test\n",
            person(uid),
            value("cn", name),
            value("displayName", name),
        );
        if !language.is_empty() {
            let _ = writeln!(ldif, "preferredLanguage: {language}");
        }
        if locked {
            // The ppolicy overlay's permanent lock (slapadd may set this
            // operational attribute).
            ldif.push_str("pwdAccountLockedTime: 000001010000Z\n");
        }
        ldif.push('\n');
    }
    let groups = [
        ("gis", vec![person("nuria"), person("lluis")]),
        ("planning", vec![person("anna")]),
        (
            "staff",
            vec![person("jordi"), person("marta"), group("planning")],
        ),
    ];
    for (cn, members) in groups {
        let _ = write!(
            ldif,
            "dn: {}\nobjectClass: groupOfNames\ncn: {cn}\n",
            group(cn)
        );
        for member in members {
            let _ = writeln!(ldif, "member: {member}");
        }
        ldif.push('\n');
    }
    ldif
}

/// `attr: value`, or `attr:: base64` when the value is not ASCII.
fn value(attr: &str, value: &str) -> String {
    if value.is_ascii() {
        format!("{attr}: {value}")
    } else {
        format!(
            "{attr}:: {}",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }
}

/// Runs `command`, failing the test with its stderr if it fails.
pub(crate) fn run_ok(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
