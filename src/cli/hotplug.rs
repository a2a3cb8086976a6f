//! Hotplug verbs: `setvcpus`, `attach-disk` and `detach-disk`. Like virsh, `--live` changes
//! the running VM, `--config` the definition, both do both, and neither means "the current
//! one": live when the VM runs, the definition when it does not.

use super::{AttachDiskArgs, CliError, DetachDiskArgs, Io, SetvcpusArgs};
use crate::client::{ChangeScope, Host};
use crate::config::DiskConfig;
use crate::protocol::RunState;

/// The scope of a change: what was asked for, or the current state's (virsh's `--current`).
pub fn resolve_scope(live: bool, config: bool, state: RunState) -> ChangeScope {
    if live || config {
        return ChangeScope { live, config };
    }
    match state {
        RunState::Running | RunState::Paused => ChangeScope::LIVE,
        RunState::ShutOff | RunState::Crashed | RunState::Saved => ChangeScope::CONFIG,
    }
}

/// `vmux setvcpus NAME N [--live] [--config]`.
pub fn setvcpus(host: &dyn Host, args: &SetvcpusArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let name = &args.name;
    let state = host.state(name)?.state;
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

/// `vmux attach-disk NAME SOURCE [--target vdX] [--readonly] [--serial S] [--live] [--config]`.
pub fn attach_disk(
    host: &dyn Host,
    args: &AttachDiskArgs,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let name = &args.name;
    let mut disk: DiskConfig = args.source.parse().map_err(CliError::Invalid)?;
    disk.readonly |= args.readonly;
    if args.target.is_some() {
        disk.target.clone_from(&args.target);
    }
    if args.serial.is_some() {
        disk.serial.clone_from(&args.serial);
    }
    if args.format.is_some() {
        disk.format = args.format;
    }
    for path in &args.allow_backing {
        let path = std::path::absolute(path).map_err(|e| {
            CliError::Invalid(format!(
                "cannot make --allow-backing {} absolute: {e}",
                path.display()
            ))
        })?;
        disk.allow_backing.push(path);
    }
    disk.validate().map_err(CliError::Invalid)?;
    let state = host.state(name)?.state;
    let scope = resolve_scope(args.live, args.config, state);
    let target = host.attach_disk(name, &disk, scope)?;
    if scope.live {
        writeln!(
            io.out,
            "Disk {} attached to VM '{name}' as {target}; the guest has been notified",
            disk.source
        )?;
    }
    if scope.config {
        writeln!(
            io.out,
            "Disk {} added to the definition of VM '{name}' as {target} (from the next start)",
            disk.source
        )?;
    }
    Ok(())
}

/// How often `detach-disk` asks whether the guest has ejected the disk.
const EJECT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// `vmux detach-disk NAME TARGET [--live] [--config] [--force] [--timeout S]`: a live removal
/// asks the guest and waits (up to `--timeout`) for it to eject the disk, saying which it
/// was; `--force` takes the disk away without asking.
pub fn detach_disk(
    host: &dyn Host,
    args: &DetachDiskArgs,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let name = &args.name;
    let target = &args.target;
    let state = host.state(name)?.state;
    let scope = resolve_scope(args.live || args.force, args.config, state);
    if args.force {
        writeln!(
            io.err,
            "warning: taking disk {target} from VM '{name}' without the guest's consent: what it \
             has not written to the disk is lost, and programs using it see I/O errors"
        )?;
        host.force_detach_disk(name, target)?;
        writeln!(
            io.out,
            "Disk {target} taken away from VM '{name}'; its image is closed"
        )?;
        if scope.config {
            host.detach_disk(name, target, ChangeScope::CONFIG)?;
        }
    } else {
        host.detach_disk(name, target, scope)?;
        if scope.live {
            writeln!(
                io.out,
                "Asked the guest of VM '{name}' to eject disk {target}; waiting"
            )?;
            io.out.flush()?;
            if wait_for_eject(host, name, target, args.timeout)? {
                writeln!(
                    io.out,
                    "The guest ejected disk {target}; its image is closed"
                )?;
            } else {
                writeln!(
                    io.out,
                    "The guest has not ejected disk {target} after {} s; it stays attached until \
                     it does (`vmux info {name}` shows it as being removed). Unmount it in the \
                     guest, or take it away without the guest's consent with \
                     `vmux detach-disk {name} {target} --force`",
                    args.timeout
                )?;
            }
        }
    }
    if scope.config {
        writeln!(
            io.out,
            "Disk {target} removed from the definition of VM '{name}' (from the next start)"
        )?;
    }
    Ok(())
}

/// Waits up to `seconds` for the running VM to lose disk `target`; says whether it did.
fn wait_for_eject(
    host: &dyn Host,
    name: &str,
    target: &str,
    seconds: u64,
) -> Result<bool, CliError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let info = host.info(name)?;
        if !info.disks.iter().any(|d| d.target == target) {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(EJECT_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::test_support::{capture, config, host_with_vm, live_vcpus};

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
        let host = host_with_vm("web", RunState::Running);
        let (result, out, _) = capture(|io| setvcpus(&host, &args(3, false, false), io));
        result.expect("setvcpus");
        assert!(out.contains("set to 3 vCPUs live"), "{out}");
        assert_eq!(live_vcpus(&host, "web"), Some(3));
        assert_eq!(config(&host, "web").vcpus, 1);
    }

    #[test]
    fn setvcpus_of_a_stopped_vm_changes_the_definition() {
        let host = host_with_vm("web", RunState::ShutOff);
        let (result, out, _) = capture(|io| setvcpus(&host, &args(3, false, false), io));
        result.expect("setvcpus");
        assert!(out.contains("will start with 3 vCPUs"), "{out}");
        assert_eq!(config(&host, "web").vcpus, 3);
    }

    #[test]
    fn setvcpus_live_and_config_changes_both() {
        let host = host_with_vm("web", RunState::Running);
        let (result, _, _) = capture(|io| setvcpus(&host, &args(2, true, true), io));
        result.expect("setvcpus");
        assert_eq!(live_vcpus(&host, "web"), Some(2));
        assert_eq!(config(&host, "web").vcpus, 2);
    }

    #[test]
    fn setvcpus_live_of_a_stopped_vm_suggests_config() {
        let host = host_with_vm("web", RunState::ShutOff);
        let (result, _, _) = capture(|io| setvcpus(&host, &args(2, true, false), io));
        let err = result.expect_err("not running");
        assert!(err.to_string().contains("--config"), "{err}");
    }

    fn attach(source: &str, live: bool, config: bool) -> AttachDiskArgs {
        AttachDiskArgs {
            name: "web".into(),
            source: source.into(),
            target: None,
            readonly: false,
            serial: None,
            format: None,
            allow_backing: Vec::new(),
            live,
            config,
        }
    }

    #[test]
    fn attach_disk_to_a_running_vm_goes_live_with_the_first_free_target() {
        let host = host_with_vm("web", RunState::Running);
        let (result, out, _) =
            capture(|io| attach_disk(&host, &attach("default/data.qcow2", false, false), io));
        result.expect("attach");
        assert!(out.contains("attached to VM 'web' as vda"), "{out}");
        assert!(config(&host, "web").disks.is_empty());
    }

    #[test]
    fn attach_disk_with_config_records_the_disk_in_the_definition() {
        let host = host_with_vm("web", RunState::ShutOff);
        let (result, out, _) =
            capture(|io| attach_disk(&host, &attach("/srv/data.raw", false, true), io));
        result.expect("attach");
        assert!(out.contains("added to the definition"), "{out}");
        assert_eq!(config(&host, "web").disks.len(), 1);
    }

    #[test]
    fn attach_disk_refuses_a_source_that_is_not_a_disk() {
        let host = host_with_vm("web", RunState::Running);
        let (result, _, _) = capture(|io| attach_disk(&host, &attach("data", true, false), io));
        let err = result.expect_err("bad source");
        assert!(err.to_string().contains("<pool>/<volume>"), "{err}");
    }

    #[test]
    fn detach_disk_of_a_disk_the_definition_lacks_changes_nothing() {
        let host = host_with_vm("web", RunState::ShutOff);
        let args = DetachDiskArgs {
            name: "web".into(),
            target: "vdb".into(),
            live: false,
            config: false,
            force: false,
            timeout: 10,
        };
        let (result, _, _) = capture(|io| detach_disk(&host, &args, io));
        let err = result.expect_err("no disk");
        assert!(err.to_string().contains("has no disk vdb"), "{err}");
    }

    fn detach(force: bool) -> DetachDiskArgs {
        DetachDiskArgs {
            name: "web".into(),
            target: "vda".into(),
            live: true,
            config: false,
            force,
            timeout: 2,
        }
    }

    #[test]
    fn a_live_detach_waits_and_says_when_the_guest_ejected_the_disk() {
        let host = host_with_vm("web", RunState::Running);
        let (result, _, _) =
            capture(|io| attach_disk(&host, &attach("default/data.qcow2", true, false), io));
        result.expect("attach");
        let (result, out, _) = capture(|io| detach_disk(&host, &detach(false), io));
        result.expect("detach");
        let asked = out.find("Asked the guest of VM 'web' to eject disk vda; waiting");
        let done = out.find("The guest ejected disk vda");
        assert!(asked.is_some() && done > asked, "{out}");
    }

    #[test]
    fn a_forced_detach_warns_and_takes_the_disk_away() {
        let host = host_with_vm("web", RunState::Running);
        let (result, _, _) =
            capture(|io| attach_disk(&host, &attach("default/data.qcow2", true, false), io));
        result.expect("attach");
        let (result, out, err) = capture(|io| detach_disk(&host, &detach(true), io));
        result.expect("forced");
        assert!(err.contains("without the guest's consent"), "{err}");
        assert!(out.contains("taken away"), "{out}");
    }

    #[test]
    fn setvcpus_above_max_changes_nothing() {
        let host = host_with_vm("web", RunState::Running);
        let (result, _, _) = capture(|io| setvcpus(&host, &args(9, true, true), io));
        let err = result.expect_err("above max");
        assert!(err.to_string().contains("max_vcpus"), "{err}");
        assert_eq!(live_vcpus(&host, "web"), Some(1));
        assert_eq!(config(&host, "web").vcpus, 1);
    }
}
