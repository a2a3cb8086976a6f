//! Progress and cancellation of long operations (volume copies, conversions, wipes, merges, and
//! later saving and restoring VM memory): one [`Progress`] handle that the caller makes and
//! passes in, the operation reports through, and any number of watchers read and cancel.
//!
//! - The operation calls [`Progress::begin`] with the bytes it has to process, then
//!   [`Progress::advance`] per chunk (an atomic add and an atomic load: no lock, no allocation,
//!   no system call), and [`Progress::finish`] once its result is durable and has its name.
//!   `advance` and [`Progress::check`] return [`Cancelled`] once a watcher has cancelled; the
//!   operation then unwinds through its ordinary error path, so a cancel cleans up exactly as a
//!   failure does.
//! - Watchers (the CLI's progress bar or JSON lines, the TUI's task list, a remote host's event
//!   stream) call [`Progress::snapshot`] as often as they redraw, and [`Progress::cancel`].
//!
//! Guarantees a watcher can rely on: `done` never goes backwards and never exceeds `total`, and
//! `done == total` is seen only once the operation has finished (the last byte counts when the
//! result is committed), so 100 % is reached exactly once, and never by an operation that then
//! fails or is cancelled. A [`ProgressSnapshot`] is a plain value (serde) that travels as a
//! progress event; [`Progress::apply`] feeds such events into a local handle, so a front end
//! watches a remote operation the same way as a local one.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The operation was cancelled through its [`Progress`] handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operation was cancelled")]
pub struct Cancelled;

/// A progress/cancel handle shared by one operation and its watchers. Cloning is cheap (two
/// `Arc`s); every clone is the same handle. Any thread may report or watch.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    counters: Arc<Counters>,
    cancel: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct Counters {
    /// Bytes to process, set by `begin`.
    total: AtomicU64,
    /// Bytes processed so far (may pass `total`; snapshots clamp it).
    done: AtomicU64,
    /// Set once by `finish`.
    finished: AtomicBool,
}

/// Where an operation stands, as a plain value: what watchers draw and what a remote host sends
/// as a progress event. Bytes are the operation's own unit (bytes of virtual disk for image
/// copies, bytes of guest memory for save/restore).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressSnapshot {
    /// Bytes processed; below `total` until `finished`, then equal to it.
    pub done: u64,
    /// Bytes to process; 0 until the operation has measured its work.
    pub total: u64,
    /// The operation succeeded (its result is durable and named).
    #[serde(default, skip_serializing_if = "is_false")]
    pub finished: bool,
    /// A watcher asked the operation to stop.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cancelled: bool,
}

fn is_false(flag: &bool) -> bool {
    !flag
}

impl ProgressSnapshot {
    /// Whether the operation has said how much there is to do (or finished without saying).
    pub fn measured(&self) -> bool {
        self.total > 0 || self.finished
    }

    /// The done fraction, 0.0..=1.0 (1.0 only when finished).
    pub fn fraction(&self) -> f64 {
        if self.finished {
            1.0
        } else if self.total == 0 {
            0.0
        } else {
            self.done as f64 / self.total as f64
        }
    }

    /// Bytes left to process.
    pub fn remaining(&self) -> u64 {
        self.total.saturating_sub(self.done)
    }
}

/// One progress event as front ends print it (`--progress` JSON lines) and a remote host sends
/// it: the operation's name and its snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressEvent {
    /// The verb, like `vol-convert`.
    pub op: String,
    /// Where it stands.
    #[serde(flatten)]
    pub progress: ProgressSnapshot,
}

impl Progress {
    /// A fresh handle: nothing measured, not cancelled.
    pub fn new() -> Progress {
        Progress::default()
    }

    /// Called by the operation once it knows its work: `total` bytes to process. Fails when
    /// the handle was cancelled already (before anything was changed).
    pub fn begin(&self, total: u64) -> Result<(), Cancelled> {
        self.counters.total.store(total, Ordering::Release);
        self.check()
    }

    /// Called by the operation after processing `bytes` more; fails once the handle is
    /// cancelled, and the operation then unwinds as on an error. Cheap enough per chunk.
    pub fn advance(&self, bytes: u64) -> Result<(), Cancelled> {
        self.counters.done.fetch_add(bytes, Ordering::Relaxed);
        self.check()
    }

    /// Fails when the handle is cancelled (for points where nothing was processed).
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// Called by the operation once its result is durable and named: `done` becomes `total`.
    /// Watchers see 100 % from here on, and only from here on.
    pub fn finish(&self) {
        self.counters.finished.store(true, Ordering::Release);
    }

    /// Asks the operation to stop at its next chunk. It then cleans up as after a failure and
    /// returns its cancellation error; an operation past its last check finishes normally.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether [`Progress::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The cancel flag itself, for a signal handler that sets it (`signal_hook::flag`): setting
    /// it to `true` is [`Progress::cancel`].
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// Where the operation stands now.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let finished = self.counters.finished.load(Ordering::Acquire);
        let total = self.counters.total.load(Ordering::Acquire);
        let done = if finished {
            total
        } else {
            // The last byte counts at `finish`, so 100 % is reached exactly once.
            self.counters
                .done
                .load(Ordering::Relaxed)
                .min(total.saturating_sub(1))
        };
        ProgressSnapshot {
            done,
            total,
            finished,
            cancelled: self.is_cancelled(),
        }
    }

    /// Feeds a snapshot received from elsewhere (a remote host's progress event) into this
    /// handle, so local watchers see the remote operation. `done` only moves forward. The
    /// cancel flag is not taken over: cancelling is a request this side sends, not receives.
    pub fn apply(&self, event: &ProgressSnapshot) {
        self.counters.total.store(event.total, Ordering::Release);
        self.counters.done.fetch_max(event.done, Ordering::Relaxed);
        if event.finished {
            self.finish();
        }
    }
}

