//! What the crash tests share: reproducible varied timing ([`Rng`], [`seed`]) and the count
//! of kills that landed mid-operation ([`Tally`]).
//!
//! A crash test retries with varied timing until enough kills landed while the operation was
//! writing (bounded by a number of tries), so the crash path cannot go untested on a machine
//! that is too fast or too slow for one fixed delay. A kill counts as landed only with proof:
//! the victim reported progress before the kill and had not reported completion.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable naming the file each crash test's count line is appended to
/// (scripts/test.sh prints them in its summary).
pub const CRASH_LOG: &str = "VMUX_CRASH_LOG";

/// A small xorshift generator: reproducible timing from a printed seed, no extra crate.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is made odd).
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next raw value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// `VMUX_CRASH_SEED` when set (to replay a run), else one from the clock. The caller prints it.
pub fn seed() -> u64 {
    if let Some(seed) = std::env::var("VMUX_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return seed;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1
}

/// How many kills a crash test tried and how many landed mid-operation.
#[derive(Debug)]
pub struct Tally {
    name: &'static str,
    tries: usize,
    landed: usize,
}

impl Tally {
    /// An empty count for crash test `name`.
    pub fn new(name: &'static str) -> Tally {
        Tally {
            name,
            tries: 0,
            landed: 0,
        }
    }

    /// Counts one kill, and whether it (provably) landed mid-operation.
    pub fn record(&mut self, landed: bool) {
        self.tries += 1;
        if landed {
            self.landed += 1;
        }
    }

    /// Whether to try again: fewer than `wanted` landed and fewer than `max_tries` tried.
    pub fn wants_more(&self, wanted: usize, max_tries: usize) -> bool {
        self.landed < wanted && self.tries < max_tries
    }

    /// Kills tried.
    pub fn tries(&self) -> usize {
        self.tries
    }

    /// Kills that landed mid-operation.
    pub fn landed(&self) -> usize {
        self.landed
    }

    /// The line `crash test NAME: K of N kills landed mid-write`, then `detail`.
    pub fn line(&self, detail: &str) -> String {
        format!(
            "crash test {}: {} of {} kills landed mid-write{detail}",
            self.name, self.landed, self.tries
        )
    }

    /// Prints [`Tally::line`] (and appends it to the file `VMUX_CRASH_LOG` names), then fails
    /// the test unless at least `min` kills landed.
    pub fn finish(&self, min: usize, detail: &str) {
        let line = self.line(detail);
        println!("{line}");
        if let Some(log) = std::env::var_os(CRASH_LOG) {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()))
                .unwrap_or_else(|e| panic!("cannot append to {CRASH_LOG}: {e}"));
        }
        assert!(
            self.landed >= min,
            "{line}: at least {min} must land mid-write, or the crash path went untested"
        );
    }
}
