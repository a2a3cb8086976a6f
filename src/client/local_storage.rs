//! The real [`StorageHost`]: a thin wrapper over `storage::StorageManager` and
//! `storage::SnapshotManager` for one vmux home (`config::Paths`); the live snapshot of a
//! running VM is in `local_snapshot`.

use super::LocalHost;
use super::storage_api::StorageHost;
use super::storage_views::{
    ImageSource, ImportedVolume, PoolList, PoolView, StorageSnapshot, VolumeProblem, VolumeView,
};
use crate::bootimg::{self, BootPlan, ReadAt, StorageDisk};
use crate::config::{DiskConfig, Paths};
use crate::progress::Progress;
use crate::storage::import::check_download;
use crate::storage::qcow2_repair::CheckReport;
use crate::storage::snapshot::RevertReport;
use crate::storage::{
    ImageFormat, PoolInfo, PoolStatus, SnapshotInfo, SnapshotManager, StorageError, StorageManager,
    VolumeInfo, VolumeSpec,
};
use crate::tui::error_text::error_chain;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Pools, volumes and disk snapshots under one vmux home.
#[derive(Clone)]
pub struct LocalStorage {
    manager: StorageManager,
    snapshots: SnapshotManager,
    /// The VMs of the same home: who holds a volume, and the live snapshot's disk switch.
    vms: LocalHost,
}

impl LocalStorage {
    /// Storage under `paths` (the default pool is defined on first use, as in the CLI).
    pub fn new(paths: Paths) -> LocalStorage {
        LocalStorage {
            manager: StorageManager::new(paths.clone()),
            snapshots: SnapshotManager::new(paths.clone()),
            vms: LocalHost::with_paths(paths, None),
        }
    }
}

impl StorageHost for LocalStorage {
    fn snapshot(&self) -> Result<StorageSnapshot, StorageError> {
        let mut snapshot = StorageSnapshot::default();
        for entry in self.manager.list_pools()? {
            let status = match entry {
                Ok(status) => status,
                Err(e) => {
                    snapshot.broken.push(error_chain(&e));
                    continue;
                }
            };
            let mut error = None;
            let info = self.manager.pool_info(&status.name).unwrap_or_else(|e| {
                error = Some(error_chain(&e));
                PoolInfo {
                    status: status.clone(),
                    capacity: 0,
                    allocation: 0,
                    available: 0,
                    volumes: 0,
                }
            });
            let volumes = if status.active && error.is_none() {
                self.list_volumes(&status.name).unwrap_or_else(|e| {
                    error = Some(error_chain(&e));
                    Vec::new()
                })
            } else {
                Vec::new()
            };
            snapshot.pools.push(PoolView {
                info,
                volumes,
                error,
            });
        }
        Ok(snapshot)
    }

    fn allowing_backing(&self, files: &[PathBuf]) -> Arc<dyn StorageHost> {
        let mut storage = self.clone();
        storage.manager = storage.manager.allowing_backing(files.iter().cloned());
        Arc::new(storage)
    }

    fn list_pools(&self) -> Result<PoolList, StorageError> {
        let mut list = PoolList::default();
        for entry in self.manager.list_pools()? {
            match entry {
                Ok(status) => list.pools.push(status),
                Err(e) => list.broken.push(e.to_string()),
            }
        }
        Ok(list)
    }

    fn define_pool(
        &self,
        pool: &str,
        target: &Path,
        build: bool,
    ) -> Result<PoolStatus, StorageError> {
        self.manager.define_pool(pool, target, build)
    }

    fn pool_info(&self, pool: &str) -> Result<PoolInfo, StorageError> {
        self.manager.pool_info(pool)
    }

    fn start_pool(&self, pool: &str) -> Result<(), StorageError> {
        self.manager.start_pool(pool).map(drop)
    }

    fn stop_pool(&self, pool: &str) -> Result<(), StorageError> {
        self.manager.stop_pool(pool).map(drop)
    }

    fn set_pool_autostart(&self, pool: &str, enabled: bool) -> Result<(), StorageError> {
        self.manager.set_pool_autostart(pool, enabled).map(drop)
    }

    fn undefine_pool(&self, pool: &str) -> Result<(), StorageError> {
        self.manager.undefine_pool(pool)
    }

    fn list_volumes(&self, pool: &str) -> Result<Vec<VolumeView>, StorageError> {
        Ok(self
            .manager
            .vol_list(pool)?
            .into_iter()
            .map(|(name, info)| VolumeView {
                name,
                info: info.map_err(|e| VolumeProblem::from_error(&e)),
            })
            .collect())
    }

    fn volume_info(&self, pool: &str, volume: &str) -> Result<VolumeInfo, StorageError> {
        self.manager.vol_info(pool, volume)
    }

    fn create_volume(
        &self,
        pool: &str,
        volume: &str,
        spec: VolumeSpec,
    ) -> Result<VolumeInfo, StorageError> {
        self.manager.vol_create(pool, volume, spec)
    }

    fn resize_volume(
        &self,
        pool: &str,
        volume: &str,
        capacity: u64,
        allow_shrink: bool,
    ) -> Result<VolumeInfo, StorageError> {
        self.manager
            .vol_resize(pool, volume, capacity, allow_shrink)
    }

    fn grow_volume_allocated(
        &self,
        pool: &str,
        volume: &str,
        capacity: u64,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.manager
            .vol_grow_allocated(pool, volume, capacity, progress)
    }

    fn clone_volume(
        &self,
        pool: &str,
        source: &str,
        clone: &str,
        linked: bool,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.manager
            .vol_clone(pool, source, clone, linked, progress)
    }

