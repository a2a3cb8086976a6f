//! The console logger: a thread that appends everything the guest prints to
//! `<state>/vms/<name>/console.log`, rotating it to `console.log.1` at a size cap so a chatty
//! guest cannot fill the disk.
//!
//! It reads the console ring like any other consumer, so a slow disk costs log lines (marked
//! `[vmux: N bytes dropped]`), never a blocked vCPU.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use syscalls::Sysno;

use super::ring::{ConsoleRing, ReadOutcome, RingReader};
use crate::engine::confine::syscalls::SyscallList;
use crate::engine::confine::{self, ThreadKind};

/// Size at which `console.log` is rotated to `console.log.1`, in bytes.
pub const CONSOLE_LOG_MAX_BYTES: u64 = 16 << 20;

/// What the `console-log` thread may call: append to its file and rotate it.
pub const SYSCALLS: SyscallList =
    SyscallList::calls(&[Sysno::openat, Sysno::rename, Sysno::fstat, Sysno::statx]);

/// An append-only log file with one generation of rotation.
pub struct RotatingLog {
    path: PathBuf,
    file: File,
    written: u64,
    max_bytes: u64,
}

impl RotatingLog {
    /// Opens (creating, mode 0600) `path` for appending; rotates at `max_bytes`.
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<RotatingLog> {
        let file = open_append(path)?;
        let written = file.metadata()?.len();
        Ok(RotatingLog {
            path: path.to_path_buf(),
            file,
            written,
            max_bytes,
        })
    }

    /// Appends `bytes`, first rotating if the file has reached its cap.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.written >= self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        fs::rename(&self.path, crate::config::VmdFiles::rotated(&self.path))?;
        self.file = open_append(&self.path)?;
        self.written = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Starts the logger thread. It ends once the ring is closed and fully written out.
pub fn spawn(ring: Arc<ConsoleRing>, log: RotatingLog) -> io::Result<JoinHandle<()>> {
    confine::spawn(ThreadKind::ConsoleLog, "console-log".into(), move || {
        run(ring, log);
    })
}

fn run(ring: Arc<ConsoleRing>, mut log: RotatingLog) {
    // Start at the oldest byte: output the guest printed before this thread got going (the
    // first boot starts before the logger) belongs in the log too.
    let mut reader = RingReader::new(ring, true);
    let mut buf = Vec::new();
    let mut failed = false;
    loop {
        buf.clear();
        match reader.next(&mut buf, Duration::from_secs(1)) {
            ReadOutcome::Closed => return,
            ReadOutcome::Idle => continue,
            ReadOutcome::Data => {}
        }
        match log.append(&buf) {
            Ok(()) => failed = false,
            // Say it once per failure streak; keep draining so the cursor stays current.
            Err(e) if !failed => {
                failed = true;
                log::warn!("cannot append to {}: {e}", log.path.display());
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_to_dot_one_at_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("console.log");
        let mut log = RotatingLog::open(&path, 10).expect("open");
        log.append(b"0123456789").expect("first");
        log.append(b"abc").expect("second");
        assert_eq!(fs::read(&path).expect("read"), b"abc");
        assert_eq!(
            fs::read(dir.path().join("console.log.1")).expect("read .1"),
            b"0123456789"
        );
    }

    #[test]
    fn logger_writes_ring_output_and_ends_when_the_ring_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("console.log");
        let ring = Arc::new(ConsoleRing::new(64));
        ring.push(b"early ");
        let log = RotatingLog::open(&path, CONSOLE_LOG_MAX_BYTES).expect("open");
        let thread = spawn(Arc::clone(&ring), log).expect("spawn");
        ring.push(b"late");
        ring.close();
        thread.join().expect("join");
        assert_eq!(fs::read(&path).expect("read"), b"early late");
    }
}
