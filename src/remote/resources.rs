//! [`RemoteStorage`] and [`RemoteNetworks`]: a remote host's pools, volumes, disk snapshots
//! and networks, as `client::StorageHost` / `client::NetworkHost` whose every method is a call
//! over a [`Link`]. Long operations report the remote progress on the caller's handle, and a
//! cancel there cancels them on the host. Paths name files on the remote host.

use super::calls::{Call, NetworkCall, StorageCall};
use super::link::{CallError, Link};
use crate::bootimg::BootPlan;
use crate::client::{
    AutostartResult, ImageSource, ImportedVolume, NetworkHost, NetworkList, NetworkSnapshot,
    PoolList, StorageHost, StorageSnapshot, VolumeView,
};
use crate::config::{DiskConfig, MacAddr, NetworkConfig, NicConfig, VmConfig};
use crate::network::{InterfaceAddress, NetworkError, NetworkInfo};
use crate::progress::Progress;
use crate::storage::qcow2_repair::CheckReport;
use crate::storage::snapshot::RevertReport;
use crate::storage::{
    ImageFormat, PoolInfo, PoolStatus, SnapshotInfo, StorageError, VolumeInfo, VolumeSpec,
};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A remote host's storage.
#[derive(Clone)]
pub struct RemoteStorage {
    link: Link,
    backing: Vec<PathBuf>,
}

impl RemoteStorage {
    /// The storage behind `link`.
    pub fn new(link: Link) -> RemoteStorage {
        RemoteStorage {
            link,
            backing: Vec::new(),
        }
    }

    fn wrap(&self, call: StorageCall) -> Call {
        Call::Storage {
            backing: self.backing.clone(),
            call,
        }
    }

    fn call<T: DeserializeOwned>(&self, call: StorageCall) -> Result<T, StorageError> {
        self.link.call(self.wrap(call)).map_err(storage_error)
    }

    fn long<T: DeserializeOwned>(
        &self,
        call: StorageCall,
        progress: &Progress,
    ) -> Result<T, StorageError> {
        self.link
            .call_with_progress(self.wrap(call), progress)
            .map_err(storage_error)
    }
}

fn storage_error(error: CallError) -> StorageError {
    match error {
        CallError::Remote(wire) => wire.into_storage(),
        CallError::Link(link) => StorageError::Link(link),
    }
}

fn network_error(error: CallError) -> NetworkError {
    match error {
        CallError::Remote(wire) => wire.into_network(),
        CallError::Link(link) => NetworkError::Link(link),
    }
}

impl StorageHost for RemoteStorage {
    fn snapshot(&self) -> Result<StorageSnapshot, StorageError> {
        self.call(StorageCall::Snapshot)
    }

    fn allowing_backing(&self, files: &[PathBuf]) -> Arc<dyn StorageHost> {
        Arc::new(RemoteStorage {
            link: self.link.clone(),
            backing: files.to_vec(),
        })
    }

    fn list_pools(&self) -> Result<PoolList, StorageError> {
        self.call(StorageCall::ListPools)
    }

    fn define_pool(
        &self,
        pool: &str,
        target: &Path,
        build: bool,
    ) -> Result<PoolStatus, StorageError> {
        self.call(StorageCall::DefinePool {
            pool: pool.into(),
            target: target.to_path_buf(),
            build,
        })
    }

    fn pool_info(&self, pool: &str) -> Result<PoolInfo, StorageError> {
        self.call(StorageCall::PoolInfo { pool: pool.into() })
    }

    fn start_pool(&self, pool: &str) -> Result<(), StorageError> {
        self.call(StorageCall::StartPool { pool: pool.into() })
    }

    fn stop_pool(&self, pool: &str) -> Result<(), StorageError> {
        self.call(StorageCall::StopPool { pool: pool.into() })
    }

    fn set_pool_autostart(&self, pool: &str, enabled: bool) -> Result<(), StorageError> {
        self.call(StorageCall::SetPoolAutostart {
            pool: pool.into(),
            enabled,
        })
    }

    fn undefine_pool(&self, pool: &str) -> Result<(), StorageError> {
        self.call(StorageCall::UndefinePool { pool: pool.into() })
    }

    fn list_volumes(&self, pool: &str) -> Result<Vec<VolumeView>, StorageError> {
        self.call(StorageCall::ListVolumes { pool: pool.into() })
    }

    fn volume_info(&self, pool: &str, volume: &str) -> Result<VolumeInfo, StorageError> {
        self.call(StorageCall::VolumeInfo {
            pool: pool.into(),
            volume: volume.into(),
        })
    }

