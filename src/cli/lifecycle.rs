//! Lifecycle verbs: `start`, `shutdown`, `destroy`, `reboot`, `reset`, `suspend`, `resume`,
//! `autostart-all`. Each checks the VM's state first so a refusal says what to do instead,
//! then asks the host; `shutdown` and `destroy` wait until the VM is really off.

use super::output::error_chain;
use super::{CliError, Io};
use crate::client::NetworkHost;
use crate::client::{ClientError, Host};
use crate::protocol::RunState;
use std::time::{Duration, Instant};

/// How often a waiting verb asks the host for the state.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long `destroy` waits for vmd to go away.
const DESTROY_WAIT: Duration = Duration::from_secs(10);

/// `vmux start`: boots the VM, or resumes its managed save.
pub fn start(host: &dyn Host, name: &str, io: &mut Io<'_>) -> Result<(), CliError> {
    let status = host.state(name)?;
    if status.is_active() {
        return Err(ClientError::AlreadyRunning(name.to_string()).into());
    }
    host.start(name)?;
    if status.state == RunState::Saved {
        writeln!(io.out, "VM '{name}' resumed from its managed save")?;
    } else {
        writeln!(io.out, "VM '{name}' started")?;
    }
    Ok(())
}

/// `vmux shutdown`: presses the power button, then (with `timeout_s`) waits for shut off.
pub fn shutdown(
    host: &dyn Host,
    name: &str,
    timeout_s: Option<u64>,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    match host.state(name)?.state {
        RunState::Running => {}
        RunState::Paused => return Err(CliError::Paused(name.to_string())),
        RunState::ShutOff | RunState::Crashed | RunState::Saved => {
            return Err(ClientError::NotRunning(name.to_string()).into());
        }
    }
    host.shutdown(name)?;
    let Some(seconds) = timeout_s else {
        writeln!(
            io.out,
            "Power button pressed on VM '{name}'; it shuts off when the guest is done"
        )?;
        return Ok(());
    };
    match wait_until_stopped(host, name, Duration::from_secs(seconds))? {
        Stopped::ShutOff => {
            writeln!(io.out, "VM '{name}' shut off")?;
            Ok(())
        }
        Stopped::Crashed(reason) => Err(CliError::CrashedWhileStopping {
            name: name.to_string(),
            reason,
        }),
        Stopped::StillRunning(_) => Err(CliError::ShutdownTimeout {
            name: name.to_string(),
            seconds,
        }),
    }
}

/// `vmux destroy`: stops the VM at once and waits until vmd has gone.
pub fn destroy(host: &dyn Host, name: &str, io: &mut Io<'_>) -> Result<(), CliError> {
    let status = host.state(name)?;
    if !status.is_active() {
        return Err(ClientError::NotRunning(name.to_string()).into());
    }
    host.destroy(name)?;
    match wait_until_stopped(host, name, DESTROY_WAIT)? {
        Stopped::ShutOff | Stopped::Crashed(_) => {
            writeln!(io.out, "VM '{name}' destroyed")?;
            Ok(())
        }
        Stopped::StillRunning(pid) => Err(CliError::DestroyStuck {
            name: name.to_string(),
            pid: pid.or(status.pid).unwrap_or_default(),
            seconds: DESTROY_WAIT.as_secs(),
        }),
    }
}

/// `vmux reboot`: graceful, so the guest must be running (not paused) to see the button.
pub fn reboot(host: &dyn Host, name: &str, io: &mut Io<'_>) -> Result<(), CliError> {
    require_running(host, name)?;
    host.reboot(name)?;
    writeln!(io.out, "VM '{name}' is rebooting")?;
    Ok(())
}

/// `vmux reset`: hard reset of a running or paused VM.
pub fn reset(host: &dyn Host, name: &str, io: &mut Io<'_>) -> Result<(), CliError> {
    if !host.state(name)?.is_active() {
        return Err(ClientError::NotRunning(name.to_string()).into());
    }
    host.reset(name)?;
    writeln!(io.out, "VM '{name}' was reset")?;
    Ok(())
}

