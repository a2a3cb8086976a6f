//! Checks for hotplug changes, made on a copy of the definition before anything changes, and
//! shared by every [`super::Host`] so the real host and the fakes refuse the same things.

use super::{ChangeScope, ClientError};
use crate::config::{DiskConfig, VmConfig, assign_targets};
use crate::protocol::DiskInfo;
use std::path::{Path, PathBuf};

/// Checks setting `config`'s VM to `count` vCPUs in `scope`; `live_max` is the running VM's
/// `max_vcpus` for a live change (it may differ from the definition when that was edited after
/// the start). Returns the definition to save when `scope.config`.
pub fn check_vcpus(
    config: &VmConfig,
    count: u32,
    scope: ChangeScope,
    live_max: Option<u32>,
) -> Result<Option<VmConfig>, ClientError> {
    let name = &config.name;
    if !scope.live && !scope.config {
        return Err(ClientError::Invalid(
            "nothing to change: give --live, --config or both".into(),
        ));
    }
    if count == 0 {
        return Err(ClientError::Invalid(format!(
            "VM '{name}' needs at least 1 vCPU; give a count from 1 to {}",
            config.max_vcpus
        )));
    }
    if let Some(max) = live_max.filter(|&max| scope.live && count > max) {
        return Err(ClientError::Invalid(format!(
            "cannot run {count} vCPUs in VM '{name}': it was started with max_vcpus {max}; \
             give at most {max}, or raise max_vcpus with `vmux edit {name}` and restart it"
        )));
    }
    if !scope.config {
        return Ok(None);
    }
    if count > config.max_vcpus {
        return Err(ClientError::Invalid(format!(
            "cannot give VM '{name}' {count} vCPUs: its max_vcpus is {}; raise max_vcpus with \
             `vmux edit {name}` first",
            config.max_vcpus
        )));
    }
    let mut updated = config.clone();
    updated.vcpus = count;
    updated.validate().map_err(ClientError::Invalid)?;
    Ok(Some(updated))
}

/// Where an image is used besides the disk being attached.
#[derive(Debug, Default)]
pub struct ImageUse {
    /// The disk of this VM (definition or running) that already has the image.
    pub this_vm: Option<String>,
    /// Other VMs whose disks reach the image (definitions or running), with whether each runs.
    pub other_vms: Vec<(String, bool)>,
    /// Images that use this one as their backing file.
    pub overlays: Vec<PathBuf>,
    /// Whether this user may write the image.
    pub writable: bool,
    /// The pool whose directory this user cannot write, when the image is a volume of one.
    pub read_only_pool: Option<String>,
}

/// What an attach will do, once checked.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachPlan {
    /// The disk's guest name.
    pub target: String,
    /// The definition to save (for `scope.config`).
    pub updated: Option<VmConfig>,
}

/// The guest names a running VM's disks have.
fn live_targets(live: Option<&[DiskInfo]>) -> Vec<String> {
    live.unwrap_or_default()
        .iter()
        .map(|d| d.target.clone())
        .collect()
}

