//! vmd's own log: `log` records become one line each (`<UTC time> <level> <target>: <text>`) in
//! `<state>/vms/<name>/vmd.log`, written by the `log` thread.
//!
//! A guest can make vmd log (every malformed virtio chain is a warning), so the log is bounded
//! twice over: each call site may log [`BURST`] lines per [`WINDOW`]; the rest are counted and
//! the count is appended to that site's next line that passes (`[N similar lines
//! suppressed]`). And the file is rotated while vmd runs: once it holds [`MAX_BYTES`] it is
//! renamed `vmd.log.1` (replacing the previous one) and a fresh `vmd.log` is started, so the
//! two never exceed twice that. Logging threads only queue lines (a bounded queue; a full one
//! counts lost lines) and never wait for the disk; the writer is the only thread that opens,
//! renames or writes the file (and points stderr at the current file, for panic messages).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};
use syscalls::Sysno;

use crate::engine::confine::syscalls::{ArgRule, SyscallList};
use crate::engine::confine::{self, ThreadKind};

/// `vmd.log` is rotated to `vmd.log.1` once it holds this many bytes.
pub const MAX_BYTES: u64 = 1 << 20;
/// Lines one call site may log per [`WINDOW`].
pub const BURST: u32 = 1;
/// The rate limit's window.
pub const WINDOW: Duration = Duration::from_secs(1);
/// Lines queued for the writer at most; more are counted as lost.
const QUEUE_LINES: usize = 1024;

/// What the log writer may call: write and rotate its file and point stderr at it.
pub const SYSCALLS: SyscallList = SyscallList {
    any: &[
        Sysno::rename,
        Sysno::fstat,
        Sysno::statx,
        Sysno::newfstatat,
        Sysno::dup2,
        Sysno::dup3,
    ],
    ioctls: &[],
    args: &[ArgRule {
        call: Sysno::openat,
        index: 2,
        mask: (libc::O_ACCMODE | libc::O_APPEND) as u64,
        values: &[(libc::O_WRONLY | libc::O_APPEND) as u64],
    }],
};

enum Message {
    Line(String),
    Flush(SyncSender<()>),
}

struct QueueLogger {
    queue: OnceLock<SyncSender<Message>>,
    limiter: Mutex<RateLimiter>,
    lost: AtomicU64,
}

static LOGGER: QueueLogger = QueueLogger {
    queue: OnceLock::new(),
    limiter: Mutex::new(RateLimiter::new()),
    lost: AtomicU64::new(0),
};

impl Log for QueueLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let site = (
            record
                .file_static()
                .or(record.module_path_static())
                .unwrap_or(""),
            record.line().unwrap_or(0),
        );
        let verdict = self
            .limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(site, Instant::now());
        let Verdict::Write { suppressed } = verdict else {
            return;
        };
        let mut line = format!(
            "{} {:<5} {}: {}",
            utc_timestamp(SystemTime::now()),
            record.level(),
            record.target(),
            record.args()
        );
        if suppressed > 0 {
            line.push_str(&format!(" [{suppressed} similar lines suppressed]"));
        }
        let lost = self.lost.swap(0, Ordering::Relaxed);
        if lost > 0 {
            line.push_str(&format!(
                " [{lost} earlier lines lost: the log writer fell behind]"
            ));
        }
        line.push('\n');
        match self.queue.get() {
            Some(queue) => match queue.try_send(Message::Line(line)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.lost.fetch_add(1 + lost, Ordering::Relaxed);
                }
                Err(TrySendError::Disconnected(Message::Line(line))) => write_stderr(&line),
                Err(TrySendError::Disconnected(Message::Flush(_))) => {}
            },
            // Before the writer runs (early start-up) or without one: straight to stderr.
            None => write_stderr(&line),
        }
    }

    fn flush(&self) {
        flush();
    }
}

