//! Checks a definition against this host when it is saved (`create`, `define`, `edit`, the
//! TUI's wizard and edit form all save through [`super::Host::define`] or
//! [`super::Host::update`]), so one set of rules refuses a VM that could never start: a kernel
//! the engine cannot load (empty, random, 32-bit, larger than the VM's memory), boot files it
//! cannot read, more memory than it has ([`super::host_facts`]) and a disk whose volume or file
//! does not exist.
//!
//! What can change between saving and starting (files deleted, pools stopped, memory used by
//! other VMs) is checked again at start (`host_check`). On an update only what changed is
//! checked, so a later unrelated edit is not refused because of something that was fine when
//! it was saved.

use crate::config::{BootConfig, DiskConfig, DiskSource, VmConfig};
use crate::storage::StorageManager;

/// Every define-time check of `config`, or the first problem with its fix. `previous` is the
/// definition being replaced: its boot image and disks are not checked again.
pub fn check(
    config: &VmConfig,
    previous: Option<&VmConfig>,
    storage: &StorageManager,
) -> Result<(), String> {
    let boot_changed = previous.is_none_or(|p| p.boot != config.boot || p.memory != config.memory);
    if boot_changed {
        super::host_facts::check(config).map_err(|e| crate::vmd::error_chain(&e))?;
    }
    if boot_changed && let BootConfig::Kernel { kernel, .. } = &config.boot {
        crate::engine::check_kernel(kernel, config.memory)
            .map_err(|e| crate::vmd::error_chain(&e))?;
    }
    for disk in &config.disks {
        let known = previous.is_some_and(|p| p.disks.iter().any(|d| d.source == disk.source));
        if !known {
            check_disk(disk, storage)?;
        }
    }
    Ok(())
}

/// The disk's volume or file must exist (its pool need not be active: it can be started).
fn check_disk(disk: &DiskConfig, storage: &StorageManager) -> Result<(), String> {
    match &disk.source {
        DiskSource::Volume { pool, volume } => {
            let path = storage
                .volume_location(pool, volume)
                .map_err(|e| format!("disk {}: {}", disk.source, crate::vmd::error_chain(&e)))?;
            if path.is_file() {
                return Ok(());
            }
            Err(format!(
                "disk {pool}/{volume}: storage pool '{pool}' has no volume '{volume}'; create it \
                 first with `vmux vol-create-as {pool} {volume} SIZE` (`vmux vol-list {pool}` \
                 shows the volumes it has)"
            ))
        }
        DiskSource::Path(path) if path.is_file() => Ok(()),
        DiskSource::Path(path) => Err(format!(
            "disk {}: there is no image file there; give the path of an existing image, or \
             create one in a pool with `vmux vol-create-as`",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Paths;

    fn storage(dir: &std::path::Path) -> StorageManager {
        StorageManager::new(Paths::under(dir))
    }

    fn with_kernel(path: &std::path::Path) -> VmConfig {
        VmConfig::new(
            "a",
            BootConfig::Kernel {
                kernel: path.to_path_buf(),
                initrd: None,
                cmdline: String::new(),
            },
        )
    }

    #[test]
    fn an_empty_kernel_is_refused_naming_the_formats() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = dir.path().join("vmlinuz");
        std::fs::write(&kernel, b"").expect("write");
        let err = check(&with_kernel(&kernel), None, &storage(dir.path())).expect_err("empty");
        assert!(err.contains("neither a Linux bzImage nor"), "{err}");
    }

    #[test]
    fn a_random_kernel_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = dir.path().join("vmlinuz");
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&kernel, noise).expect("write");
        assert!(check(&with_kernel(&kernel), None, &storage(dir.path())).is_err());
    }

    #[test]
    fn the_built_in_guest_elf_is_accepted_as_a_kernel() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kernel = dir.path().join("demo.elf");
        std::fs::write(&kernel, crate::assets::demo_guest()).expect("write");
        check(&with_kernel(&kernel), None, &storage(dir.path())).expect("a loadable ELF");
    }

    #[test]
    fn a_missing_volume_is_refused_with_the_command_that_creates_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = storage(dir.path());
        storage
            .pool("default")
            .expect("the default pool exists on first use");
        let mut config = VmConfig::new("a", BootConfig::Demo);
        config
            .disks
            .push(DiskConfig::volume("default", "missing.qcow2"));
        let err = check(&config, None, &storage).expect_err("missing volume");
        assert!(
            err.contains("vmux vol-create-as default missing.qcow2 SIZE"),
            "{err}"
        );
    }

    #[test]
    fn an_unchanged_disk_is_not_checked_again_on_update() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = storage(dir.path());
        storage.pool("default").expect("default pool");
        let mut before = VmConfig::new("a", BootConfig::Demo);
        before
            .disks
            .push(DiskConfig::volume("default", "gone.qcow2"));
        let mut after = before.clone();
        after.vcpus = 2;
        check(&after, Some(&before), &storage).expect("only the vCPUs changed");
    }
}