/// Checks attaching `disk` (whose image is `image`) to `config`'s VM in `scope`; `live` is the
/// running VM's disks for a live change, `image_use` where else the image is. Picks the target
/// (the one asked for, or the first free in both the definition and the running VM).
pub fn check_attach(
    config: &VmConfig,
    disk: &DiskConfig,
    image: &Path,
    scope: ChangeScope,
    live: Option<&[DiskInfo]>,
    image_use: &ImageUse,
) -> Result<AttachPlan, ClientError> {
    let name = &config.name;
    let invalid = |message: String| Err(ClientError::Invalid(message));
    if !scope.live && !scope.config {
        return invalid("nothing to change: give --live, --config or both".into());
    }
    disk.validate().map_err(ClientError::Invalid)?;
    if let Some(target) = &image_use.this_vm {
        return invalid(format!(
            "VM '{name}' already has {} as disk {target}; an image can be attached once",
            image.display()
        ));
    }
    if let Some((vm, running)) = image_use.other_vms.first() {
        let how = if *running { "running VM" } else { "VM" };
        return invalid(format!(
            "{} is used by {how} '{vm}'; two VMs must not share a disk image: detach it there first, or attach a copy (`vmux vol-clone`)",
            image.display()
        ));
    }
    if !disk.readonly {
        if let Some(pool) = &image_use.read_only_pool {
            return invalid(format!(
                "storage pool '{pool}' is read-only for this user; attach its volume with --readonly"
            ));
        }
        if !image_use.writable {
            return invalid(format!(
                "{} cannot be written by this user; attach it with --readonly, or fix its permissions",
                image.display()
            ));
        }
        if !image_use.overlays.is_empty() {
            let overlays: Vec<String> = image_use
                .overlays
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return invalid(format!(
                "{} is the backing file of {}; writing it would corrupt them: attach it with --readonly",
                image.display(),
                overlays.join(", ")
            ));
        }
    }
    let defined = if scope.config {
        assign_targets(&config.disks).map_err(ClientError::Invalid)?
    } else {
        Vec::new()
    };
    let running = if scope.live {
        live_targets(live)
    } else {
        Vec::new()
    };
    let taken = |target: &str| defined.iter().chain(&running).any(|t| t == target);
    let target = match &disk.target {
        Some(target) if taken(target) => {
            return invalid(format!(
                "VM '{name}' already has a disk {target}; pick another --target or detach that disk first"
            ));
        }
        Some(target) => target.clone(),
        None => (b'a'..=b'z')
            .map(|c| format!("vd{}", c as char))
            .find(|t| !taken(t))
            .ok_or_else(|| {
                ClientError::Invalid(format!(
                    "VM '{name}' has no free disk target left (vda..vdz); detach a disk first"
                ))
            })?,
    };
    let updated = if scope.config {
        let mut updated = config.clone();
        updated.disks.push(DiskConfig {
            target: Some(target.clone()),
            ..disk.clone()
        });
        updated.validate().map_err(ClientError::Invalid)?;
        Some(updated)
    } else {
        None
    };
    Ok(AttachPlan { target, updated })
}