/// `vmux suspend`.
pub fn suspend(host: &dyn Host, name: &str, io: &mut Io<'_>) -> Result<(), CliError> {
    require_running(host, name)?;
    host.suspend(name)?;
    writeln!(io.out, "VM '{name}' suspended")?;
    Ok(())
}

/// `vmux resume`.
pub fn resume(host: &dyn Host, name: &str, io: &mut Io<'_>) -> Result<(), CliError> {
    match host.state(name)?.state {
        RunState::Paused => {}
        RunState::Running => return Err(CliError::NotPaused(name.to_string())),
        RunState::ShutOff | RunState::Crashed | RunState::Saved => {
            return Err(ClientError::NotRunning(name.to_string()).into());
        }
    }
    host.resume(name)?;
    writeln!(io.out, "VM '{name}' resumed")?;
    Ok(())
}

/// `vmux autostart-all`: starts each autostart network that is not active, then each
/// autostart VM that is not live (so their NICs find their networks), one line each; fails at
/// the end when any could not be started (or a definition could not be read).
pub fn autostart_all(
    host: &dyn Host,
    networks: &dyn NetworkHost,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let mut failed = 0;
    for (network, result) in networks.autostart_all() {
        match result {
            Ok(()) => writeln!(io.out, "network {network}: started")?,
            Err(message) => {
                writeln!(io.err, "network {network}: error: {message}")?;
                failed += 1;
            }
        }
    }
    let mut marked = 0;
    for entry in host.list() {
        let status = match entry {
            Ok(status) => status,
            Err(broken) => {
                writeln!(
                    io.err,
                    "error: {}; repair it with `{}`",
                    broken.error,
                    broken.fix()
                )?;
                failed += 1;
                continue;
            }
        };
        if !status.config.autostart {
            continue;
        }
        marked += 1;
        let name = &status.config.name;
        if status.live().is_active() {
            writeln!(io.out, "{name}: already running")?;
            continue;
        }
        match host.start(name) {
            Ok(()) if status.state == RunState::Saved => {
                writeln!(io.out, "{name}: resumed from its managed save")?;
            }
            Ok(()) => writeln!(io.out, "{name}: started")?,
            Err(e) => {
                writeln!(io.err, "{name}: error: {}", error_chain(&e))?;
                failed += 1;
            }
        }
    }
    if marked == 0 && failed == 0 {
        writeln!(
            io.out,
            "No VM is marked for autostart; mark one with `vmux autostart NAME`"
        )?;
    }
    if failed > 0 {
        return Err(CliError::AutostartFailed { failed });
    }
    Ok(())
}

/// Refuses anything but `running`, naming the way out.
fn require_running(host: &dyn Host, name: &str) -> Result<(), CliError> {
    match host.state(name)?.state {
        RunState::Running => Ok(()),
        RunState::Paused => Err(CliError::Paused(name.to_string())),
        RunState::ShutOff | RunState::Crashed | RunState::Saved => {
            Err(ClientError::NotRunning(name.to_string()).into())
        }
    }
}

/// How a wait for a VM to stop ended.
#[derive(Debug, PartialEq)]
enum Stopped {
    /// Off, vmd gone.
    ShutOff,
    /// Ended in a crash, with the reason.
    Crashed(String),
    /// Still up at the deadline (vmd's pid when known).
    StillRunning(Option<u32>),
}

