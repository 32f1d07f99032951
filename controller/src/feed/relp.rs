//! RELP, rsyslog's Reliable Event Logging Protocol, client side and
//! sans-IO: frames in, frames out, and which records the collector has
//! acknowledged.
//!
//! Written here because no maintained Rust crate speaks RELP, and the
//! client side is small. Every frame is `TXNR SP COMMAND SP DATALEN [SP
//! DATA] LF`; the client opens the session (`open`, offering
//! `commands=syslog`), sends each message as a `syslog` command under
//! its own transaction number, and the server answers each with `rsp`
//! whose data starts with `200 OK` once the message is in the server's
//! hands. Transaction numbers run 1..=999,999,999 and wrap to 1. A
//! `serverclose` ends the session; anything else unexpected is a
//! protocol error and the session is dropped (the records it had not
//! acknowledged are sent again on the next one).

use std::collections::VecDeque;

/// The largest transaction number before it wraps to 1.
const MAX_TXNR: u64 = 999_999_999;
/// The largest frame we accept from a server (answers are tiny).
const MAX_FRAME: usize = 64 * 1024;

/// Why a session cannot go on.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelpError {
    /// The bytes are not RELP.
    #[error("the collector does not speak RELP here ({0})")]
    Malformed(String),
    /// The server refused the session or a message.
    #[error("the collector refused {what}: {status}")]
    Refused {
        /// What it refused.
        what: &'static str,
        /// Its status line.
        status: String,
    },
    /// The server closed the session.
    #[error("the collector closed the RELP session")]
    ServerClosed,
}

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Transaction number (0 for server-initiated frames).
    pub txnr: u64,
    /// The command: `open`, `syslog`, `close`, `rsp`, `serverclose`.
    pub command: String,
    /// Its data.
    pub data: Vec<u8>,
}

/// A frame as bytes.
pub fn encode(txnr: u64, command: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("{txnr} {command} {}", data.len()).into_bytes();
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
    out
}

/// Splits a byte stream into frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
}

impl Decoder {
    /// Adds bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, RelpError> {
        let bad = |what: &str| RelpError::Malformed(what.to_owned());
        // TXNR SP COMMAND SP DATALEN: the header ends at the third field.
        let mut fields = Vec::with_capacity(3);
        let mut start = 0;
        let mut at = 0;
        while fields.len() < 3 {
            match self.buffer.get(at) {
                None => {
                    if self.buffer.len() > MAX_FRAME {
                        return Err(bad("an endless header"));
                    }
                    return Ok(None);
                }
                Some(b' ' | b'\n') => {
                    fields.push((start, at));
                    start = at + 1;
                }
                Some(_) => {}
            }
            at += 1;
        }
        let text = |(a, b): (usize, usize)| {
            std::str::from_utf8(&self.buffer[a..b])
                .map_err(|_| bad("a header that is not text"))
                .map(str::to_owned)
        };
        let txnr: u64 = text(fields[0])?
            .parse()
            .map_err(|_| bad("a transaction number that is not a number"))?;
        let command = text(fields[1])?;
        let length: usize = text(fields[2])?
            .parse()
            .map_err(|_| bad("a data length that is not a number"))?;
        if length > MAX_FRAME {
            return Err(bad("a frame too large"));
        }
        let after_length = fields[2].1;
        // DATALEN 0: the header is followed by LF (no SP, no data).
        let (data_start, end) = if length == 0 {
            (after_length, after_length)
        } else {
            (after_length + 1, after_length + 1 + length)
        };
        if self.buffer.len() <= end {
            return Ok(None);
        }
        if self.buffer[end] != b'\n' {
            return Err(bad("a frame without its trailing newline"));
        }
        let data = self.buffer[data_start..end].to_vec();
        self.buffer.drain(..=end);
        Ok(Some(Frame {
            txnr,
            command,
            data,
        }))
    }
}

/// Where a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Opening,
    Open,
}

/// A client session: numbers the messages, matches the answers.
#[derive(Debug)]
pub struct Session<Tag> {
    phase: Phase,
    next_txnr: u64,
    decoder: Decoder,
    /// Messages sent and not yet answered, oldest first: (txnr, tag).
    unanswered: VecDeque<(u64, Tag)>,
}

impl<Tag: Copy> Session<Tag> {
    /// A session and the `open` frame that starts it.
    pub fn open(software: &str) -> (Self, Vec<u8>) {
        let offer = format!("relp_version=0\nrelp_software={software}\ncommands=syslog");
        let session = Self {
            phase: Phase::Opening,
            next_txnr: 2,
            decoder: Decoder::default(),
            unanswered: VecDeque::new(),
        };
        (session, encode(1, "open", offer.as_bytes()))
    }

    /// Whether the server has accepted the session.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Messages sent and not yet acknowledged.
    pub fn unanswered(&self) -> usize {
        self.unanswered.len()
    }

