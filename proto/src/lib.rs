//! Porta's wire contract and the small pieces every Porta program shares.
//!
//! # Layout
//! * [`pb`]: the `porta.v1` messages and services, generated at build time
//!   from `proto/porta/v1/porta.proto` by protox + tonic-prost-build (no
//!   system `protoc`). Server stubs sit behind the `server` feature.
//! * [`local`]: `porta.local.v1`, the tunnel service's API over its Unix
//!   socket, for the `porta` CLI and `porta-desktop`.
//! * [`invitation`]: the one-word invitation format (`porta1_…`) that carries
//!   a controller address, its certificate fingerprint and a one-time token.
//! * [`fingerprint`]: SHA-256 certificate fingerprints, how clients pin the
//!   controller without any PKI.
//! * [`keys`]: WireGuard public keys as they travel in messages (base64).
//! * [`refusal`]: why the controller refused a device or an invitation,
//!   one word beside the message, so front ends say it in the person's
//!   language.
//! * [`clock`]: the one reading of the wall clock in Unix seconds; each
//!   program reads it at its entry points and passes `now` down.
//! * [`files`]: the one owner-only, atomic and durable file writer every
//!   program uses for keys, credentials and state.
//! * [`audit`]: the audit logs' columns, hash chain and verifier, shared by
//!   the controller and `portactl logs verify --file`.
//! * [`connect`] (feature `client`): a tonic channel over TLS that accepts
//!   exactly the pinned certificate, plus bearer-credential metadata.
//! * `cli_docs` (feature `cli`): man pages and completions from clap.
//! * `terminal` (feature `cli`): pipes and terminals, the same way in all
//!   three programs.

pub mod audit;
pub mod clock;
pub mod feed;
pub mod files;
pub mod fingerprint;
pub mod invitation;
pub mod keys;
pub mod refusal;

#[cfg(feature = "client")]
pub mod connect;

#[cfg(feature = "cli")]
pub mod cli_docs;
#[cfg(feature = "cli")]
pub mod limits;
#[cfg(feature = "cli")]
pub mod terminal;

/// Generated protobuf messages and gRPC stubs for package `porta.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("porta.v1");

    /// The encoded `FileDescriptorSet` of the contract, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/porta_descriptor.bin"));

    impl Destination {
        /// Its protocol and ports as people and `wg`-style output write
        /// them: "tcp 443,8080-8090", "icmp", or "" for everything.
        pub fn protocol_and_ports(&self) -> String {
            let protocol = match Protocol::try_from(self.protocol) {
                Ok(Protocol::Tcp) => "tcp",
                Ok(Protocol::Udp) => "udp",
                Ok(Protocol::Icmp) => "icmp",
                _ => "",
            };
            let ports: Vec<String> = self
                .ports
                .iter()
                .map(|p| {
                    if p.first == p.last {
                        p.first.to_string()
                    } else {
                        format!("{}-{}", p.first, p.last)
                    }
                })
                .collect();
            match (protocol, ports.is_empty()) {
                (protocol, true) => protocol.to_owned(),
                (protocol, false) => format!("{protocol} {}", ports.join(",")),
            }
        }
    }
}

/// Generated messages and gRPC stubs for package `porta.local.v1`: the
/// tunnel service's API on this computer (`porta daemon` and its front
/// ends). Both sides live in the client, so its server stubs are always
/// built.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod local {
    tonic::include_proto!("porta.local.v1");
}

pub use fingerprint::CertFingerprint;
pub use invitation::{Invitation, InvitationError};
pub use keys::{KeyError, PublicKey};

/// Most characters of a caller's value an error message repeats.
pub const QUOTED_CHARS: usize = 40;

/// `value` quoted for an error message: whole when short, else its first
/// characters and its length. A caller's 60,000-character value must not
/// come back whole (it would also break HTTP/2's header limits).
pub fn quoted(value: &str) -> String {
    let count = value.chars().count();
    if count <= QUOTED_CHARS {
        format!("{value:?}")
    } else {
        let prefix: String = value.chars().take(QUOTED_CHARS).collect();
        format!("{prefix:?}… ({count} characters)")
    }
}

/// The gRPC metadata key that carries credentials.
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// An error chain as one line for a person, each cause joined by ": ". A
/// gRPC status shows only the controller's message (its code's prose is
/// for programs), or its code if the message is empty. Causes that only
/// repeat what was already said (hyper and tonic wrap an IO error in
/// several layers that each print it) and tonic's bare "transport error"
/// are left out.
pub fn describe_chain<'a>(
    chain: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in chain {
        let text = match cause.downcast_ref::<tonic::Status>() {
            Some(status) if !status.message().is_empty() => status.message().to_owned(),
            Some(status) => format!("{:?}", status.code()),
            None => cause.to_string(),
        };
        let repeated = parts.iter().any(|part| part.contains(&text));
        if text.is_empty() || text == "transport error" || repeated {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// [`describe_chain`] of `error` and its sources.
pub fn describe_error(error: &(dyn std::error::Error + 'static)) -> String {
    describe_chain(std::iter::successors(Some(error), |e| e.source()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    /// An error with a message and an optional cause.
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    fn chain(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |cause, text| Some(Layer(text, cause.map(Box::new))))
            .unwrap()
    }

    fn describe(error: &Layer) -> String {
        let mut causes: Vec<&(dyn std::error::Error + 'static)> = vec![error];
        while let Some(next) = causes.last().unwrap().source() {
            causes.push(next);
        }
        super::describe_chain(causes.into_iter())
    }

    #[test]
    fn a_cause_said_twice_is_said_once() {
        let error = chain(&[
            "could not reach the controller at 127.0.0.1:1",
            "transport error",
            "transport error",
            "Connection refused (os error 111)",
            "Connection refused (os error 111)",
        ]);
        assert_eq!(
            describe(&error),
            "could not reach the controller at 127.0.0.1:1: Connection refused (os error 111)"
        );
    }

    #[test]
    fn a_status_shows_its_message_only() {
        let status = tonic::Status::not_found("no device named \"x\"");
        let chain: Vec<&(dyn std::error::Error + 'static)> = vec![&status];
        assert_eq!(
            super::describe_chain(chain.into_iter()),
            "no device named \"x\""
        );
    }
    #[test]
    fn descriptor_set_decodes_and_names_every_service() {
        use prost::Message;
        let set = FileDescriptorSet::decode(super::pb::FILE_DESCRIPTOR_SET)
            .expect("descriptor set decodes");
        let services: Vec<String> = set
            .file
            .iter()
            .flat_map(|f| f.service.iter().map(|s| s.name.clone().unwrap_or_default()))
            .collect();
        for name in ["Enrollment", "Device", "Admin", "Audit", "Gateway"] {
            assert!(
                services.iter().any(|s| s == name),
                "{name} missing from {services:?}"
            );
        }
    }

    // The two fields of FileDescriptorProto the test needs, decoded without
    // pulling prost-types into the crate.
    #[derive(Clone, PartialEq, prost::Message)]
    struct FileDescriptorSet {
        #[prost(message, repeated, tag = "1")]
        file: Vec<FileDescriptor>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct FileDescriptor {
        #[prost(message, repeated, tag = "6")]
        service: Vec<ServiceDescriptor>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct ServiceDescriptor {
        #[prost(string, optional, tag = "1")]
        name: Option<String>,
    }
}
