//! The dnsmasq instance of a nat or isolated network: DHCP and DNS on the bridge's gateway
//! address and nowhere else.
//!
//! dnsmasq daemonizes itself and reports start-up errors (address in use, bad option)
//! through its exit status before it goes to the background, so [`start`] returns only once
//! it serves or with its own message. It is identified afterwards by pid and start time
//! ([`ProcessId`]), which `network::manager` checks on every command to restart it if it died.

use super::NetworkError;
use super::host::ProcessId;
use crate::config::{Addressing, NetworkMode};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The program run (found on `PATH`).
pub const PROGRAM: &str = "dnsmasq";

/// How long a stopped dnsmasq gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The command line for one network. No configuration file is read (`--conf-file=/dev/null`)
/// so nothing on the host changes its behaviour; everything is on the command line.
pub fn args(
    bridge: &str,
    mode: NetworkMode,
    addressing: &Addressing,
    pid_file: &Path,
    lease_file: &Path,
) -> Vec<String> {
    let Addressing {
        subnet,
        gateway,
        dhcp_range,
    } = addressing;
    let mut args = vec![
        "--conf-file=/dev/null".to_string(),
        format!("--pid-file={}", pid_file.display()),
        format!("--interface={bridge}"),
        "--bind-interfaces".into(),
        "--except-interface=lo".into(),
        format!("--listen-address={gateway}"),
        format!(
            "--dhcp-range={},{},{}",
            dhcp_range.start,
            dhcp_range.end,
            subnet.netmask()
        ),
        format!("--dhcp-leasefile={}", lease_file.display()),
        format!("--dhcp-lease-max={}", dhcp_range.size()),
        "--dhcp-no-override".into(),
        "--dhcp-authoritative".into(),
        "--strict-order".into(),
    ];
    if mode == NetworkMode::Isolated {
        // No default route for guests, and no DNS queries forwarded off the host: an isolated
        // network has no way out, and its resolver should not pretend otherwise.
        args.push("--dhcp-option=3".into());
        args.push("--no-resolv".into());
    }
    args
}

/// Starts dnsmasq with `args` and returns the daemon once it serves. `pid_file` must be the
/// one named in `args`.
pub fn start(network: &str, args: &[String], pid_file: &Path) -> Result<ProcessId, NetworkError> {
    let failed = |detail: String| NetworkError::Dnsmasq {
        network: network.to_string(),
        detail,
    };
    // A pid file left by a dead instance would name the wrong process below.
    let _ = std::fs::remove_file(pid_file);
    let output = Command::new(PROGRAM)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| NetworkError::Spawn {
            program: PROGRAM.into(),
            source,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = stderr.trim().trim_start_matches("dnsmasq: ");
        return Err(failed(format!("{message} ({})", output.status)));
    }
    // dnsmasq writes the pid file before its parent exits; the short wait only covers a
    // slow filesystem.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let pid = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok());
        if let Some(process) = pid.and_then(ProcessId::of) {
            return Ok(process);
        }
        if Instant::now() > deadline {
            return Err(failed(format!(
                "it exited without leaving a running daemon behind (pid file {})",
                pid_file.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `process` is still our dnsmasq (alive, same start time, named dnsmasq).
pub fn is_running(process: &ProcessId) -> bool {
    process.command_name().as_deref() == Some(PROGRAM)
}

/// Stops `process` if it is still our dnsmasq: SIGTERM, then SIGKILL after [`STOP_GRACE`].
pub fn stop(process: &ProcessId) -> Result<(), NetworkError> {
    let pid = Pid::from_raw(i32::try_from(process.pid).expect("pids fit in i32"));
    for (signal, grace) in [
        (Signal::SIGTERM, STOP_GRACE),
        (Signal::SIGKILL, Duration::from_secs(1)),
    ] {
        if !is_running(process) {
            return Ok(());
        }
        match kill(pid, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(errno) => {
                return Err(NetworkError::StopDnsmasq {
                    pid: process.pid,
                    source: errno.into(),
                });
            }
        }
        let deadline = Instant::now() + grace;
        while is_running(process) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if is_running(process) {
        return Err(NetworkError::StopDnsmasq {
            pid: process.pid,
            source: std::io::Error::from(std::io::ErrorKind::TimedOut),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NetworkConfig;

    fn default_args(mode: NetworkMode) -> Vec<String> {
        let cfg = NetworkConfig::default_network();
        let addressing = cfg.addressing().expect("default network has addressing");
        args(
            &cfg.bridge,
            mode,
            &addressing,
            Path::new("/s/dnsmasq.pid"),
            Path::new("/s/leases"),
        )
    }

    #[test]
    fn binds_to_the_bridge_only_and_reads_no_config_file() {
        let args = default_args(NetworkMode::Nat);
        for wanted in [
            "--conf-file=/dev/null",
            "--interface=vmux-default",
            "--bind-interfaces",
            "--except-interface=lo",
            "--listen-address=192.168.123.1",
            "--dhcp-range=192.168.123.2,192.168.123.254,255.255.255.0",
            "--dhcp-leasefile=/s/leases",
            "--pid-file=/s/dnsmasq.pid",
            "--dhcp-lease-max=253",
        ] {
            assert!(
                args.iter().any(|a| a == wanted),
                "{wanted} missing: {args:?}"
            );
        }
        assert!(!args.iter().any(|a| a == "--no-resolv"));
    }

    #[test]
    fn isolated_networks_get_no_router_and_no_upstream_dns() {
        let args = default_args(NetworkMode::Isolated);
        assert!(args.iter().any(|a| a == "--dhcp-option=3"));
        assert!(args.iter().any(|a| a == "--no-resolv"));
    }

    #[test]
    fn stopping_a_process_that_is_not_dnsmasq_leaves_it_alone() {
        let me = ProcessId::current().expect("own stat readable");
        assert!(!is_running(&me));
        stop(&me).expect("nothing to stop");
        assert!(me.is_alive());
    }
}
