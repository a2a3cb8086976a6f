//! Starting vmd: run `<exe> __vmd NAME` with a pipe on its stdout, reap that short-lived first
//! stage at once (it re-executes itself detached, see `vmd::detach`), and wait for the one
//! readiness line the detached vmd writes on the inherited pipe.
//!
//! After `error: ...` the pipe is read to its end, which comes when vmd has exited, so a failed
//! start returns only once no vmd process is left. A vmd that never reports is killed.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::vmd::pidfile::{self, Liveness};
use crate::vmd::{DETACHED_ENV, ERROR_PREFIX, READY_LINE, SUBCOMMAND};

/// Longest readiness line read, in bytes.
const MAX_REPORT_BYTES: usize = 64 << 10;
/// How long to wait for a failed vmd to finish exiting after its error line.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// What to run and where its files are.
pub struct SpawnRequest<'a> {
    /// The `vmux` executable.
    pub exe: &'a Path,
    /// VM name.
    pub name: &'a str,
    /// `VMUX_HOME` to hand to vmd, when the caller runs on an explicit home.
    pub home: Option<&'a Path>,
    /// The VM's `vmd.pid` (to find and stop a vmd that never reports).
    pub pid_file: &'a Path,
    /// The VM's `vmd.log`, named in messages.
    pub log_file: &'a Path,
    /// The VM's control socket (removed after killing a vmd that never reported).
    pub socket: &'a Path,
    /// How long vmd may take to report.
    pub timeout: Duration,
    /// Boot the VM, or restore it from a save file.
    pub mode: &'a crate::vmd::StartMode,
}

/// Why vmd did not start; each message is shown after "cannot start VM 'x': ".
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The executable could not be run.
    #[error("cannot run {}", exe.display())]
    Exec {
        /// The executable.
        exe: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// vmd said why (its `error:` line).
    #[error("{0}")]
    Reported(String),
    /// vmd exited without a readiness line.
    #[error("the VM process exited without reporting; see {}", log.display())]
    Silent {
        /// vmd.log.
        log: PathBuf,
    },
    /// vmd did not report in time and was killed.
    #[error("the VM process did not report within {} s and was stopped; see {}", timeout.as_secs(), log.display())]
    Timeout {
        /// The limit.
        timeout: Duration,
        /// vmd.log.
        log: PathBuf,
    },
    /// Reading the pipe failed.
    #[error("cannot read the VM process's report")]
    Read(#[source] io::Error),
    /// Something other than the readiness protocol arrived.
    #[error("the VM process reported something unexpected: {0:?}")]
    Garbled(String),
}

/// Starts vmd and returns once it reports `ready`.
pub fn spawn_vmd(req: &SpawnRequest<'_>) -> Result<(), SpawnError> {
    let mut command = Command::new(req.exe);
    command
        .arg(SUBCOMMAND)
        .arg(req.name)
        .args(req.mode.args())
        .env_remove(DETACHED_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(home) = req.home {
        command.env("VMUX_HOME", home);
    }
    let mut child = command.spawn().map_err(|source| SpawnError::Exec {
        exe: req.exe.to_path_buf(),
        source,
    })?;
    let deadline = Instant::now() + req.timeout;
    let stdout = child.stdout.take();
    let result = match stdout {
        Some(mut pipe) => read_report(&mut pipe, req, deadline),
        None => Err(SpawnError::Read(io::Error::other(
            "no pipe to the VM process",
        ))),
    };
    reap(&mut child, deadline);
    if matches!(result, Err(SpawnError::Timeout { .. })) {
        stop_silent_vmd(req);
    }
    result
}

fn read_report(
    pipe: &mut ChildStdout,
    req: &SpawnRequest<'_>,
    deadline: Instant,
) -> Result<(), SpawnError> {
    let mut report = Vec::new();
    let line_end = loop {
        if let Some(end) = report.iter().position(|&b| b == b'\n') {
            break end;
        }
        if report.len() > MAX_REPORT_BYTES {
            return Err(SpawnError::Garbled(
                String::from_utf8_lossy(&report[..80]).into_owned(),
            ));
        }
        match read_until(pipe, &mut report, deadline).map_err(SpawnError::Read)? {
            Chunk::Data => {}
            Chunk::Eof => {
                return Err(SpawnError::Silent {
                    log: req.log_file.to_path_buf(),
                });
            }
            Chunk::TimedOut => {
                return Err(SpawnError::Timeout {
                    timeout: req.timeout,
                    log: req.log_file.to_path_buf(),
                });
            }
        }
    };
    let line = String::from_utf8_lossy(&report[..line_end])
        .trim()
        .to_string();
    if line == READY_LINE {
        return Ok(());
    }
    let Some(message) = line.strip_prefix(ERROR_PREFIX) else {
        return Err(SpawnError::Garbled(line));
    };
    // The pipe ends when vmd exits: wait for that, so nothing is left running on return.
    let grace = deadline.min(Instant::now() + EXIT_GRACE);
    let mut rest = Vec::new();
    while let Ok(Chunk::Data) = read_until(pipe, &mut rest, grace) {
        rest.clear();
    }
    Err(SpawnError::Reported(message.to_string()))
}

enum Chunk {
    Data,
    Eof,
    TimedOut,
}

/// Reads what the pipe has, waiting at most until `deadline`.
fn read_until(pipe: &mut ChildStdout, out: &mut Vec<u8>, deadline: Instant) -> io::Result<Chunk> {
    let left = deadline.saturating_duration_since(Instant::now());
    let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(millis)) {
        Ok(0) => {
            return Ok(if Instant::now() >= deadline {
                Chunk::TimedOut
            } else {
                Chunk::Data
            });
        }
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok(Chunk::Data),
        Err(e) => return Err(e.into()),
    }
    let mut buf = [0u8; 4096];
    match pipe.read(&mut buf) {
        Ok(0) => Ok(Chunk::Eof),
        Ok(n) => {
            out.extend_from_slice(&buf[..n]);
            Ok(Chunk::Data)
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Chunk::Data),
        Err(e) => Err(e),
    }
}

/// Collects the first stage, which exits as soon as it has started the detached vmd.
fn reap(child: &mut Child, deadline: Instant) {
    let limit = deadline.max(Instant::now() + Duration::from_secs(1));
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Kills a vmd that never reported, then removes what it may have left.
fn stop_silent_vmd(req: &SpawnRequest<'_>) {
    let Ok(Liveness::Alive { pid: Some(pid) }) = pidfile::probe(req.pid_file, || {}) else {
        return;
    };
    if let Ok(raw) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
    }
    let deadline = Instant::now() + EXIT_GRACE;
    while Instant::now() < deadline {
        let cleaned = pidfile::probe(req.pid_file, || {
            let _ = std::fs::remove_file(req.socket);
            let _ = std::fs::remove_file(req.pid_file);
        });
        if matches!(cleaned, Ok(Liveness::Dead) | Err(_)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
