//! The reaper: the thread that ends vmd after a thread made a system call its filter forbids.
//! It waits on the pipe the SIGSYS handler writes to (`engine::confine::sigsys`), and with the
//! handler's line (`blocked system call N (name) on thread T`) it logs the reason, records the
//! VM as crashed with that reason in `state.json` (what `vmux info` and the TUI show), removes
//! the control socket and the pid file as a normal exit would, and ends the process at once.
//!
//! It touches no lock of vmd's: the trapped thread may hold any of them.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use syscalls::Sysno;

use crate::engine::confine::sigsys::{self, EXIT_CODE};
use crate::engine::confine::syscalls::SyscallList;
use crate::protocol::RunState;
use crate::vmd::state_file::StateFile;

/// What the reaper may call: read the pipe, rewrite `state.json`, unlink the socket and pid
/// file.
pub const SYSCALLS: SyscallList = SyscallList::calls(&[
    Sysno::read,
    Sysno::openat,
    Sysno::fsync,
    Sysno::rename,
    Sysno::unlink,
    Sysno::fstat,
    Sysno::statx,
    Sysno::newfstatat,
    Sysno::lseek,
]);

/// The files a crash updates.
#[derive(Debug, Clone)]
pub struct CrashFiles {
    /// `state.json`.
    pub state: PathBuf,
    /// The control socket.
    pub socket: PathBuf,
    /// `vmd.pid`.
    pub pid_file: PathBuf,
}

/// The reaper's body: waits for a report on `reports`, records it, and ends the process.
/// Returns only if the pipe closes without a report.
pub fn run(reports: OwnedFd, files: &CrashFiles) {
    let mut line = String::new();
    let mut reader = BufReader::new(File::from(reports));
    match reader.read_line(&mut line) {
        Ok(n) if n > 0 => {}
        _ => return,
    }
    let reason = line.trim_end().to_owned();
    // The log first: once the pid file is gone, clients read vmd.log as final.
    log::error!("{reason}: ending the VM (seccomp; see docs/security.md)");
    if !super::super::logger::flush() {
        // The log writer may be the thread that trapped: say it on stderr (vmd.log) directly.
        eprintln!("vmd: {reason}: ending the VM (seccomp; see docs/security.md)");
    }
    record(files, &reason);
    sigsys::exit_now(EXIT_CODE)
}

/// Writes the crash into `state.json` (keeping what the last state said about boots) and
/// removes the socket and pid file.
fn record(files: &CrashFiles, reason: &str) {
    let previous = StateFile::read(&files.state).ok().flatten();
    let state = StateFile {
        state: RunState::Crashed,
        pid: std::process::id(),
        vcpus: 0,
        boots: previous.as_ref().map_or(0, |p| p.boots),
        started_at: previous.as_ref().map_or_else(now, |p| p.started_at),
        reason: Some(reason.to_owned()),
    };
    if let Err(e) = state.write_final(&files.state, Duration::from_secs(1)) {
        log::error!("cannot record the crash in {}: {e}", files.state.display());
    }
    for path in [&files.socket, &files.pid_file] {
        let _ = fs::remove_file(path);
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_is_recorded_with_its_reason_and_the_previous_boots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = CrashFiles {
            state: dir.path().join("state.json"),
            socket: dir.path().join("vm.sock"),
            pid_file: dir.path().join("vmd.pid"),
        };
        StateFile {
            state: RunState::Running,
            pid: 1,
            vcpus: 2,
            boots: 3,
            started_at: 42,
            reason: None,
        }
        .write(&files.state)
        .expect("write");
        fs::write(&files.pid_file, b"1").expect("pid");

        record(&files, "blocked system call 99 (sysinfo) on thread vcpu1");

        let state = StateFile::read(&files.state).expect("read").expect("some");
        assert_eq!(state.state, RunState::Crashed);
        assert_eq!(
            state.reason.as_deref(),
            Some("blocked system call 99 (sysinfo) on thread vcpu1")
        );
        assert_eq!((state.boots, state.started_at), (3, 42));
        assert!(!files.pid_file.exists());
    }
}