/// Checks detaching disk `target` from `config`'s VM in `scope` (`live` is the running VM's
/// disks for a live change); returns the definition to save for `scope.config`.
pub fn check_detach(
    config: &VmConfig,
    target: &str,
    scope: ChangeScope,
    live: Option<&[DiskInfo]>,
) -> Result<Option<VmConfig>, ClientError> {
    let name = &config.name;
    if !scope.live && !scope.config {
        return Err(ClientError::Invalid(
            "nothing to change: give --live, --config or both".into(),
        ));
    }
    if scope.live {
        match live.unwrap_or_default().iter().find(|d| d.target == target) {
            None => {
                return Err(ClientError::Invalid(format!(
                    "running VM '{name}' has no disk {target}; `vmux info {name}` lists its disks"
                )));
            }
            Some(disk) if disk.removing => {
                return Err(ClientError::Invalid(format!(
                    "disk {target} of VM '{name}' is already being removed; the guest has not ejected it yet (`vmux detach-disk {name} {target} --force` takes it away without the guest's consent)"
                )));
            }
            Some(_) => {}
        }
    }
    if !scope.config {
        return Ok(None);
    }
    let targets = assign_targets(&config.disks).map_err(ClientError::Invalid)?;
    let Some(index) = targets.iter().position(|t| t == target) else {
        return Err(ClientError::Invalid(format!(
            "the definition of VM '{name}' has no disk {target}; `vmux dumpconfig {name}` shows its disks"
        )));
    };
    let mut updated = config.clone();
    updated.disks.remove(index);
    // The remaining disks keep their names: implicit targets could shift otherwise.
    for (disk, target) in updated
        .disks
        .iter_mut()
        .zip(targets.iter().enumerate().filter(|(i, _)| *i != index))
    {
        disk.target.get_or_insert_with(|| target.1.clone());
    }
    Ok(Some(updated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BootConfig;

    fn writable_use() -> ImageUse {
        ImageUse {
            writable: true,
            ..ImageUse::default()
        }
    }

    fn data_disk() -> DiskConfig {
        DiskConfig::volume("default", "data.qcow2")
    }

    fn live_disk(target: &str, removing: bool) -> DiskInfo {
        DiskInfo {
            target: target.into(),
            path: format!("/images/{target}.qcow2").into(),
            read_only: false,
            slot: 1,
            removing,
            removal_requested_at: removing.then_some(1_700_000_000),
        }
    }

    #[test]
    fn attach_takes_the_first_target_free_in_the_definition_and_the_running_vm() {
        let mut config = web(1, 4);
        config.disks = vec![DiskConfig::volume("default", "root.qcow2")];
        let live = [live_disk("vda", false), live_disk("vdb", false)];
        let plan = check_attach(
            &config,
            &data_disk(),
            Path::new("/images/data.qcow2"),
            ChangeScope::BOTH,
            Some(&live),
            &writable_use(),
        )
        .expect("valid");
        assert_eq!(plan.target, "vdc");
        let updated = plan.updated.expect("config");
        assert_eq!(updated.disks[1].target.as_deref(), Some("vdc"));
    }

    #[test]
    fn attach_with_a_taken_target_is_refused() {
        let live = [live_disk("vdb", false)];
        let disk = DiskConfig {
            target: Some("vdb".into()),
            ..data_disk()
        };
        let err = check_attach(
            &web(1, 4),
            &disk,
            Path::new("/images/data.qcow2"),
            ChangeScope::LIVE,
            Some(&live),
            &writable_use(),
        )
        .expect_err("taken");
        assert!(err.to_string().contains("already has a disk vdb"), "{err}");
    }

    #[test]
    fn attach_of_an_image_another_vm_uses_is_refused_naming_it() {
        let image_use = ImageUse {
            other_vms: vec![("db".into(), true)],
            ..writable_use()
        };
        let err = check_attach(
            &web(1, 4),
            &data_disk(),
            Path::new("/images/data.qcow2"),
            ChangeScope::LIVE,
            Some(&[]),
            &image_use,
        )
        .expect_err("shared");
        assert!(err.to_string().contains("running VM 'db'"), "{err}");
        assert!(!err.to_string().contains("  "), "a run of spaces: {err}");
    }

    #[test]
    fn refusals_read_as_single_spaced_sentences() {
        let cases = [
            ImageUse {
                read_only_pool: Some("iso".into()),
                ..ImageUse::default()
            },
            ImageUse::default(),
            ImageUse {
                overlays: vec!["/images/top.qcow2".into()],
                ..writable_use()
            },
        ];
        for image_use in cases {
            let err = check_attach(
                &web(1, 4),
                &data_disk(),
                Path::new("/images/data.qcow2"),
                ChangeScope::LIVE,
                Some(&[]),
                &image_use,
            )
            .expect_err("refused");
            assert!(!err.to_string().contains("  "), "a run of spaces: {err}");
        }
        let taken = [live_disk("vdb", false)];
        let target = DiskConfig {
            target: Some("vdb".into()),
            ..data_disk()
        };
        let err = check_attach(
            &web(1, 4),
            &target,
            Path::new("/images/data.qcow2"),
            ChangeScope::LIVE,
            Some(&taken),
            &writable_use(),
        )
        .expect_err("taken");
        assert!(!err.to_string().contains("  "), "a run of spaces: {err}");
        let err =
            check_detach(&web(1, 4), "vdb", ChangeScope::CONFIG, None).expect_err("not defined");
        assert!(!err.to_string().contains("  "), "a run of spaces: {err}");
    }

    #[test]
    fn attach_of_an_image_this_vm_has_is_refused() {
        let image_use = ImageUse {
            this_vm: Some("vda".into()),
            ..writable_use()
        };
        let err = check_attach(
            &web(1, 4),
            &data_disk(),
            Path::new("/images/data.qcow2"),
            ChangeScope::CONFIG,
            None,
            &image_use,
        )
        .expect_err("twice");
        assert!(err.to_string().contains("as disk vda"), "{err}");
    }

    #[test]
    fn writable_attach_from_a_read_only_pool_is_refused_but_readonly_is_fine() {
        let image_use = ImageUse {
            read_only_pool: Some("iso".into()),
            ..ImageUse::default()
        };
        let image = Path::new("/iso/tools.raw");
        let err = check_attach(
            &web(1, 4),
            &data_disk(),
            image,
            ChangeScope::LIVE,
            Some(&[]),
            &image_use,
        )
        .expect_err("read-only pool");
        assert!(err.to_string().contains("--readonly"), "{err}");
        let readonly = DiskConfig {
            readonly: true,
            ..data_disk()
        };
        check_attach(
            &web(1, 4),
            &readonly,
            image,
            ChangeScope::LIVE,
            Some(&[]),
            &image_use,
        )
        .expect("read-only attach");
    }

    #[test]
    fn detach_of_a_disk_the_vm_lacks_is_refused() {
        let err = check_detach(&web(1, 4), "vdb", ChangeScope::LIVE, Some(&[]))
            .expect_err("no such disk");
        assert!(err.to_string().contains("vmux info web"), "{err}");
        let err =
            check_detach(&web(1, 4), "vdb", ChangeScope::CONFIG, None).expect_err("not defined");
        assert!(err.to_string().contains("dumpconfig"), "{err}");
    }

    #[test]
    fn detach_from_the_definition_keeps_the_other_disks_names() {
        let mut config = web(1, 4);
        config.disks = vec![
            DiskConfig::volume("default", "a.qcow2"),
            DiskConfig::volume("default", "b.qcow2"),
        ];
        let updated = check_detach(&config, "vda", ChangeScope::CONFIG, None)
            .expect("valid")
            .expect("config");
        assert_eq!(updated.disks.len(), 1);
        assert_eq!(updated.disks[0].target.as_deref(), Some("vdb"));
    }

    #[test]
    fn detach_of_a_disk_already_being_removed_is_refused() {
        let live = [live_disk("vdb", true)];
        let err =
            check_detach(&web(1, 4), "vdb", ChangeScope::LIVE, Some(&live)).expect_err("removing");
        assert!(err.to_string().contains("already being removed"), "{err}");
    }

    fn web(vcpus: u32, max_vcpus: u32) -> VmConfig {
        VmConfig {
            vcpus,
            max_vcpus,
            ..VmConfig::new("web", BootConfig::Demo)
        }
    }

    #[test]
    fn a_config_change_returns_the_updated_definition() {
        let updated = check_vcpus(&web(2, 8), 6, ChangeScope::CONFIG, None).expect("valid");
        assert_eq!(updated.map(|c| c.vcpus), Some(6));
    }

    #[test]
    fn a_live_only_change_leaves_the_definition_alone() {
        let updated = check_vcpus(&web(2, 8), 6, ChangeScope::LIVE, Some(8)).expect("valid");
        assert!(updated.is_none());
    }

    #[test]
    fn zero_vcpus_are_refused() {
        let err = check_vcpus(&web(2, 8), 0, ChangeScope::BOTH, Some(8)).expect_err("zero");
        assert!(err.to_string().contains("at least 1 vCPU"), "{err}");
    }

    #[test]
    fn more_than_the_running_max_is_refused_live() {
        let err = check_vcpus(&web(2, 16), 9, ChangeScope::LIVE, Some(8)).expect_err("max");
        assert!(err.to_string().contains("max_vcpus 8"), "{err}");
    }

    #[test]
    fn more_than_the_defined_max_is_refused_for_the_config() {
        let err = check_vcpus(&web(2, 4), 5, ChangeScope::CONFIG, None).expect_err("max");
        assert!(err.to_string().contains("max_vcpus is 4"), "{err}");
    }

    #[test]
    fn an_empty_scope_is_refused() {
        let scope = ChangeScope {
            live: false,
            config: false,
        };
        assert!(check_vcpus(&web(2, 4), 3, scope, None).is_err());
    }
}
