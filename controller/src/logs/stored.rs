//! How a log record is laid out in its tree: one format byte, then the
//! record in postcard (serde's compact binary form: fields in declaration
//! order, integers as varints, strings length-prefixed). A connection
//! record takes about 300 bytes this way against 500 as JSON, and decodes
//! several times faster — exports and verification read millions.
//!
//! Records written before schema 3 are JSON objects; they start with `{`,
//! which is not a format byte, and decode as they are: a log is never
//! rewritten (its hashes cover the cells, not the stored bytes, so either
//! form verifies).
//!
//! postcard is not self-describing: a record type that gains a field
//! needs a new format byte here, with the old layout kept for decoding.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// postcard, the record types as they are now.
const POSTCARD: u8 = 1;

/// The stored form of a record.
pub fn encode<E: Serialize>(record: &E) -> Result<Vec<u8>, String> {
    postcard::to_extend(record, vec![POSTCARD]).map_err(|e| e.to_string())
}

/// A stored record, in either form; the error says why it does not
/// decode.
pub fn decode<E: DeserializeOwned>(bytes: &[u8]) -> Result<E, String> {
    match bytes.split_first() {
        Some((&POSTCARD, record)) => postcard::from_bytes(record).map_err(|e| e.to_string()),
        Some((b'{', _)) => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        Some((other, _)) => Err(format!("unknown record format {other}")),
        None => Err("empty record".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{AdminEntry, ConnectionEntry};

    fn connection() -> ConnectionEntry {
        ConnectionEntry {
            sequence: 123,
            event_id: "gw-7".into(),
            kind: "session_start".into(),
            at: 1_700_000_000,
            user: "anna".into(),
            device: "anna-laptop".into(),
            tunnel_address: "10.77.0.2".into(),
            public_address: "192.0.2.9:40000".into(),
            previous_public_address: String::new(),
            gateway: "town".into(),
            session_start: 1_700_000_000,
            rx_bytes: 1,
            tx_bytes: 2,
            reason: String::new(),
            previous_hash: "a".repeat(64),
            hash: "b".repeat(64),
        }
    }

    #[test]
    fn records_round_trip_and_json_from_before_still_decodes() {
        let record = connection();
        let stored = encode(&record).expect("encode");
        assert_eq!(stored[0], POSTCARD);
        assert!(stored.len() < serde_json::to_vec(&record).expect("json").len());
        assert_eq!(decode::<ConnectionEntry>(&stored), Ok(record.clone()));
        let json = serde_json::to_vec(&record).expect("json");
        assert_eq!(decode::<ConnectionEntry>(&json), Ok(record));

        let admin = AdminEntry {
            sequence: 1,
            at: 2,
            actor: "admin".into(),
            actor_address: "127.0.0.1:5000".into(),
            action: "user.create".into(),
            target: "anna".into(),
            before: String::new(),
            after: r#"{"name":"anna"}"#.into(),
            previous_hash: "c".repeat(64),
            hash: "d".repeat(64),
        };
        assert_eq!(
            decode::<AdminEntry>(&encode(&admin).expect("encode")),
            Ok(admin)
        );
    }

    #[test]
    fn damage_is_an_error_not_a_record() {
        let stored = encode(&connection()).expect("encode");
        for damaged in [
            &stored[..stored.len() / 2],
            &[],
            &[9, 1, 2][..],
            b"{\"sequence\":",
        ] {
            assert!(decode::<ConnectionEntry>(damaged).is_err(), "{damaged:?}");
        }
    }
}
