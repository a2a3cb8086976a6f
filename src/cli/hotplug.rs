//! Hotplug verbs: `setvcpus` (and, with PCI hotplug, `attach-disk` / `detach-disk`). Like
//! virsh, `--live` changes the running VM, `--config` the definition, both do both, and
//! neither means "the current one": live when the VM runs, the definition when it does not.

use super::{CliError, Io, SetvcpusArgs};
use crate::client::{ChangeScope, Host};
use crate::engine::control::RunState;

/// The scope of a change: what was asked for, or the current state's (virsh's `--current`).
pub fn resolve_scope(live: bool, config: bool, state: RunState) -> ChangeScope {
    if live || config {
        return ChangeScope { live, config };
    }
    match state {
        RunState::Running | RunState::Paused => ChangeScope::LIVE,
        RunState::ShutOff | RunState::Crashed => ChangeScope::CONFIG,
    }
}

/// `vmux setvcpus NAME N [--live] [--config]`.
pub fn setvcpus(host: &dyn Host, args: &SetvcpusArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let name = &args.name;
    let state = host.status(name)?.state;
    let scope = resolve_scope(args.live, args.config, state);
    host.set_vcpus(name, args.count, scope)?;
    if scope.live {
        writeln!(
            io.out,
            "VM '{name}' set to {} vCPUs live; the guest onlines added vCPUs and ejects removed \
             ones (`vmux info {name}` shows how many are online)",
            args.count
        )?;
    }
    if scope.config {
        writeln!(
            io.out,
            "VM '{name}' will start with {} vCPUs (definition updated)",
            args.count
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::fake::{FakeHost, capture};

    fn args(count: u32, live: bool, config: bool) -> SetvcpusArgs {
        SetvcpusArgs {
            name: "web".into(),
            count,
            live,
            config,
        }
    }

    #[test]
    fn no_flag_means_live_for_a_running_vm() {
        assert_eq!(
            resolve_scope(false, false, RunState::Running),
            ChangeScope::LIVE
        );
    }

    #[test]
    fn no_flag_means_the_definition_for_a_stopped_vm() {
        assert_eq!(
            resolve_scope(false, false, RunState::ShutOff),
            ChangeScope::CONFIG
        );
    }

    #[test]
    fn setvcpus_of_a_running_vm_changes_it_live_only() {
        let host = FakeHost::with_vm("web", RunState::Running);
        let (result, out, _) = capture(|io| setvcpus(&host, &args(3, false, false), io));
        result.expect("setvcpus");
        assert!(out.contains("set to 3 vCPUs live"), "{out}");
        assert_eq!(host.live_vcpus("web"), Some(3));
        assert_eq!(host.config("web").vcpus, 1);
    }

    #[test]
    fn setvcpus_of_a_stopped_vm_changes_the_definition() {
        let host = FakeHost::with_vm("web", RunState::ShutOff);
        let (result, out, _) = capture(|io| setvcpus(&host, &args(3, false, false), io));
        result.expect("setvcpus");
        assert!(out.contains("will start with 3 vCPUs"), "{out}");
        assert_eq!(host.config("web").vcpus, 3);
    }

    #[test]
    fn setvcpus_live_and_config_changes_both() {
        let host = FakeHost::with_vm("web", RunState::Running);
        let (result, _, _) = capture(|io| setvcpus(&host, &args(2, true, true), io));
        result.expect("setvcpus");
        assert_eq!(host.live_vcpus("web"), Some(2));
        assert_eq!(host.config("web").vcpus, 2);
    }

    #[test]
    fn setvcpus_live_of_a_stopped_vm_suggests_config() {
        let host = FakeHost::with_vm("web", RunState::ShutOff);
        let (result, _, _) = capture(|io| setvcpus(&host, &args(2, true, false), io));
        let err = result.expect_err("not running");
        assert!(err.to_string().contains("--config"), "{err}");
    }

    #[test]
    fn setvcpus_above_max_changes_nothing() {
        let host = FakeHost::with_vm("web", RunState::Running);
        let (result, _, _) = capture(|io| setvcpus(&host, &args(9, true, true), io));
        let err = result.expect_err("above max");
        assert!(err.to_string().contains("max_vcpus"), "{err}");
        assert_eq!(host.live_vcpus("web"), Some(1));
        assert_eq!(host.config("web").vcpus, 1);
    }
}
