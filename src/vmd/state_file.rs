//! `state.json`: what vmd last said about its VM, for clients that find no vmd to ask.
//!
//! vmd rewrites it atomically on every state change (running, paused, and the final shut off
//! or crashed). A client that reads "running" but finds the pid lock free knows vmd died
//! without writing its final state, and reports the VM as crashed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use syscalls::Sysno;

use crate::config::write_atomic;
use crate::engine::confine::syscalls::SyscallList;
use crate::protocol::RunState;

/// What a thread that writes `state.json` needs: the atomic write (temp file, fsync, rename,
/// fsync of the directory) and its cleaning of temp files left by killed writers (list the
/// directory, look for each writer in /proc, unlink). Added to every thread that persists the
/// VM's state (main, connection, observer, reaper).
pub const SYSCALLS: SyscallList = SyscallList::calls(&[
    Sysno::openat,
    Sysno::getdents64,
    Sysno::statx,
    Sysno::newfstatat,
    Sysno::fstat,
    Sysno::fsync,
    Sysno::rename,
    Sysno::unlink,
]);

/// The contents of `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateFile {
    /// The VM's state when written.
    pub state: RunState,
    /// The vmd that wrote it.
    pub pid: u32,
    /// vCPUs present (running VMs).
    pub vcpus: u32,
    /// Boots in that vmd (1 + reboots and resets).
    pub boots: u32,
    /// Seconds since the Unix epoch when the current (or last) boot started.
    pub started_at: u64,
    /// For `crashed`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Serialises this process's writes of state files, and holds the one a final crash record
/// has sealed: after [`StateFile::write_final`] no other write may replace that record (the
/// other threads of a vmd being ended run on for a moment).
static WRITES: Mutex<Option<PathBuf>> = Mutex::new(None);

impl StateFile {
    /// Writes `path` atomically, unless a final record sealed it (then nothing happens).
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let sealed = WRITES.lock().unwrap_or_else(PoisonError::into_inner);
        if sealed.as_deref() == Some(path) {
            return Ok(());
        }
        self.write_unlocked(path)
    }

    /// Writes `path` as this process's final record and seals it against later writes. Waits
    /// at most `patience` for a write in progress: the thread making it may never finish (it
    /// may be the one that was stopped), and then this record is written regardless.
    pub fn write_final(&self, path: &Path, patience: Duration) -> io::Result<()> {
        let deadline = Instant::now() + patience;
        let guard: Option<MutexGuard<'_, Option<PathBuf>>> = loop {
            match WRITES.try_lock() {
                Ok(guard) => break Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => break Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TryLockError::WouldBlock) => break None,
            }
        };
        let result = self.write_unlocked(path);
        if let Some(mut sealed) = guard {
            *sealed = Some(path.to_path_buf());
        }
        result
    }

    fn write_unlocked(&self, path: &Path) -> io::Result<()> {
        let mut text = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        text.push(b'\n');
        write_atomic(path, &text)
    }

    /// Reads `path`; `None` when there is no file. A file that does not parse (hand-edited,
    /// from an incompatible version) is an error.
    pub fn read(path: &Path) -> io::Result<Option<StateFile>> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let state = StateFile {
            state: RunState::Crashed,
            pid: 12,
            vcpus: 2,
            boots: 3,
            started_at: 1_700_000_000,
            reason: Some("triple fault at rip 0x1000".into()),
        };
        state.write(&path).expect("write");
        assert_eq!(StateFile::read(&path).expect("read"), Some(state));
    }

    #[test]
    fn a_final_record_is_not_replaced_by_later_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let crashed = StateFile {
            state: RunState::Crashed,
            pid: 1,
            vcpus: 0,
            boots: 1,
            started_at: 0,
            reason: Some("blocked system call 99 (sysinfo) on thread vcpu0".into()),
        };
        crashed
            .write_final(&path, Duration::from_secs(1))
            .expect("final");
        let running = StateFile {
            state: RunState::Running,
            reason: None,
            ..crashed.clone()
        };
        running.write(&path).expect("later write");
        assert_eq!(StateFile::read(&path).expect("read"), Some(crashed));
    }

    #[test]
    fn a_missing_file_reads_as_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            StateFile::read(&dir.path().join("state.json")).expect("read"),
            None
        );
    }
}
