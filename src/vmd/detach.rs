//! Becoming a daemon without `fork`: the client runs `vmux __vmd NAME` with a pipe on stdout;
//! that process re-executes itself with `VMUX_VMD_DETACHED=1` and exits at once, so the real
//! vmd is nobody's child (a long-running client such as the TUI never collects zombies) and
//! lives in its own session. The pipe is inherited: vmd writes exactly one readiness line on
//! it (`ready` or `error: <message>`), then points stdout at its log, which closes the pipe.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::process::{Command, ExitCode, Stdio};

/// The hidden subcommand that runs vmd: `vmux __vmd NAME`.
pub const SUBCOMMAND: &str = "__vmd";
/// Set on the re-executed vmd so it knows it is the detached one (clients clear it).
pub const DETACHED_ENV: &str = "VMUX_VMD_DETACHED";
/// The readiness line for success.
pub const READY_LINE: &str = "ready";
/// The prefix of the readiness line for failure.
pub const ERROR_PREFIX: &str = "error: ";

/// Whether this process is the detached vmd (second stage).
pub fn is_detached() -> bool {
    std::env::var_os(DETACHED_ENV).is_some_and(|v| v == "1")
}

/// First stage: starts the detached vmd (with the same `options`) with our stdout and exits.
/// The child reports readiness itself; if it cannot even be started, say so on the pipe.
pub fn respawn(name: &str, options: &[String]) -> ExitCode {
    let spawned = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .arg(SUBCOMMAND)
            .arg(name)
            .args(options)
            .env(DETACHED_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
    });
    match spawned {
        // Not waited for on purpose: when this process exits the child is reparented.
        Ok(_child) => ExitCode::SUCCESS,
        Err(e) => {
            report_error(&format!("cannot start the VM process: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Leaves the client's session, terminal and working directory (a daemon must not keep a
/// filesystem busy), and stops reading its stdin.
pub fn new_session() {
    if let Err(e) = std::env::set_current_dir("/") {
        log::debug!("chdir /: {e}");
    }
    if let Err(e) = nix::unistd::setsid() {
        // Already a session leader (started by hand with setsid): nothing to leave.
        log::debug!("setsid: {e}");
    }
    if let Ok(null) = File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
    }
}

/// Opens vmd's log for appending (0600) and sends stderr there.
pub fn log_to(path: &std::path::Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    nix::unistd::dup2_stderr(&file)?;
    Ok(file)
}

/// Writes the `ready` line and sends stdout to `log`, closing the client's pipe.
pub fn report_ready(log: &File) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{READY_LINE}");
    let _ = out.flush();
    drop(out);
    if let Err(e) = nix::unistd::dup2_stdout(log) {
        log::warn!("cannot point stdout at the log: {e}");
    }
}

/// Writes the one-line `error: ...` readiness report.
pub fn report_error(message: &str) {
    let line = message.replace(['\n', '\r'], " ");
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{ERROR_PREFIX}{line}");
    let _ = out.flush();
}