    fn create_volume(
        &self,
        pool: &str,
        volume: &str,
        spec: VolumeSpec,
    ) -> Result<VolumeInfo, StorageError> {
        self.call(StorageCall::CreateVolume {
            pool: pool.into(),
            volume: volume.into(),
            spec,
        })
    }

    fn resize_volume(
        &self,
        pool: &str,
        volume: &str,
        capacity: u64,
        allow_shrink: bool,
    ) -> Result<VolumeInfo, StorageError> {
        self.call(StorageCall::ResizeVolume {
            pool: pool.into(),
            volume: volume.into(),
            capacity,
            allow_shrink,
        })
    }

    fn grow_volume_allocated(
        &self,
        pool: &str,
        volume: &str,
        capacity: u64,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.long(
            StorageCall::GrowVolumeAllocated {
                pool: pool.into(),
                volume: volume.into(),
                capacity,
            },
            progress,
        )
    }

    fn clone_volume(
        &self,
        pool: &str,
        source: &str,
        clone: &str,
        linked: bool,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.long(
            StorageCall::CloneVolume {
                pool: pool.into(),
                source: source.into(),
                clone: clone.into(),
                linked,
            },
            progress,
        )
    }

    fn convert_volume(
        &self,
        pool: &str,
        source: &str,
        dest: &str,
        format: Option<ImageFormat>,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.long(
            StorageCall::ConvertVolume {
                pool: pool.into(),
                source: source.into(),
                dest: dest.into(),
                format,
            },
            progress,
        )
    }

    fn upload_volume(
        &self,
        pool: &str,
        volume: &str,
        source: &Path,
        format: Option<ImageFormat>,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.long(
            StorageCall::UploadVolume {
                pool: pool.into(),
                volume: volume.into(),
                source: source.to_path_buf(),
                format,
            },
            progress,
        )
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
        self.long(
            StorageCall::DownloadVolume {
                pool: pool.into(),
                volume: volume.into(),
                dest: dest.to_path_buf(),
                format,
                force,
            },
            progress,
        )
    }

    fn wipe_volume(
        &self,
        pool: &str,
        volume: &str,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.long(
            StorageCall::WipeVolume {
                pool: pool.into(),
                volume: volume.into(),
            },
            progress,
        )
    }

    fn set_volume_format(
        &self,
        pool: &str,
        volume: &str,
        format: ImageFormat,
    ) -> Result<VolumeInfo, StorageError> {
        self.call(StorageCall::SetVolumeFormat {
            pool: pool.into(),
            volume: volume.into(),
            format,
        })
    }

    fn check_volume(
        &self,
        pool: &str,
        volume: &str,
        repair: bool,
    ) -> Result<CheckReport, StorageError> {
        self.call(StorageCall::CheckVolume {
            pool: pool.into(),
            volume: volume.into(),
            repair,
        })
    }

    fn delete_volume(&self, pool: &str, volume: &str) -> Result<(), StorageError> {
        self.call(StorageCall::DeleteVolume {
            pool: pool.into(),
            volume: volume.into(),
        })
    }

    fn volume_holders(&self, pool: &str, volume: &str) -> Vec<(String, String)> {
        // Like the local one, this cannot fail: a host that cannot be asked names no holders
        // (the operation that asked fails on its own call).
        self.call(StorageCall::VolumeHolders {
            pool: pool.into(),
            volume: volume.into(),
        })
        .unwrap_or_else(|e| {
            log::warn!(
                "{}: cannot ask who uses {pool}/{volume}: {e}",
                self.link.label()
            );
            Vec::new()
        })
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
        self.long(
            StorageCall::ImportImage {
                pool: pool.into(),
                volume: volume.into(),
                source: source.clone(),
                format,
                linked,
            },
            progress,
        )
    }

    fn boot_plan(&self, disk: &DiskConfig) -> Result<BootPlan, StorageError> {
        self.call(StorageCall::BootPlan { disk: disk.clone() })
    }

    fn disk_path(&self, disk: &DiskConfig) -> Result<PathBuf, StorageError> {
        self.call(StorageCall::DiskPath { disk: disk.clone() })
    }

    fn image_file_format(&self, file: &Path) -> Result<ImageFormat, StorageError> {
        self.call(StorageCall::ImageFileFormat {
            file: file.to_path_buf(),
        })
    }

    fn cloud_init_seed(&self, vm: &str) -> (PathBuf, Option<String>) {
        // Like the local one, this cannot fail: a host that cannot be asked shows no seed
        // path (`info` shows an empty one) and no instance-id.
        self.call(StorageCall::CloudInitSeed { vm: vm.into() })
            .unwrap_or_else(|e| {
                log::warn!(
                    "{}: cannot ask for the cloud-init seed of {vm}: {e}",
                    self.link.label()
                );
                (PathBuf::new(), None)
            })
    }

