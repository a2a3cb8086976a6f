//! The real [`StorageHost`] and [`NetworkHost`]: thin wrappers over `storage::StorageManager`
//! and `network::NetworkManager` for one vmux home (`config::Paths`), plus the file-size
//! probes behind the progress bars of long volume copies.

use super::{
    ImageSource, NetworkHost, NetworkSnapshot, PoolView, StorageHost, StorageSnapshot, VolumeView,
};
use crate::config::{NetworkConfig, NicConfig, Paths, VmConfig};
use crate::network::{NetworkError, NetworkManager};
use crate::storage::{ImageFormat, PoolInfo, StorageError, StorageManager, VolumeInfo, VolumeSpec};
use crate::tui::action::error_chain;
use std::os::unix::fs::MetadataExt;
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

/// Bytes `path` occupies on its file system (allocated blocks, not the apparent length, so a
/// sparse file counts only what it holds).
fn allocated(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.blocks() * 512)
}

impl StorageHost for LocalStorage {
    fn import_image(
        &self,
        pool: &str,
        volume: &str,
        source: &ImageSource,
        linked: bool,
    ) -> Result<VolumeInfo, StorageError> {
        match (source, linked) {
            (ImageSource::File(file), true) => self
                .manager
                .vol_import_linked(pool, volume, file, None)
                .map(|made| made.overlay),
            (ImageSource::File(file), false) => self.manager.vol_import(pool, volume, file, None),
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
    ) -> Result<VolumeInfo, StorageError> {
        self.manager.vol_clone(pool, source, clone, linked)
    }

    fn convert_volume(
        &self,
        pool: &str,
        source: &str,
        dest: &str,
        format: Option<ImageFormat>,
    ) -> Result<VolumeInfo, StorageError> {
        self.manager.vol_convert(pool, source, dest, format)
    }

    fn upload_volume(
        &self,
        pool: &str,
        volume: &str,
        source: &Path,
    ) -> Result<VolumeInfo, StorageError> {
        self.manager.vol_upload(pool, volume, source, None)
    }

    fn wipe_volume(&self, pool: &str, volume: &str) -> Result<VolumeInfo, StorageError> {
        self.manager.vol_wipe(pool, volume)
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

    fn data_bytes(&self, pool: &str, volume: &str) -> Option<u64> {
        let disk = crate::config::DiskConfig::volume(pool, volume);
        let layers = self.manager.disk_chain(&disk).ok()?;
        Some(layers.iter().map(|layer| layer.allocation).sum())
    }

    fn file_bytes(&self, path: &Path) -> Option<u64> {
        allocated(path)
    }

    fn written_bytes(&self, pool: &str, volume: &str) -> Option<u64> {
        // storage::staging writes every new image as `.<final name>.vmux-tmp.<pid>` beside
        // its final name (see its module docs); the copy runs in this process.
        let dir = self.manager.pool(pool).ok()?.path;
        let temporary = dir.join(format!(".{volume}.vmux-tmp.{}", std::process::id()));
        allocated(&temporary)
    }
}

/// Guest networks under one vmux home.
pub struct LocalNetworks {
    paths: Paths,
}

impl LocalNetworks {
    /// Networks under `paths`.
    pub fn new(paths: Paths) -> LocalNetworks {
        LocalNetworks { paths }
    }

    /// The manager; opening it defines the `default` network on first use, as the CLI does.
    fn manager(&self) -> Result<NetworkManager, NetworkError> {
        NetworkManager::open(&self.paths)
    }
}

impl NetworkHost for LocalNetworks {
    fn snapshot(&self) -> Result<NetworkSnapshot, NetworkError> {
        let manager = self.manager()?;
        let mut snapshot = NetworkSnapshot::default();
        for entry in manager.list() {
            match entry.map_err(NetworkError::from).and_then(|status| {
                let name = status.config.name;
                manager
                    .info(&name)
                    .map_err(|e| NetworkError::Invalid(format!("{name}: {}", error_chain(&e))))
            }) {
                Ok(info) => snapshot.networks.push(info),
                Err(e) => snapshot.broken.push(error_chain(&e)),
            }
        }
        // Without the routes the form checks what it can; `define` checks them again.
        snapshot.routes = crate::network::host::routes().unwrap_or_default();
        Ok(snapshot)
    }

    fn define(&self, config: &NetworkConfig) -> Result<(), NetworkError> {
        self.manager()?.define(config)
    }

    fn start(&self, name: &str) -> Result<(), NetworkError> {
        self.manager()?.start(name)
    }

    fn stop(&self, name: &str) -> Result<(), NetworkError> {
        self.manager()?.destroy(name)
    }

    fn undefine(&self, name: &str) -> Result<Vec<String>, NetworkError> {
        self.manager()?.undefine(name)
    }

    fn set_autostart(&self, name: &str, enabled: bool) -> Result<(), NetworkError> {
        self.manager()?.set_autostart(name, enabled)
    }

    fn unused_bridge_name(&self, network: &str) -> Result<String, NetworkError> {
        self.manager()?.unused_bridge_name(network)
    }

    fn new_nic(&self, vm: &VmConfig, network: &str) -> Result<NicConfig, NetworkError> {
        self.manager()?.new_nic(vm, network, None)
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

    #[test]
    fn written_bytes_reads_this_processes_temporary_file() {
        let home = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::new(Paths::under(home.path()));
        storage.snapshot().expect("defines the default pool");
        assert_eq!(storage.written_bytes("default", "b.raw"), None);
        let dir = crate::config::default_pool_path(&Paths::under(home.path()));
        let temporary = dir.join(format!(".b.raw.vmux-tmp.{}", std::process::id()));
        std::fs::write(&temporary, vec![1u8; 64 << 10]).expect("write");
        let written = storage.written_bytes("default", "b.raw").expect("found");
        assert!(written >= 64 << 10, "{written}");
    }

    #[test]
    fn the_default_network_is_listed_inactive() {
        let home = tempfile::tempdir().expect("tempdir");
        let networks = LocalNetworks::new(Paths::under(home.path()));
        let snapshot = networks.snapshot().expect("snapshot");
        let default = snapshot
            .networks
            .iter()
            .find(|n| n.config.name == "default")
            .expect("default network");
        assert!(default.active.is_none());
    }
}
