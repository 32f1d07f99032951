//! What the benchmarks share: the reference figures they print beside
//! their own.

use std::time::{Duration, Instant};

/// One durable write straight to sled on this disk (insert + flush, 200
/// times): the floor under any change the controller acknowledges.
pub(crate) fn durable_sled_write() -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let started = Instant::now();
    for i in 0..200u32 {
        db.insert(i.to_be_bytes(), vec![0u8; 256]).unwrap();
        db.flush().unwrap();
    }
    started.elapsed() / 200
}
