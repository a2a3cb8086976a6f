//! What the TUI talks to besides VMs: storage pools and volumes ([`StorageHost`]) and guest
//! networks ([`NetworkHost`]), each a small trait like `client::Host`, so the panes, dialogs
//! and tests can run against an in-memory fake ([`fake`]) while the real implementations
//! ([`local`]) wrap `storage::StorageManager` and `network::NetworkManager`.
//!
//! [`Backends`] bundles the three for the runtime's worker threads. Every method here blocks
//! (file system, image headers, `ip`/`nft`/`dnsmasq`): call them on worker threads only, never
//! from `update` or `draw`.

pub mod fake;
pub mod local;

use crate::client::Host;
use crate::config::{NetworkConfig, NicConfig, VmConfig};
use crate::network::{NetworkError, NetworkInfo};
use crate::progress::Progress;
use crate::storage::{ImageFormat, PoolInfo, StorageError, VolumeInfo, VolumeSpec};
use std::path::Path;
use std::sync::Arc;

/// The host, storage and networks, shared by the runtime's threads.
#[derive(Clone)]
pub struct Backends {
    /// VMs.
    pub host: Arc<dyn Host>,
    /// Pools and volumes.
    pub storage: Arc<dyn StorageHost>,
    /// Guest networks.
    pub networks: Arc<dyn NetworkHost>,
}

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

/// Everything the networks pane shows, read in one go.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkSnapshot {
    /// Usable networks with state, leases and attached VMs, sorted by name.
    pub networks: Vec<NetworkInfo>,
    /// Network definition files that could not be used, as messages.
    pub broken: Vec<String>,
    /// The host's IPv4 routes (a new network's subnet must not overlap them).
    pub routes: Vec<crate::network::host::Route>,
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

/// Pools and volumes, as the TUI uses them. Blocking; see the module docs.
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

/// Guest networks, as the TUI uses them. Blocking; see the module docs.
pub trait NetworkHost: Send + Sync {
    /// Every network with state, leases and attached VMs.
    fn snapshot(&self) -> Result<NetworkSnapshot, NetworkError>;
    /// Saves a new definition.
    fn define(&self, config: &NetworkConfig) -> Result<(), NetworkError>;
    /// Starts a network (bridge, NAT, DHCP); needs CAP_NET_ADMIN.
    fn start(&self, name: &str) -> Result<(), NetworkError>;
    /// Stops a network (refused while running VMs use it); needs CAP_NET_ADMIN.
    fn stop(&self, name: &str) -> Result<(), NetworkError>;
    /// Deletes a stopped network's definition; returns notes about VMs still naming it.
    fn undefine(&self, name: &str) -> Result<Vec<String>, NetworkError>;
    /// Sets or clears a network's autostart flag.
    fn set_autostart(&self, name: &str, enabled: bool) -> Result<(), NetworkError>;
    /// A free bridge name for a new nat/isolated network.
    fn unused_bridge_name(&self, network: &str) -> Result<String, NetworkError>;
    /// A new NIC on `network` for VM definition `vm`, with a MAC unused on this host.
    fn new_nic(&self, vm: &VmConfig, network: &str) -> Result<NicConfig, NetworkError>;
}
