//! The dnsmasq instance of a nat or isolated network: DHCP and DNS on the bridge's gateway
//! address and nowhere else.
//!
//! dnsmasq daemonizes itself and reports start-up errors (address in use, bad option)
//! through its exit status before it goes to the background, so [`start`] returns only once
//! it serves or with its own message. It is identified afterwards by pid and start time
//! ([`ProcessId`]), which `network::manager` checks on every command to restart it if it died.
//!
//! Started as root, it serves as an unprivileged user ([`unprivileged_user`]: Debian's
//! `dnsmasq`, else `nobody`), named with `--user`/`--group` rather than left to how dnsmasq
//! was built. It opens its lease and pid files before it drops root and keeps them open;
//! the lease file is created and handed to that user beforehand anyway ([`prepare_lease_file`]),
//! so it stays writable for it. Its lease-change script (`--dhcp-script`, anti-spoofing: see
//! `network::guard`) is run by the small helper dnsmasq keeps as root for that purpose.

use super::NetworkError;
use super::host::ProcessId;
use crate::config::{Addressing, NetworkMode};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Group, Pid, User};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The program run (found on `PATH`).
pub const PROGRAM: &str = "dnsmasq";

/// How long a stopped dnsmasq gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Users dnsmasq may serve as, in order of preference: Debian's dedicated user, then `nobody`.
const USERS: [&str; 2] = ["dnsmasq", "nobody"];

/// Who dnsmasq serves as: a user and group name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// User name (`--user`).
    pub user: String,
    /// Group name (`--group`), the user's primary group.
    pub group: String,
    /// Their ids, for the files dnsmasq must be able to write.
    pub ids: (u32, u32),
}

/// The unprivileged user dnsmasq should serve as when vmux runs it as root; `None` when vmux is
/// not root (dnsmasq then keeps vmux's own user) or no such user exists.
pub fn unprivileged_user() -> Option<RunAs> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = USERS
        .iter()
        .find_map(|name| User::from_name(name).ok().flatten())?;
    let group = Group::from_gid(user.gid).ok().flatten()?;
    Some(RunAs {
        ids: (user.uid.as_raw(), user.gid.as_raw()),
        user: user.name,
        group: group.name,
    })
}

/// Creates the lease file if missing (mode 0644) and gives it to `run_as`, so the unprivileged
/// dnsmasq can always write it.
pub fn prepare_lease_file(path: &Path, run_as: Option<&RunAs>) -> Result<(), NetworkError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io_error = |source| NetworkError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(io_error)?;
    if let Some(run_as) = run_as {
        let (uid, gid) = run_as.ids;
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(io_error)?;
    }
    Ok(())
}

/// The command line for one network. No configuration file is read (`--conf-file=/dev/null`)
/// so nothing on the host changes its behaviour; everything is on the command line.
/// `lease_hook` is the lease-change script; `run_as` the user to serve as.
pub fn args(
    bridge: &str,
    mode: NetworkMode,
    addressing: &Addressing,
    files: &Files<'_>,
    run_as: Option<&RunAs>,
) -> Vec<String> {
    let Files {
        pid_file,
        lease_file,
        lease_hook,
    } = *files;
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
        format!("--dhcp-script={}", lease_hook.display()),
    ];
    if let Some(run_as) = run_as {
        args.push(format!("--user={}", run_as.user));
        args.push(format!("--group={}", run_as.group));
    }
    if mode == NetworkMode::Isolated {
        // No default route for guests, and no DNS queries forwarded off the host: an isolated
        // network has no way out, and its resolver should not pretend otherwise.
        args.push("--dhcp-option=3".into());
        args.push("--no-resolv".into());
    }
    args
}

/// The files of one dnsmasq instance.
#[derive(Debug, Clone, Copy)]
pub struct Files<'a> {
    /// Its pid file.
    pub pid_file: &'a Path,
    /// Its lease file.
    pub lease_file: &'a Path,
    /// Its lease-change script.
    pub lease_hook: &'a Path,
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

    fn default_args(mode: NetworkMode, run_as: Option<&RunAs>) -> Vec<String> {
        let cfg = NetworkConfig::default_network();
        let addressing = cfg.addressing().expect("default network has addressing");
        let files = Files {
            pid_file: Path::new("/s/dnsmasq.pid"),
            lease_file: Path::new("/s/leases"),
            lease_hook: Path::new("/s/lease-hook"),
        };
        args(&cfg.bridge, mode, &addressing, &files, run_as)
    }

    #[test]
    fn binds_to_the_bridge_only_and_reads_no_config_file() {
        let args = default_args(NetworkMode::Nat, None);
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
            "--dhcp-script=/s/lease-hook",
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
        let args = default_args(NetworkMode::Isolated, None);
        assert!(args.iter().any(|a| a == "--dhcp-option=3"));
        assert!(args.iter().any(|a| a == "--no-resolv"));
    }

    #[test]
    fn an_unprivileged_user_is_named_with_its_group() {
        let run_as = RunAs {
            user: "dnsmasq".into(),
            group: "nogroup".into(),
            ids: (999, 65534),
        };
        let args = default_args(NetworkMode::Nat, Some(&run_as));
        assert!(args.iter().any(|a| a == "--user=dnsmasq"), "{args:?}");
        assert!(args.iter().any(|a| a == "--group=nogroup"), "{args:?}");
        assert!(
            !default_args(NetworkMode::Nat, None)
                .iter()
                .any(|a| a.starts_with("--user"))
        );
    }

    #[test]
    fn root_picks_a_user_that_exists_and_others_keep_their_own() {
        match unprivileged_user() {
            Some(run_as) => {
                assert!(nix::unistd::geteuid().is_root());
                assert!(USERS.contains(&run_as.user.as_str()), "{run_as:?}");
                assert_ne!(run_as.ids.0, 0, "{run_as:?}");
            }
            None => assert!(
                !nix::unistd::geteuid().is_root()
                    || USERS
                        .iter()
                        .all(|u| User::from_name(u).ok().flatten().is_none())
            ),
        }
    }

    #[test]
    fn the_lease_file_is_created_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("leases");
        prepare_lease_file(&path, None).expect("create");
        std::fs::write(&path, "0 52:54:00:00:00:01 10.0.0.2 * *\n").expect("write");
        prepare_lease_file(&path, None).expect("again");
        assert!(
            std::fs::read_to_string(&path)
                .expect("read")
                .contains("10.0.0.2")
        );
    }

    #[test]
    fn stopping_a_process_that_is_not_dnsmasq_leaves_it_alone() {
        let me = ProcessId::current().expect("own stat readable");
        assert!(!is_running(&me));
        stop(&me).expect("nothing to stop");
        assert!(me.is_alive());
    }
}