    fn boot_entry(&self, pool: &str, volume: &str) -> Result<String, String> {
        self.link
            .call::<Result<String, String>>(self.wrap(StorageCall::BootEntry {
                pool: pool.into(),
                volume: volume.into(),
            }))
            .map_err(|e| e.to_string())?
    }

    fn create_snapshot(&self, vm: &str, name: &str) -> Result<SnapshotInfo, StorageError> {
        self.call(StorageCall::CreateSnapshot {
            vm: vm.into(),
            name: name.into(),
        })
    }

    fn list_snapshots(&self, vm: &str) -> Result<Vec<SnapshotInfo>, StorageError> {
        self.call(StorageCall::ListSnapshots { vm: vm.into() })
    }

    fn revert_snapshot(&self, vm: &str, name: &str) -> Result<RevertReport, StorageError> {
        self.call(StorageCall::RevertSnapshot {
            vm: vm.into(),
            name: name.into(),
        })
    }

    fn delete_snapshot(
        &self,
        vm: &str,
        name: &str,
        progress: &Progress,
    ) -> Result<(), StorageError> {
        self.long(
            StorageCall::DeleteSnapshot {
                vm: vm.into(),
                name: name.into(),
            },
            progress,
        )
    }
}

/// A remote host's guest networks.
#[derive(Clone)]
pub struct RemoteNetworks {
    link: Link,
}

impl RemoteNetworks {
    /// The networks behind `link`.
    pub fn new(link: Link) -> RemoteNetworks {
        RemoteNetworks { link }
    }

    fn call<T: DeserializeOwned>(&self, call: NetworkCall) -> Result<T, NetworkError> {
        self.link
            .call(Call::Network { call })
            .map_err(network_error)
    }
}

impl NetworkHost for RemoteNetworks {
    fn snapshot(&self) -> Result<NetworkSnapshot, NetworkError> {
        self.call(NetworkCall::Snapshot)
    }

    fn require_admin(&self) -> Result<(), NetworkError> {
        self.call(NetworkCall::RequireAdmin)
    }

    fn reconcile(&self) -> Result<Vec<String>, NetworkError> {
        self.call(NetworkCall::Reconcile)
    }

    fn list(&self) -> Result<NetworkList, NetworkError> {
        self.call(NetworkCall::List)
    }

    fn info(&self, name: &str) -> Result<NetworkInfo, NetworkError> {
        self.call(NetworkCall::Info { name: name.into() })
    }

    fn define(&self, config: &NetworkConfig) -> Result<(), NetworkError> {
        self.call(NetworkCall::Define {
            config: config.clone(),
        })
    }

    fn start(&self, name: &str) -> Result<(), NetworkError> {
        self.call(NetworkCall::Start { name: name.into() })
    }

    fn stop(&self, name: &str) -> Result<(), NetworkError> {
        self.call(NetworkCall::Stop { name: name.into() })
    }

    fn undefine(&self, name: &str) -> Result<Vec<String>, NetworkError> {
        self.call(NetworkCall::Undefine { name: name.into() })
    }

    fn set_autostart(&self, name: &str, enabled: bool) -> Result<(), NetworkError> {
        self.call(NetworkCall::SetAutostart {
            name: name.into(),
            enabled,
        })
    }

    fn autostart_all(&self) -> Vec<AutostartResult> {
        self.link
            .call::<Result<Vec<AutostartResult>, String>>(Call::Network {
                call: NetworkCall::AutostartAll,
            })
            .map_err(|e| e.to_string())
            .and_then(|result| result)
            .unwrap_or_else(|e| vec![(format!("the networks of {}", self.link.label()), Err(e))])
    }

    fn unused_bridge_name(&self, network: &str) -> Result<String, NetworkError> {
        self.call(NetworkCall::UnusedBridgeName {
            network: network.into(),
        })
    }

    fn new_nic(
        &self,
        vm: &VmConfig,
        network: &str,
        mac: Option<MacAddr>,
    ) -> Result<NicConfig, NetworkError> {
        self.call(NetworkCall::NewNic {
            vm: Box::new(vm.clone()),
            network: network.into(),
            mac,
        })
    }

    fn addresses(&self, vm: &str) -> Result<Vec<InterfaceAddress>, NetworkError> {
        self.call(NetworkCall::Addresses { vm: vm.into() })
    }
}