/// Polls the host until the VM is no longer live or `timeout` passes.
fn wait_until_stopped(host: &dyn Host, name: &str, timeout: Duration) -> Result<Stopped, CliError> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = host.state(name)?;
        match status.state {
            RunState::ShutOff | RunState::Saved => return Ok(Stopped::ShutOff),
            RunState::Crashed => {
                return Ok(Stopped::Crashed(
                    status.reason.unwrap_or_else(|| "no reason recorded".into()),
                ));
            }
            RunState::Running | RunState::Paused if Instant::now() >= deadline => {
                return Ok(Stopped::StillRunning(status.pid));
            }
            RunState::Running | RunState::Paused => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::test_support::{add_vm, capture, host_with_vm, run_state};
    use crate::client::FakeNetworks;
    use crate::client::fake::FakeHost;
    use crate::config::{BootConfig, VmConfig};

    #[test]
    fn start_of_a_running_vm_is_refused_with_the_fix() {
        let host = host_with_vm("web", RunState::Running);
        let (result, _, _) = capture(|io| start(&host, "web", io));
        let err = result.expect_err("must fail");
        assert!(err.to_string().contains("already running"), "{err}");
    }

    #[test]
    fn shutdown_waits_until_the_guest_is_off() {
        let host = host_with_vm("web", RunState::Running);
        let (result, out, _) = capture(|io| shutdown(&host, "web", Some(5), io));
        result.expect("shutdown");
        assert!(out.contains("shut off"), "{out}");
        assert_eq!(run_state(&host, "web"), RunState::ShutOff);
    }

    #[test]
    fn shutdown_timeout_suggests_destroy_and_does_not_kill() {
        let host = FakeHost::new();
        host.ignore_power_button();
        add_vm(
            &host,
            VmConfig::new("web", BootConfig::Demo),
            RunState::Running,
        );
        let (result, _, _) = capture(|io| shutdown(&host, "web", Some(0), io));
        let err = result.expect_err("must time out");
        assert!(err.to_string().contains("vmux destroy web"), "{err}");
        assert_eq!(run_state(&host, "web"), RunState::Running);
    }

    #[test]
    fn shutdown_without_wait_returns_while_the_guest_runs() {
        let host = host_with_vm("web", RunState::Running);
        let (result, out, _) = capture(|io| shutdown(&host, "web", None, io));
        result.expect("shutdown");
        assert!(out.contains("Power button pressed"), "{out}");
    }

    #[test]
    fn shutdown_of_a_paused_vm_says_to_resume() {
        let host = host_with_vm("web", RunState::Paused);
        let (result, _, _) = capture(|io| shutdown(&host, "web", Some(1), io));
        assert!(matches!(result, Err(CliError::Paused(_))));
    }

    #[test]
    fn destroy_of_a_shut_off_vm_says_it_is_not_running() {
        let host = host_with_vm("web", RunState::ShutOff);
        let (result, _, _) = capture(|io| destroy(&host, "web", io));
        let err = result.expect_err("must fail");
        assert!(err.to_string().contains("vmux start web"), "{err}");
    }

    /// The text of a definition file a hand edit broke.
    const BROKEN_TEXT: &str = "vcpus = \"two\"\n";

    #[test]
    fn destroy_and_shutdown_work_while_the_definition_is_broken() {
        let host = host_with_vm("web", RunState::Running);
        host.break_definition_with(
            "web",
            crate::config::DefinitionError {
                path: "/x/web.toml".into(),
                line: Some(2),
                reason: "invalid type".into(),
            },
            BROKEN_TEXT,
        );
        let (result, out, _) = capture(|io| shutdown(&host, "web", Some(5), io));
        result.expect("shutdown through vmd");
        assert!(out.contains("shut off"), "{out}");
        add_vm(
            &host,
            VmConfig::new("db", BootConfig::Demo),
            RunState::Running,
        );
        host.break_definition_with(
            "db",
            crate::config::DefinitionError {
                path: "/x/db.toml".into(),
                line: None,
                reason: "missing field `name`".into(),
            },
            BROKEN_TEXT,
        );
        let (result, _, _) = capture(|io| destroy(&host, "db", io));
        result.expect("destroy through vmd");
        assert_eq!(run_state(&host, "db"), RunState::ShutOff);
    }

    #[test]
    fn start_of_a_vm_with_a_broken_definition_names_the_fix() {
        let host = host_with_vm("web", RunState::ShutOff);
        host.break_definition_with(
            "web",
            crate::config::DefinitionError {
                path: "/x/web.toml".into(),
                line: Some(2),
                reason: "invalid type".into(),
            },
            BROKEN_TEXT,
        );
        let (result, _, _) = capture(|io| start(&host, "web", io));
        let err = result.expect_err("cannot start without a definition");
        assert!(err.to_string().contains("vmux edit web"), "{err}");
    }

    #[test]
    fn suspend_then_resume_round_trips_the_state() {
        let host = host_with_vm("web", RunState::Running);
        let (result, _, _) = capture(|io| suspend(&host, "web", io));
        result.expect("suspend");
        assert_eq!(run_state(&host, "web"), RunState::Paused);
        let (result, _, _) = capture(|io| resume(&host, "web", io));
        result.expect("resume");
        assert_eq!(run_state(&host, "web"), RunState::Running);
    }

    #[test]
    fn resume_of_a_running_vm_is_refused() {
        let host = host_with_vm("web", RunState::Running);
        let (result, _, _) = capture(|io| resume(&host, "web", io));
        assert!(matches!(result, Err(CliError::NotPaused(_))));
    }

    #[test]
    fn autostart_all_starts_marked_vms_and_reports_each() {
        let host = FakeHost::default();
        let marked = |name: &str| VmConfig {
            autostart: true,
            ..VmConfig::new(name, BootConfig::Demo)
        };
        add_vm(&host, marked("a"), RunState::ShutOff);
        add_vm(&host, marked("b"), RunState::Running);
        add_vm(
            &host,
            VmConfig::new("c", BootConfig::Demo),
            RunState::ShutOff,
        );
        let (result, out, _) = capture(|io| autostart_all(&host, &FakeNetworks::default(), io));
        result.expect("autostart-all");
        assert!(out.contains("a: started"), "{out}");
        assert!(out.contains("b: already running"), "{out}");
        assert_eq!(run_state(&host, "c"), RunState::ShutOff);
    }

    #[test]
    fn autostart_all_resumes_a_managed_save() {
        let host = FakeHost::default();
        let cfg = VmConfig {
            autostart: true,
            ..VmConfig::new("web", BootConfig::Demo)
        };
        add_vm(&host, cfg, RunState::Saved);
        let (result, out, _) = capture(|io| autostart_all(&host, &FakeNetworks::default(), io));
        result.expect("autostart-all");
        assert!(out.contains("web: resumed from its managed save"), "{out}");
        assert_eq!(run_state(&host, "web"), RunState::Running);
    }

    #[test]
    fn autostart_all_starts_networks_first_and_counts_their_failures() {
        let host = FakeHost::default();
        let cfg = VmConfig {
            autostart: true,
            ..VmConfig::new("web", BootConfig::Demo)
        };
        add_vm(&host, cfg, RunState::ShutOff);
        let networks = FakeNetworks::new();
        for name in ["broken", "default"] {
            let config = crate::config::NetworkConfig {
                name: name.into(),
                autostart: true,
                ..crate::config::NetworkConfig::default_network()
            };
            networks.add(config, false);
        }
        // Networks start in name order: `broken` first.
        networks.fail_next("start", "bridge br0 is gone");

        let (result, out, err) = capture(|io| autostart_all(&host, &networks, io));

        assert!(matches!(
            result,
            Err(CliError::AutostartFailed { failed: 1 })
        ));
        let network_line = out.find("network default: started").expect("network line");
        let vm_line = out.find("web: started").expect("VM line");
        assert!(network_line < vm_line, "{out}");
        assert!(
            err.contains("network broken: error: bridge br0 is gone"),
            "{err}"
        );
    }

    #[test]
    fn autostart_all_keeps_going_after_a_failure_and_fails_at_the_end() {
        let host = FakeHost::new();
        host.fail_next("start", "the engine refused");
        for name in ["a", "b"] {
            let cfg = VmConfig {
                autostart: true,
                ..VmConfig::new(name, BootConfig::Demo)
            };
            add_vm(&host, cfg, RunState::ShutOff);
        }
        let (result, out, err) = capture(|io| autostart_all(&host, &FakeNetworks::default(), io));
        assert!(matches!(
            result,
            Err(CliError::AutostartFailed { failed: 1 })
        ));
        assert!(err.contains("a: error: cannot start VM 'a'"), "{err}");
        assert!(out.contains("b: started"), "{out}");
    }
}