/// Transfer rate and time left, from snapshots taken over time (the front ends' side: the
/// handle itself keeps no clock). The rate is measured over the last `window`, so it follows
/// changes (a sparse stretch that is skipped fast, a slow disk) within a few seconds.
#[derive(Debug, Clone)]
pub struct RateMeter {
    window: Duration,
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    /// A meter averaging over `window`.
    pub fn new(window: Duration) -> RateMeter {
        RateMeter {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Records that `done` bytes were processed at `at` (calls in time order).
    pub fn record(&mut self, at: Instant, done: u64) {
        self.samples.push_back((at, done));
        // Keep one sample at or before the window's start, so the window stays full.
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| at.duration_since(*t) >= self.window)
        {
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window; `None` until samples span at least half a second.
    pub fn rate(&self) -> Option<f64> {
        let (first_at, first) = *self.samples.front()?;
        let (last_at, last) = *self.samples.back()?;
        let span = last_at.duration_since(first_at).as_secs_f64();
        (span >= 0.5).then(|| last.saturating_sub(first) as f64 / span)
    }

    /// Time left for `snapshot` at the current rate; `None` while unknown or stalled.
    pub fn eta(&self, snapshot: &ProgressSnapshot) -> Option<Duration> {
        let rate = self.rate().filter(|r| *r >= 1.0)?;
        if !snapshot.measured() {
            return None;
        }
        Some(Duration::from_secs_f64(snapshot.remaining() as f64 / rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_handle_is_unmeasured() {
        let progress = Progress::new();
        let snapshot = progress.snapshot();
        assert!(!snapshot.measured());
        assert_eq!(snapshot.fraction(), 0.0);
    }

    #[test]
    fn done_stays_below_total_until_finish() {
        let progress = Progress::new();
        progress.begin(100).expect("begin");
        progress.advance(60).expect("advance");
        progress.advance(60).expect("advance past the total");
        let running = progress.snapshot();
        assert_eq!((running.done, running.total), (99, 100));
        assert!(!running.finished && running.fraction() < 1.0);
        progress.finish();
        let done = progress.snapshot();
        assert_eq!((done.done, done.total, done.finished), (100, 100, true));
        assert_eq!(done.fraction(), 1.0);
    }

    #[test]
    fn advancing_a_cancelled_handle_fails_and_clones_share_the_flag() {
        let progress = Progress::new();
        let watcher = progress.clone();
        progress.begin(10).expect("begin");
        watcher.cancel();
        assert_eq!(progress.advance(1), Err(Cancelled));
        assert_eq!(progress.check(), Err(Cancelled));
        assert!(progress.snapshot().cancelled);
    }

    #[test]
    fn a_handle_cancelled_before_the_start_refuses_to_begin() {
        let progress = Progress::new();
        progress.cancel();
        assert_eq!(progress.begin(10), Err(Cancelled));
    }

    #[test]
    fn the_cancel_flag_is_the_handle_cancel() {
        let progress = Progress::new();
        progress.cancel_flag().store(true, Ordering::Relaxed);
        assert!(progress.is_cancelled());
    }

    #[test]
    fn snapshots_travel_as_json_events() {
        let event = ProgressEvent {
            op: "vol-convert".into(),
            progress: ProgressSnapshot {
                done: 5,
                total: 10,
                finished: false,
                cancelled: false,
            },
        };
        let line = serde_json::to_string(&event).expect("serialize");
        assert_eq!(line, r#"{"op":"vol-convert","done":5,"total":10}"#);
        let back: ProgressEvent = serde_json::from_str(&line).expect("parse");
        assert_eq!(back, event);
    }

    #[test]
    fn applied_events_only_move_forward_and_finish() {
        let mirror = Progress::new();
        let at = |done, finished| ProgressSnapshot {
            done,
            total: 10,
            finished,
            cancelled: false,
        };
        mirror.apply(&at(6, false));
        mirror.apply(&at(4, false));
        assert_eq!(mirror.snapshot().done, 6);
        mirror.apply(&at(10, true));
        assert!(mirror.snapshot().finished);
        assert_eq!(mirror.snapshot().done, 10);
    }

    #[test]
    fn the_rate_is_measured_over_the_window() {
        let start = Instant::now();
        let mut meter = RateMeter::new(Duration::from_secs(2));
        meter.record(start, 0);
        assert_eq!(meter.rate(), None);
        for second in 1..=10u64 {
            // 100 bytes/s for 5 s, then 1000 bytes/s.
            let done = if second <= 5 {
                second * 100
            } else {
                500 + (second - 5) * 1000
            };
            meter.record(start + Duration::from_secs(second), done);
        }
        let rate = meter.rate().expect("rate");
        assert!((rate - 1000.0).abs() < 1.0, "{rate}");
        let snapshot = ProgressSnapshot {
            done: 5500,
            total: 15500,
            finished: false,
            cancelled: false,
        };
        assert_eq!(meter.eta(&snapshot), Some(Duration::from_secs(10)));
    }
}
