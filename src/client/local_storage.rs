//! The real [`StorageHost`]: a thin wrapper over `storage::StorageManager` for one vmux home
//! (`config::Paths`).

use super::storage_api::{ImageSource, PoolView, StorageHost, StorageSnapshot, VolumeView};
use crate::config::Paths;
use crate::progress::Progress;
use crate::storage::{ImageFormat, PoolInfo, StorageError, StorageManager, VolumeInfo, VolumeSpec};
use crate::tui::error_text::error_chain;
use std::path::Path;

/// Pools and volumes under one vmux home.
pub struct LocalStorage {
    manager: StorageManager,
}

impl LocalStorage {
    /// Storage under `paths` (the default pool is defined on first use, as in the CLI).
    pub fn new(paths: Paths) -> LocalStorage {
        LocalStorage {
            manager: StorageManager::new(paths),
        }
    }
}

impl StorageHost for LocalStorage {
    fn import_image(
        &self,
        pool: &str,
        volume: &str,
        source: &ImageSource,
        linked: bool,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        match (source, linked) {
            (ImageSource::File(file), true) => self
                .manager
                .vol_import_linked(pool, volume, file, None, progress)
                .map(|made| made.overlay),
            (ImageSource::File(file), false) => {
                self.manager.vol_import(pool, volume, file, None, progress)
            }
            (
                ImageSource::Volume {
                    pool: from,
                    volume: base,
                },
                true,
            ) => self.manager.vol_overlay(pool, volume, from, base),
            (ImageSource::Volume { .. }, false) => Err(StorageError::Invalid(
                "a pool volume is used as it is or linked; there is nothing to copy".into(),
            )),
        }
    }

    fn boot_entry(&self, pool: &str, volume: &str) -> Result<String, String> {
        let path = self
            .manager
            .volume_path(pool, volume)
            .map_err(|e| error_chain(&e))?;
        let config = crate::config::DiskConfig::volume(pool, volume);
        let detect = self
            .manager
            .disk_detect(&config)
            .map_err(|e| error_chain(&e))?;
        let disk = crate::bootimg::StorageDisk::open(&path, detect, &self.manager.trust(&[]))
            .map_err(|e| error_chain(&e))?;
        let disk: std::sync::Arc<dyn crate::bootimg::ReadAt> = std::sync::Arc::new(disk);
        crate::bootimg::inspect(disk)
            .map(|plan| plan.describe())
            .map_err(|e| {
                format!(
                    "cannot boot the disk image {pool}/{volume}: {}",
                    error_chain(&e)
                )
            })
    }

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
                match self.manager.vol_list(&status.name) {
                    Ok(entries) => entries
                        .into_iter()
                        .map(|(name, info)| VolumeView {
                            name,
                            info: info.map_err(|e| error_chain(&e)),
                        })
                        .collect(),
                    Err(e) => {
                        error = Some(error_chain(&e));
                        Vec::new()
                    }
                }
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
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.manager
            .vol_upload(pool, volume, source, None, progress)
    }

    fn wipe_volume(
        &self,
        pool: &str,
        volume: &str,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.manager.vol_wipe(pool, volume, progress)
    }

    fn delete_volume(&self, pool: &str, volume: &str) -> Result<(), StorageError> {
        self.manager.vol_delete(pool, volume)
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
