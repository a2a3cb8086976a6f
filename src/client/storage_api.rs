//! The storage half of the host API: pools, volumes and disk snapshots ([`StorageHost`]) and
//! the view types its answers travel in. The CLI and the TUI reach storage only through this
//! trait; [`super::LocalStorage`] is the real one, [`super::FakeStorage`] the in-memory one,
//! and a remote host implements it over its connection, so every argument and result here
//! is plain data.
//!
//! Every method blocks (file system, image headers, copies): call them on worker threads in
//! the TUI, never from `update` or `draw`.

use crate::progress::Progress;
use crate::storage::{ImageFormat, PoolInfo, StorageError, VolumeInfo, VolumeSpec};
use std::path::Path;

/// One volume as the storage pane lists it: its name, and what it is or why it cannot be read.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeView {
    /// File name in the pool.
    pub name: String,
    /// Format, sizes, backing file and users; or the error message.
    pub info: Result<VolumeInfo, String>,
}

/// One pool with its figures and, when it is active, its volumes.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolView {
    /// Name, path, state, autostart, file system figures.
    pub info: PoolInfo,
    /// Its volumes, sorted by name (empty when inactive).
    pub volumes: Vec<VolumeView>,
    /// Why the volumes could not be listed.
    pub error: Option<String>,
}

impl PoolView {
    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.info.status.name
    }

    /// Whether volumes can be used and created now.
    pub fn active(&self) -> bool {
        self.info.status.active
    }

    /// The volume named `name`, when it could be read.
    pub fn volume(&self, name: &str) -> Option<&VolumeInfo> {
        self.volumes
            .iter()
            .find(|v| v.name == name)
            .and_then(|v| v.info.as_ref().ok())
    }

    /// Whether a file named `name` exists in the pool (readable or not).
    pub fn has(&self, name: &str) -> bool {
        self.volumes.iter().any(|v| v.name == name)
    }
}

/// Everything the storage pane shows, read in one go.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StorageSnapshot {
    /// Usable pools, sorted by name.
    pub pools: Vec<PoolView>,
    /// Pool definition files that could not be used, as messages.
    pub broken: Vec<String>,
}

/// A disk image a new VM is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A volume of a pool.
    Volume {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
    },
    /// An image file (a downloaded cloud image), by absolute path.
    File(std::path::PathBuf),
}

impl std::fmt::Display for ImageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageSource::Volume { pool, volume } => write!(f, "{pool}/{volume}"),
            ImageSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Pools, volumes and disk snapshots of one host. Blocking; see the module docs.
pub trait StorageHost: Send + Sync {
    /// Every pool with its figures and volumes.
    fn snapshot(&self) -> Result<StorageSnapshot, StorageError>;
    /// Creates a volume (`vol-create-as`).
    fn create_volume(
        &self,
        pool: &str,
        volume: &str,
        spec: VolumeSpec,
    ) -> Result<VolumeInfo, StorageError>;
    /// Changes a volume's size; shrinking needs `allow_shrink` and never cuts data.
    fn resize_volume(
        &self,
        pool: &str,
        volume: &str,
        capacity: u64,
        allow_shrink: bool,
    ) -> Result<VolumeInfo, StorageError>;
    /// Copies a volume within its pool: a full copy, or a linked qcow2 overlay. The long
    /// operations report on `progress` and stop when it is cancelled, as after a failure.
    fn clone_volume(
        &self,
        pool: &str,
        source: &str,
        clone: &str,
        linked: bool,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError>;
    /// Writes a volume into a new volume of another format.
    fn convert_volume(
        &self,
        pool: &str,
        source: &str,
        dest: &str,
        format: Option<ImageFormat>,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError>;
    /// Replaces a volume's content with an image file's.
    fn upload_volume(
        &self,
        pool: &str,
        volume: &str,
        source: &Path,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError>;
    /// Overwrites a volume's data with zeroes.
    fn wipe_volume(
        &self,
        pool: &str,
        volume: &str,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError>;
    /// Deletes a volume (refused while VMs or other images use it).
    fn delete_volume(&self, pool: &str, volume: &str) -> Result<(), StorageError>;
    /// Starts (activates) a pool.
    fn start_pool(&self, pool: &str) -> Result<(), StorageError>;
    /// Stops (deactivates) a pool; nothing is deleted.
    fn stop_pool(&self, pool: &str) -> Result<(), StorageError>;
    /// Sets or clears a pool's autostart flag.
    fn set_pool_autostart(&self, pool: &str, enabled: bool) -> Result<(), StorageError>;
    /// Brings disk image `source` into `pool` as the new volume `volume`: a qcow2 overlay on
    /// it (`linked`; `source` stays unchanged and is shared) or a copy (files only), reporting
    /// the copy on `progress`; a cancel leaves no volume.
    fn import_image(
        &self,
        pool: &str,
        volume: &str,
        source: &ImageSource,
        linked: bool,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError>;
    /// What volume `pool/volume`'s own /boot boots
    /// (`/boot/vmlinuz-6.1.0-28-amd64 (grub entry 'Debian GNU/Linux')`), or why it cannot.
    fn boot_entry(&self, pool: &str, volume: &str) -> Result<String, String>;
}