    /// The frame that sends `message`; its acknowledgement will name `tag`.
    pub fn send(&mut self, tag: Tag, message: &[u8]) -> Vec<u8> {
        let txnr = self.next_txnr;
        self.next_txnr = if txnr >= MAX_TXNR { 1 } else { txnr + 1 };
        self.unanswered.push_back((txnr, tag));
        encode(txnr, "syslog", message)
    }

    /// Bytes from the server: the tags of messages now acknowledged, in
    /// the order they were sent.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<Tag>, RelpError> {
        self.decoder.push(bytes);
        let mut acknowledged = Vec::new();
        while let Some(frame) = self.decoder.next_frame()? {
            match frame.command.as_str() {
                "serverclose" => return Err(RelpError::ServerClosed),
                "rsp" => {}
                other => {
                    return Err(RelpError::Malformed(format!(
                        "an unexpected {other:?} command"
                    )));
                }
            }
            let status = String::from_utf8_lossy(&frame.data);
            let status = status.lines().next().unwrap_or_default().to_owned();
            let ok = status.starts_with("200");
            if self.phase == Phase::Opening {
                if frame.txnr != 1 {
                    return Err(RelpError::Malformed("an answer before the open".into()));
                }
                if !ok {
                    return Err(RelpError::Refused {
                        what: "the session",
                        status,
                    });
                }
                self.phase = Phase::Open;
                continue;
            }
            let Some(position) = self.unanswered.iter().position(|(t, _)| *t == frame.txnr) else {
                return Err(RelpError::Malformed(format!(
                    "an answer to transaction {} that was not sent",
                    frame.txnr
                )));
            };
            if !ok {
                return Err(RelpError::Refused {
                    what: "a message",
                    status,
                });
            }
            // librelp answers in order; should one come early, the earlier
            // messages stay unanswered and are sent again after a reconnect.
            let (_, tag) = self.unanswered.remove(position).expect("found above");
            acknowledged.push(tag);
        }
        Ok(acknowledged)
    }

    /// The frame that closes the session politely.
    pub fn close(&mut self) -> Vec<u8> {
        let txnr = self.next_txnr;
        self.next_txnr = if txnr >= MAX_TXNR { 1 } else { txnr + 1 };
        encode(txnr, "close", b"")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_written_as_rsyslog_reads_them() {
        assert_eq!(encode(2, "syslog", b"<86>1 - x"), b"2 syslog 9 <86>1 - x\n");
        assert_eq!(encode(5, "close", b""), b"5 close 0\n");
    }

    #[test]
    fn a_session_opens_then_acknowledges_each_message_in_pieces() {
        let (mut session, open) = Session::<u64>::open("porta,0.1.0");
        let open = String::from_utf8(open).unwrap();
        assert!(
            open.starts_with("1 open 56 relp_version=0\nrelp_software=porta,0.1.0\n"),
            "{open}"
        );
        assert!(open.ends_with("commands=syslog\n"));
        assert!(!session.is_open());
        let answer = encode(
            1,
            "rsp",
            b"200 OK\nrelp_version=0\nrelp_software=librelp,1.11.0\ncommands=syslog",
        );
        assert_eq!(session.receive(&answer).unwrap(), Vec::<u64>::new());
        assert!(session.is_open());
        let first = session.send(41, b"a");
        let second = session.send(42, b"b");
        assert!(first.starts_with(b"2 syslog 1 a") && second.starts_with(b"3 syslog 1 b"));
        assert_eq!(session.unanswered(), 2);
        // The answers arrive split across reads.
        assert_eq!(
            session.receive(b"2 rsp 6 200 O").unwrap(),
            Vec::<u64>::new()
        );
        assert_eq!(
            session.receive(b"K\n3 rsp 6 200 OK\n").unwrap(),
            vec![41, 42]
        );
        assert_eq!(session.unanswered(), 0);
    }

    #[test]
    fn refusals_closes_and_garbage_end_the_session() {
        let open_session = || {
            let (mut session, _) = Session::<u64>::open("porta");
            session.receive(b"1 rsp 6 200 OK\n").unwrap();
            session
        };
        let mut session = open_session();
        session.send(1, b"x");
        assert!(matches!(
            session.receive(b"2 rsp 12 500 no space\n"),
            Err(RelpError::Refused { .. })
        ));
        let mut session = open_session();
        assert_eq!(
            session.receive(b"0 serverclose 0\n"),
            Err(RelpError::ServerClosed)
        );
        let mut session = open_session();
        assert!(matches!(
            session.receive(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            Err(RelpError::Malformed(_))
        ));
        let mut session = open_session();
        assert!(matches!(
            session.receive(b"9 rsp 6 200 OK\n"),
            Err(RelpError::Malformed(_))
        ));
        let (mut refused, _) = Session::<u64>::open("porta");
        assert!(matches!(
            refused.receive(b"1 rsp 23 500 unsupported version\n"),
            Err(RelpError::Refused { .. })
        ));
    }
}
