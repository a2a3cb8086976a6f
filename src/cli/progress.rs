//! Progress of the long verbs on the command line (vol-clone, vol-convert, vol-upload,
//! vol-download, vol-wipe, vol-resize --preallocate, snapshot-delete): a [`Reporter`] makes the
//! [`Progress`] handle the storage layer reports through and shows it on stderr, and turns
//! Ctrl-C into a cancel.
//!
//! - On a terminal: a progress bar with bytes, rate and time left, redrawn at most 4 times a
//!   second ([`Display::Bar`]).
//! - With `--progress`: one JSON line per update on stderr, at most 4 a second, plus a final one
//!   (`{"op":"vol-convert","done":…,"total":…}`, then `"finished":true` or `"cancelled":true`),
//!   for scripts and other front ends ([`Display::Json`]).
//! - Otherwise (stderr is not a terminal): nothing.
//!
//! The first Ctrl-C (SIGINT) cancels the operation, which cleans up as after a failure; the verb
//! then says what was left as it was and exits with status 130 ([`cancelled`]). SIGTERM and a
//! closed terminal (SIGHUP) cancel the same way (status 143, 129), so a dropped SSH connection
//! leaves no temporary file of many GiB behind. A second signal, for an operation stuck in the
//! kernel, ends the process at once (the temporary file it leaves is removed by the next vmux
//! storage command).

use crate::progress::{Progress, ProgressEvent, ProgressSnapshot};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use signal_hook::SigId;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Exit status of a verb cancelled by Ctrl-C (128 + SIGINT, as shells report it).
pub const CANCELLED_STATUS: u8 = 130;

/// The signals that cancel a long verb.
const CANCEL_SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// The last cancelling signal that arrived (0: none), for the exit status.
fn last_signal() -> &'static Arc<AtomicUsize> {
    static LAST: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    LAST.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// How often the watcher looks at the handle.
const POLL: Duration = Duration::from_millis(50);
/// Least time between two JSON lines.
const JSON_PERIOD: Duration = Duration::from_millis(250);
/// Bar redraws per second at most.
const BAR_HZ: u8 = 4;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// A bar on the terminal (stderr).
    Bar,
    /// JSON lines on stderr (`--progress`).
    Json,
    /// Nothing (stderr is not a terminal).
    Quiet,
}

impl Display {
    /// JSON lines when asked for, else a bar when stderr is a terminal, else nothing.
    pub fn choose(json: bool) -> Display {
        if json {
            Display::Json
        } else if std::io::stderr().is_terminal() {
            Display::Bar
        } else {
            Display::Quiet
        }
    }
}

/// Shows one operation's progress while it runs on the calling thread and cancels it on
/// SIGINT. Made per verb; [`Reporter::run`] consumes it.
pub struct Reporter {
    op: &'static str,
    display: Display,
    progress: Progress,
    signals: Vec<SigId>,
}

impl Reporter {
    /// A reporter for verb `op` (`vol-convert`, ...): SIGINT, SIGTERM and SIGHUP cancel from
    /// now on.
    pub fn start(op: &'static str, display: Display) -> anyhow::Result<Reporter> {
        let progress = Progress::new();
        let flag = progress.cancel_flag();
        let mut signals = Vec::new();
        for signal in CANCEL_SIGNALS {
            // The shutdown goes first: it only fires when the flag was already set, by an
            // earlier signal.
            signals.push(signal_hook::flag::register_conditional_shutdown(
                signal,
                128 + signal,
                Arc::clone(&flag),
            )?);
            signals.push(signal_hook::flag::register(signal, Arc::clone(&flag))?);
            signals.push(signal_hook::flag::register_usize(
                signal,
                Arc::clone(last_signal()),
                signal as usize,
            )?);
        }
        Ok(Reporter {
            op,
            display,
            progress,
            signals,
        })
    }

    /// The handle the operation reports through (for tests and callers that run it elsewhere).
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Runs `operation` with the handle, showing its progress meanwhile; afterwards the bar is
    /// gone (or the final JSON line printed) and the signals no longer cancel anything.
    pub fn run<T, E>(self, operation: impl FnOnce(&Progress) -> Result<T, E>) -> Result<T, E> {
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = self.watch(&stop);
        let result = operation(&self.progress);
        stop.store(true, Ordering::Relaxed);
        if let Some(watcher) = watcher {
            // The watcher only draws; a panic there must not hide the operation's result.
            let _ = watcher.join();
        }
        let end = self.progress.snapshot();
        if self.display == Display::Json && (end.finished || end.cancelled) {
            print_event(self.op, &end);
        }
        result
    }