    fn convert_volume(
        &self,
        pool: &str,
        source: &str,
        dest: &str,
        format: Option<ImageFormat>,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.manager
            .vol_convert(pool, source, dest, format, progress)
    }

    fn upload_volume(
        &self,
        pool: &str,
        volume: &str,
        source: &Path,
        format: Option<ImageFormat>,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.manager
            .vol_upload(pool, volume, source, format, progress)
    }

    fn download_volume(
        &self,
        pool: &str,
        volume: &str,
        dest: &Path,
        format: Option<ImageFormat>,
        force: bool,
        progress: &Progress,
    ) -> Result<ImageFormat, StorageError> {
        self.manager
            .vol_download(pool, volume, dest, format, force, progress)
            .map(|written| written.format)
    }

    fn wipe_volume(
        &self,
        pool: &str,
        volume: &str,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.manager.vol_wipe(pool, volume, progress)
    }

    fn set_volume_format(
        &self,
        pool: &str,
        volume: &str,
        format: ImageFormat,
    ) -> Result<VolumeInfo, StorageError> {
        self.manager.vol_set_format(pool, volume, format)
    }

    fn check_volume(
        &self,
        pool: &str,
        volume: &str,
        repair: bool,
    ) -> Result<CheckReport, StorageError> {
        self.manager.vol_check(pool, volume, repair)
    }

    fn delete_volume(&self, pool: &str, volume: &str) -> Result<(), StorageError> {
        self.manager.vol_delete(pool, volume)
    }

    fn volume_holders(&self, pool: &str, volume: &str) -> Vec<(String, String)> {
        match self.manager.volume_path(pool, volume) {
            Ok(path) => self.vms.running_users(&path),
            Err(_) => Vec::new(),
        }
    }

    fn import_image(
        &self,
        pool: &str,
        volume: &str,
        source: &ImageSource,
        format: Option<ImageFormat>,
        linked: bool,
        progress: &Progress,
    ) -> Result<ImportedVolume, StorageError> {
        match (source, linked) {
            (ImageSource::File(file), true) => self
                .manager
                .vol_import_linked(pool, volume, file, format, progress)
                .map(|made| ImportedVolume {
                    volume: made.overlay,
                    base: Some(made.base),
                    reused_base: made.reused_base,
                }),
            (ImageSource::File(file), false) => self
                .manager
                .vol_import(pool, volume, file, format, progress)
                .map(ImportedVolume::copy),
            (
                ImageSource::Volume {
                    pool: from,
                    volume: base,
                },
                true,
            ) => self
                .manager
                .vol_overlay(pool, volume, from, base)
                .map(ImportedVolume::copy),
            (ImageSource::Volume { .. }, false) => Err(StorageError::Invalid(
                "a pool volume is used as it is or linked; there is nothing to copy".into(),
            )),
        }
    }

    fn boot_plan(&self, disk: &DiskConfig) -> Result<BootPlan, StorageError> {
        let path = self.manager.resolve_disk(disk)?;
        let detect = self.manager.disk_detect(disk)?;
        let trust = self.manager.trust(&disk.allow_backing);
        let image = StorageDisk::open(&path, detect, &trust)?;
        let image: Arc<dyn ReadAt> = Arc::new(image);
        bootimg::inspect(image).map_err(|e| {
            StorageError::Invalid(format!(
                "cannot boot the disk image {}: {}",
                disk.source,
                error_chain(&e)
            ))
        })
    }

    fn disk_path(&self, disk: &DiskConfig) -> Result<PathBuf, StorageError> {
        self.manager.resolve_disk(disk)
    }

    fn image_file_format(&self, file: &Path) -> Result<ImageFormat, StorageError> {
        check_download(file, None).map(|info| info.format)
    }

    fn cloud_init_seed(&self, vm: &str) -> (PathBuf, Option<String>) {
        let path = crate::cloudinit::vm_seed::seed_path(self.manager.paths(), vm);
        let id = crate::cloudinit::vm_seed::recorded_instance_id(&path);
        (path, id)
    }

    fn boot_entry(&self, pool: &str, volume: &str) -> Result<String, String> {
        self.boot_plan(&DiskConfig::volume(pool, volume))
            .map(|plan| plan.describe())
            .map_err(|e| error_chain(&e))
    }

    fn create_snapshot(&self, vm: &str, name: &str) -> Result<SnapshotInfo, StorageError> {
        if crate::storage::usage::vm_is_running(self.manager.paths(), vm) {
            super::local_snapshot::live(&self.snapshots, &self.vms, vm, name)
        } else {
            self.snapshots.create(vm, name)
        }
    }

    fn list_snapshots(&self, vm: &str) -> Result<Vec<SnapshotInfo>, StorageError> {
        self.snapshots.list(vm)
    }

    fn revert_snapshot(&self, vm: &str, name: &str) -> Result<RevertReport, StorageError> {
        self.snapshots.revert(vm, name)
    }

    fn delete_snapshot(
        &self,
        vm: &str,
        name: &str,
        progress: &Progress,
    ) -> Result<(), StorageError> {
        self.snapshots.delete(vm, name, progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_volume_appears_in_the_default_pool() {
        let home = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::new(Paths::under(home.path()));
        let spec = VolumeSpec {
            capacity: 1 << 20,
            format: None,
            preallocate: false,
        };
        storage
            .create_volume("default", "a.qcow2", spec)
            .expect("created");
        let snapshot = storage.snapshot().expect("snapshot");
        let pool = snapshot
            .pools
            .iter()
            .find(|p| p.name() == "default")
            .expect("default pool");
        assert_eq!(pool.volume("a.qcow2").map(|v| v.capacity), Some(1 << 20));
    }
}
