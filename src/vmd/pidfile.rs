//! `vmd.pid`: the lock that makes vmd exclusive per VM, and the liveness probe clients use.
//!
//! vmd holds an exclusive `flock` on `<state>/vms/<name>/vmd.pid` (which contains its pid) for
//! its whole life. The kernel drops the lock when the process dies, however it dies, so
//! "the file is locked" means "a vmd for this VM is alive", with no pid-reuse races and no
//! trust in zombies. Clients probe with a non-blocking shared lock; vmd retries its own lock
//! briefly so a probe that happens to hold the lock at that instant cannot fail a start.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// How long vmd keeps retrying a lock held by someone else before calling it "running".
const ACQUIRE_PATIENCE: Duration = Duration::from_millis(500);

/// Errors taking the pid lock.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    /// Another vmd holds the lock.
    #[error("{}", already_running_message(*pid))]
    AlreadyRunning {
        /// Its pid, when the file says.
        pid: Option<u32>,
    },
    /// The file could not be opened, locked or written.
    #[error("cannot lock {}", path.display())]
    Lock {
        /// The pid file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

fn already_running_message(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("the VM is already running (vmd pid {pid})"),
        None => "the VM is already running".to_string(),
    }
}

/// The held lock; dropping it (or the process dying) releases it.
#[derive(Debug)]
pub struct PidLock {
    path: PathBuf,
    _lock: Flock<File>,
}

impl PidLock {
    /// Takes the lock on `path` and writes `pid` into it.
    pub fn acquire(path: &Path, pid: u32) -> Result<PidLock, PidFileError> {
        let err = |source: io::Error| PidFileError::Lock {
            path: path.to_path_buf(),
            source,
        };
        let deadline = Instant::now() + ACQUIRE_PATIENCE;
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(err)?;
            let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((mut file, Errno::EWOULDBLOCK)) => {
                    if Instant::now() >= deadline {
                        return Err(PidFileError::AlreadyRunning {
                            pid: read_pid(&mut file),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err((_, errno)) => return Err(err(errno.into())),
            };
            // The previous owner unlinks the file on exit; if that happened between our open
            // and our lock we hold a lock on a dead inode. Only the inode at `path` counts.
            if !same_inode(&lock, path) {
                continue;
            }
            lock.set_len(0).map_err(err)?;
            lock.rewind().map_err(err)?;
            writeln!(*lock, "{pid}").map_err(err)?;
            return Ok(PidLock {
                path: path.to_path_buf(),
                _lock: lock,
            });
        }
    }

    /// Deletes the file, then releases the lock. Call last, after every other cleanup: the
    /// moment the lock is gone a new vmd may start.
    pub fn remove(self) {
        if let Err(e) = fs::remove_file(&self.path) {
            log::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

fn same_inode(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Whether a vmd holds a VM's pid lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// A vmd holds the lock; its pid when the file says.
    Alive {
        /// vmd's pid.
        pid: Option<u32>,
    },
    /// No vmd holds the lock (or there is no pid file).
    Dead,
}

/// Probes the lock at `path`. When no vmd holds it, `on_dead` runs while the probe still holds
/// a shared lock, so cleanup of stale files cannot race with a vmd starting.
pub fn probe(path: &Path, on_dead: impl FnOnce()) -> io::Result<Liveness> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            on_dead();
            return Ok(Liveness::Dead);
        }
        Err(e) => return Err(e),
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(held) => {
            on_dead();
            drop(held);
            Ok(Liveness::Dead)
        }
        Err((mut file, Errno::EWOULDBLOCK)) => Ok(Liveness::Alive {
            pid: read_pid(&mut file),
        }),
        Err((_, errno)) => Err(errno.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_acquire_says_already_running_with_the_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vmd.pid");
        let _held = PidLock::acquire(&path, 4242).expect("first");
        let err = PidLock::acquire(&path, 1).expect_err("second must fail");
        assert!(matches!(
            err,
            PidFileError::AlreadyRunning { pid: Some(4242) }
        ));
        assert!(err.to_string().contains("already running"), "{err}");
    }

    #[test]
    fn probe_sees_a_held_lock_as_alive_and_a_released_one_as_dead() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vmd.pid");
        let held = PidLock::acquire(&path, 77).expect("acquire");
        assert_eq!(
            probe(&path, || {}).expect("probe"),
            Liveness::Alive { pid: Some(77) }
        );
        drop(held);
        let mut cleaned = false;
        assert_eq!(
            probe(&path, || cleaned = true).expect("probe"),
            Liveness::Dead
        );
        assert!(cleaned);
    }

    #[test]
    fn remove_deletes_the_file_and_frees_the_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vmd.pid");
        PidLock::acquire(&path, 1).expect("acquire").remove();
        assert!(!path.exists());
        assert_eq!(probe(&path, || {}).expect("probe"), Liveness::Dead);
        PidLock::acquire(&path, 2).expect("reacquire");
    }
}
