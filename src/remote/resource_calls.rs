//! The storage and network hosts' calls ([`StorageCall`], [`NetworkCall`]): one variant per
//! `client::StorageHost` and `client::NetworkHost` method, with its arguments. Paths name files
//! on the remote host.

use crate::client::ImageSource;
use crate::config::{DiskConfig, MacAddr, NetworkConfig, VmConfig};
use crate::storage::{ImageFormat, VolumeSpec};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A call of `client::StorageHost`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StorageCall {
    /// `snapshot`.
    Snapshot,
    /// `list_pools`.
    ListPools,
    /// `define_pool`.
    DefinePool {
        /// Pool name.
        pool: String,
        /// Its directory.
        target: PathBuf,
        /// Create the directory.
        build: bool,
    },
    /// `pool_info`.
    PoolInfo {
        /// Pool name.
        pool: String,
    },
    /// `start_pool`.
    StartPool {
        /// Pool name.
        pool: String,
    },
    /// `stop_pool`.
    StopPool {
        /// Pool name.
        pool: String,
    },
    /// `set_pool_autostart`.
    SetPoolAutostart {
        /// Pool name.
        pool: String,
        /// On or off.
        enabled: bool,
    },
    /// `undefine_pool`.
    UndefinePool {
        /// Pool name.
        pool: String,
    },
    /// `list_volumes`.
    ListVolumes {
        /// Pool name.
        pool: String,
    },
    /// `volume_info`.
    VolumeInfo {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
    },
    /// `create_volume`.
    CreateVolume {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
        /// Format, size, backing.
        spec: VolumeSpec,
    },
    /// `resize_volume`.
    ResizeVolume {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
        /// New size in bytes.
        capacity: u64,
        /// Shrinking allowed.
        allow_shrink: bool,
    },
    /// `grow_volume_allocated` (long).
    GrowVolumeAllocated {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
        /// New size in bytes.
        capacity: u64,
    },
    /// `clone_volume` (long).
    CloneVolume {
        /// Pool name.
        pool: String,
        /// The volume copied.
        source: String,
        /// The new volume.
        clone: String,
        /// A linked overlay instead of a copy.
        linked: bool,
    },
    /// `convert_volume` (long).
    ConvertVolume {
        /// Pool name.
        pool: String,
        /// The volume read.
        source: String,
        /// The new volume.
        dest: String,
        /// Its format.
        format: Option<ImageFormat>,
    },
    /// `upload_volume` (long; the file is on the remote host).
    UploadVolume {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
        /// The image file.
        source: PathBuf,
        /// Its format.
        format: Option<ImageFormat>,
    },
    /// `download_volume` (long; the file is on the remote host).
    DownloadVolume {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
        /// The file written.
        dest: PathBuf,
        /// Its format.
        format: Option<ImageFormat>,
        /// Overwrite.
        force: bool,
    },
    /// `wipe_volume` (long).
    WipeVolume {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
    },
    /// `set_volume_format`.
    SetVolumeFormat {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
        /// The format recorded.
        format: ImageFormat,
    },
    /// `check_volume`.
    CheckVolume {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
        /// Repair what is found.
        repair: bool,
    },
    /// `delete_volume`.
    DeleteVolume {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
    },
    /// `volume_holders`.
    VolumeHolders {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
    },
    /// `import_image` (long; a file source is on the remote host).
    ImportImage {
        /// Pool name.
        pool: String,
        /// The new volume.
        volume: String,
        /// The image.
        source: ImageSource,
        /// Its format.
        format: Option<ImageFormat>,
        /// An overlay on it instead of a copy.
        linked: bool,
    },
    /// `boot_plan`.
    BootPlan {
        /// The disk.
        disk: DiskConfig,
    },
    /// `disk_path`.
    DiskPath {
        /// The disk.
        disk: DiskConfig,
    },
    /// `image_file_format` (the file is on the remote host).
    ImageFileFormat {
        /// The image file.
        file: PathBuf,
    },
    /// `cloud_init_seed`.
    CloudInitSeed {
        /// VM name.
        vm: String,
    },
    /// `boot_entry`.
    BootEntry {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
    },
    /// `create_snapshot`.
    CreateSnapshot {
        /// VM name.
        vm: String,
        /// Snapshot name.
        name: String,
    },
    /// `list_snapshots`.
    ListSnapshots {
        /// VM name.
        vm: String,
    },
    /// `revert_snapshot`.
    RevertSnapshot {
        /// VM name.
        vm: String,
        /// Snapshot name.
        name: String,
    },
    /// `delete_snapshot` (long).
    DeleteSnapshot {
        /// VM name.
        vm: String,
        /// Snapshot name.
        name: String,
    },
}

/// A call of `client::NetworkHost`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum NetworkCall {
    /// `snapshot`.
    Snapshot,
    /// `require_admin`.
    RequireAdmin,
    /// `reconcile`.
    Reconcile,
    /// `list`.
    List,
    /// `info`.
    Info {
        /// Network name.
        name: String,
    },
    /// `define`.
    Define {
        /// The definition.
        config: NetworkConfig,
    },
    /// `start`.
    Start {
        /// Network name.
        name: String,
    },
    /// `stop`.
    Stop {
        /// Network name.
        name: String,
    },
    /// `undefine`.
    Undefine {
        /// Network name.
        name: String,
    },
    /// `set_autostart`.
    SetAutostart {
        /// Network name.
        name: String,
        /// On or off.
        enabled: bool,
    },
    /// `autostart_all`.
    AutostartAll,
    /// `unused_bridge_name`.
    UnusedBridgeName {
        /// Network name.
        network: String,
    },
    /// `new_nic`.
    NewNic {
        /// The VM being defined.
        vm: Box<VmConfig>,
        /// Network name.
        network: String,
        /// The MAC asked for.
        mac: Option<MacAddr>,
    },
    /// `addresses`.
    Addresses {
        /// VM name.
        vm: String,
    },
}