fn write_stderr(line: &str) {
    // One write per line so concurrent threads do not interleave within a line.
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

/// Installs the logger (info and above; `VMUX_LOG=debug` for more). Lines go to stderr until
/// [`start_writer`]. A second call is a no-op.
pub fn init() {
    let level = match std::env::var("VMUX_LOG").as_deref() {
        Ok("debug") => LevelFilter::Debug,
        Ok("trace") => LevelFilter::Trace,
        Ok("warn") => LevelFilter::Warn,
        _ => LevelFilter::Info,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// Starts the `log` thread writing to `file` (open for appending at `path`, and stderr's
/// target), rotating at [`MAX_BYTES`].
pub fn start_writer(path: &Path, file: File) -> io::Result<()> {
    let (queue, lines) = mpsc::sync_channel(QUEUE_LINES);
    let written = file.metadata()?.len();
    let mut log = RotatingFile {
        path: path.to_path_buf(),
        file,
        written,
        max_bytes: MAX_BYTES,
        redirect_stderr: true,
    };
    confine::spawn(ThreadKind::Log, "log".into(), move || run(&lines, &mut log))?;
    if LOGGER.queue.set(queue).is_err() {
        log::warn!("the log writer was started twice");
    }
    Ok(())
}

/// Waits (at most a second) until every queued line is written; false when the writer did
/// not confirm (it is stuck, or there is none and lines went to stderr directly).
pub fn flush() -> bool {
    let Some(queue) = LOGGER.queue.get() else {
        return false;
    };
    let (done, wait) = mpsc::sync_channel(1);
    queue.send(Message::Flush(done)).is_ok() && wait.recv_timeout(Duration::from_secs(1)).is_ok()
}

fn run(lines: &Receiver<Message>, log: &mut RotatingFile) {
    while let Ok(message) = lines.recv() {
        match message {
            Message::Line(line) => {
                if let Err(e) = log.append(line.as_bytes()) {
                    // Nowhere better to say it; stderr may still reach the old file.
                    write_stderr(&format!("vmd: cannot write the log: {e}\n"));
                }
            }
            Message::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// The log file with one generation of rotation.
struct RotatingFile {
    path: PathBuf,
    file: File,
    written: u64,
    max_bytes: u64,
    /// Point stderr at each new file (vmd; not the tests, which share stderr).
    redirect_stderr: bool,
}

impl RotatingFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.written >= self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        fs::rename(&self.path, &old)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        self.written = 0;
        if self.redirect_stderr {
            // Panic messages and last-resort reports go to stderr: keep it on the current file.
            nix::unistd::dup2_stderr(&self.file)?;
        }
        Ok(())
    }
}

/// A call site: source file and line.
type Site = (&'static str, u32);

/// Per call site, at most [`BURST`] lines per [`WINDOW`]; the rest are counted.
struct RateLimiter {
    sites: Option<HashMap<Site, SiteState>>,
}

struct SiteState {
    window_start: Instant,
    in_window: u32,
    suppressed: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Write the line, noting this many lines suppressed since the last one written.
    Write { suppressed: u64 },
    /// Drop it (counted).
    Suppress,
}

impl RateLimiter {
    const fn new() -> RateLimiter {
        RateLimiter { sites: None }
    }

    fn check(&mut self, site: Site, now: Instant) -> Verdict {
        // The map only ever holds the binary's logging call sites: bounded.
        let state = self
            .sites
            .get_or_insert_with(HashMap::new)
            .entry(site)
            .or_insert(SiteState {
                window_start: now,
                in_window: 0,
                suppressed: 0,
            });
        if now.duration_since(state.window_start) >= WINDOW {
            state.window_start = now;
            state.in_window = 0;
        }
        if state.in_window >= BURST {
            state.suppressed += 1;
            return Verdict::Suppress;
        }
        state.in_window += 1;
        Verdict::Write {
            suppressed: std::mem::take(&mut state.suppressed),
        }
    }
}

/// `2024-05-01T12:34:56.789Z`.
fn utc_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day): H. Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(utc_timestamp(t), "2024-02-29T12:34:56.789Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_flooding_call_site_gets_a_burst_per_window_then_a_count() {
        let mut limiter = RateLimiter::new();
        let start = Instant::now();
        let site = ("worker.rs", 10);
        let written = (0..100)
            .filter(|_| limiter.check(site, start) != Verdict::Suppress)
            .count();
        assert_eq!(written, BURST as usize);
        let next = limiter.check(site, start + WINDOW);
        assert_eq!(
            next,
            Verdict::Write {
                suppressed: 100 - u64::from(BURST)
            }
        );
    }

    #[test]
    fn call_sites_are_limited_separately() {
        let mut limiter = RateLimiter::new();
        let now = Instant::now();
        for _ in 0..BURST {
            limiter.check(("a.rs", 1), now);
        }
        assert_eq!(limiter.check(("a.rs", 1), now), Verdict::Suppress);
        assert_eq!(
            limiter.check(("a.rs", 2), now),
            Verdict::Write { suppressed: 0 }
        );
    }

    #[test]
    fn the_file_is_rotated_at_its_cap_and_both_generations_stay_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vmd.log");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open");
        let mut log = RotatingFile {
            path: path.clone(),
            file,
            written: 0,
            max_bytes: 100,
            redirect_stderr: false,
        };
        for _ in 0..50 {
            log.append(&[b'x'; 19]).expect("append");
            log.append(b"\n").expect("append");
        }
        let current = fs::metadata(&path).expect("current").len();
        let previous = fs::metadata(dir.path().join("vmd.log.1"))
            .expect("rotated")
            .len();
        assert!(current <= 100, "{current}");
        assert!(previous <= 100, "{previous}");
    }
}
