//! `vol-check` on [`StorageManager`]: the qcow2 refcount check (and `--repair`) of a pool
//! volume, like `qemu-img check [-r all]`, refusing what the check cannot do safely: raw
//! volumes (nothing to check) and a repair of a volume a running VM uses. The volume's format
//! is its record, else its name (never its content), as for every other volume operation.

use super::StorageError;
use super::format::{Detect, ImageFormat};
use super::pool::StorageManager;
use super::qcow2_repair::{CheckReport, check_image, repair_image};

impl StorageManager {
    /// Checks the refcounts of qcow2 volume `pool`/`volume`; with `repair`, rebuilds them when
    /// anything is wrong (see [`super::qcow2_repair`]). A repair is refused while a running VM
    /// uses the volume; a check reads under a shared lock, so it fails while a VM writes it.
    pub fn vol_check(
        &self,
        pool: &str,
        volume: &str,
        repair: bool,
    ) -> Result<CheckReport, StorageError> {
        let path = self.volume_path(pool, volume)?;
        let label = format!("{pool}/{volume}");
        if repair
            && let Some(user) = self
                .usage()
                .vms_using(&path)
                .into_iter()
                .find(|u| u.running)
        {
            return Err(StorageError::InUseByRunningVm {
                volume: label,
                vm: user.vm,
            });
        }
        let format = match self.volume_detect(&self.pool(pool)?.path, volume)? {
            Detect::Known(format) => Some(format),
            Detect::ByName => ImageFormat::from_name(&path),
        };
        match format {
            Some(ImageFormat::Qcow2) => {}
            Some(ImageFormat::Raw) => {
                return Err(StorageError::Invalid(format!(
                    "{label} is a raw image: it has no metadata to check (vol-check checks qcow2 volumes)"
                )));
            }
            None => {
                return Err(StorageError::Invalid(format!(
                    "{label} has no recorded format and its name does not say one; record it with `vmux vol-set-format {pool} {volume} qcow2`"
                )));
            }
        }
        let report = if repair {
            repair_image(&path)?
        } else {
            check_image(&path)?
        };
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Paths;
    use crate::storage::VolumeSpec;
    use std::path::Path;

    fn manager(home: &Path) -> StorageManager {
        StorageManager::new(Paths::under(home))
    }

    fn create(storage: &StorageManager, volume: &str) {
        storage
            .vol_create(
                "default",
                volume,
                VolumeSpec {
                    capacity: 1 << 30,
                    format: None,
                    preallocate: false,
                },
            )
            .expect("create");
    }

    #[test]
    fn a_new_qcow2_volume_checks_clean() {
        let home = tempfile::tempdir().expect("tempdir");
        let storage = manager(home.path());
        create(&storage, "a.qcow2");
        let report = storage
            .vol_check("default", "a.qcow2", false)
            .expect("check");
        assert!(report.is_clean(), "{report:?}");
    }

    #[test]
    fn a_raw_volume_is_refused_with_the_reason() {
        let home = tempfile::tempdir().expect("tempdir");
        let storage = manager(home.path());
        create(&storage, "a.raw");
        let err = storage
            .vol_check("default", "a.raw", true)
            .expect_err("raw");
        assert!(err.to_string().contains("raw image"), "{err}");
    }

    #[test]
    fn lost_refcounts_are_repaired() {
        use std::os::unix::fs::FileExt;
        let home = tempfile::tempdir().expect("tempdir");
        let storage = manager(home.path());
        create(&storage, "a.qcow2");
        let path = storage.volume_path("default", "a.qcow2").expect("path");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        let mut table = [0u8; 8];
        file.read_exact_at(&mut table, 48).expect("read");
        file.write_all_at(&[0u8; 8], u64::from_be_bytes(table))
            .expect("write");
        let found = storage
            .vol_check("default", "a.qcow2", false)
            .expect("check");
        assert!(found.errors > 0, "{found:?}");
        let fixed = storage
            .vol_check("default", "a.qcow2", true)
            .expect("repair");
        assert!(fixed.repaired);
        assert!(
            storage
                .vol_check("default", "a.qcow2", false)
                .expect("check")
                .is_clean()
        );
    }
}