    /// Starts the thread that draws (none when quiet).
    fn watch(&self, stop: &Arc<AtomicBool>) -> Option<JoinHandle<()>> {
        let (op, progress, stop) = (self.op, self.progress.clone(), Arc::clone(stop));
        let body: Box<dyn FnOnce() + Send> = match self.display {
            Display::Quiet => return None,
            Display::Json => Box::new(move || json_lines(op, &progress, &stop)),
            Display::Bar => Box::new(move || bar(op, &progress, &stop)),
        };
        std::thread::Builder::new()
            .name("vmux-progress".into())
            .spawn(body)
            .ok()
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        for id in self.signals.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Prints one JSON progress line on stderr (a failed write is ignored: progress is advisory).
fn print_event(op: &str, snapshot: &ProgressSnapshot) {
    let event = ProgressEvent {
        op: op.to_string(),
        progress: *snapshot,
    };
    if let Ok(line) = serde_json::to_string(&event) {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// JSON lines while the operation runs: one whenever the snapshot changed, at most every
/// [`JSON_PERIOD`]. The final line (finished or cancelled) is [`Reporter::run`]'s.
fn json_lines(op: &str, progress: &Progress, stop: &AtomicBool) {
    let mut last: Option<ProgressSnapshot> = None;
    let mut printed: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let now = progress.snapshot();
        let due = printed.is_none_or(|at| at.elapsed() >= JSON_PERIOD);
        if due && now.measured() && !now.finished && !now.cancelled && last != Some(now) {
            print_event(op, &now);
            last = Some(now);
            printed = Some(Instant::now());
        }
        std::thread::sleep(POLL);
    }
}

/// The terminal bar, as wide as the terminal:
/// `vol-convert [=====>     ]  42% 430.00 MiB/1.00 GiB 85.00 MiB/s 7s left`. Drawn once the
/// operation has measured its work.
fn bar(op: &str, progress: &Progress, stop: &AtomicBool) {
    let mut bar: Option<ProgressBar> = None;
    let mut cancelling = false;
    while !stop.load(Ordering::Relaxed) {
        let now = progress.snapshot();
        if now.measured() {
            let bar = bar.get_or_insert_with(|| new_bar(op, now.total));
            bar.set_length(now.total);
            bar.set_position(now.done);
            if now.cancelled && !cancelling {
                cancelling = true;
                bar.set_message(" cancelling…");
            }
        }
        std::thread::sleep(POLL);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

fn new_bar(op: &str, total: u64) -> ProgressBar {
    let bar =
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(BAR_HZ));
    let style = ProgressStyle::with_template(
        "{prefix} [{wide_bar}] {percent:>3}% {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta} left{msg}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(op.to_string());
    bar
}

/// Says on stderr what a cancelled verb left as it was and gives the exit status of the signal
/// that cancelled it (130 for Ctrl-C). A terminal that is gone (SIGHUP) gets no message.
pub fn cancelled(what: &str) -> ExitCode {
    let _ = writeln!(std::io::stderr().lock(), "cancelled: {what}");
    match last_signal().load(Ordering::Relaxed) {
        0 => ExitCode::from(CANCELLED_STATUS),
        signal => ExitCode::from(u8::try_from(128 + signal).unwrap_or(CANCELLED_STATUS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_runs_the_operation_with_the_handle() {
        let reporter = Reporter::start("vol-test", Display::Quiet).expect("start");
        let result: Result<u64, crate::progress::Cancelled> = reporter.run(|progress| {
            progress.begin(10)?;
            progress.advance(10)?;
            progress.finish();
            Ok(progress.snapshot().done)
        });
        assert_eq!(result, Ok(10));
    }

    #[test]
    fn a_cancel_reaches_the_operation() {
        let reporter = Reporter::start("vol-test", Display::Quiet).expect("start");
        reporter.progress().cancel();
        let result = reporter.run(|progress| progress.begin(10));
        assert_eq!(result, Err(crate::progress::Cancelled));
    }
}
