//! How the CLI and the TUI reach a host: [`HostApi`] bundles the [`Host`] trait (VMs: list,
//! lifecycle, console), [`StorageHost`] (pools, volumes, disk snapshots) and [`NetworkHost`]
//! (guest networks), with their real implementations over the definition store, the storage
//! and network managers and each VM's vmd control socket, and in-memory fakes of each.
//!
//! The TUI and CLI only ever see this trait, so tests and benchmarks can drive them with a
//! fake host; nothing here touches engine internals (only the wire types in
//! `protocol`).

mod api;
mod classify;
mod conn;
pub mod console_input;
mod crash_repair;
mod define_check;
mod fake_networks;
mod fake_snapshots;
mod fake_storage;
mod host_check;
pub mod host_facts;
pub mod hotplug;
mod local;
mod local_networks;
mod local_snapshot;
mod local_storage;
mod network_api;
mod spawn;
mod state;
mod storage_api;
mod storage_views;

pub use api::HostApi;
pub use classify::VmState;
pub use fake_networks::FakeNetworks;
pub use fake_storage::FakeStorage;
pub use local::{DEFAULT_REQUEST_TIMEOUT, DEFAULT_START_TIMEOUT, LocalHost, VMD_EXE_ENV};
pub use local_networks::LocalNetworks;
pub use local_storage::LocalStorage;
pub use network_api::{AutostartResult, NetworkHost, NetworkList, NetworkSnapshot};
pub use storage_api::StorageHost;
pub use storage_views::{
    ImageSource, ImportedVolume, PoolList, PoolView, StorageSnapshot, VolumeProblem, VolumeView,
};

use crate::config::{DefinitionError, DiskConfig, VmConfig};
use crate::protocol::{MemoryStats, RunState, SaveInfo, VmInfo, VmStats};
use std::io::{Read, Write};
use std::path::Path;

pub mod fake;

/// What `vmux list` shows about one defined VM.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VmStatus {
    /// The definition.
    pub config: VmConfig,
    /// Live state (`shut off` when no vmd runs).
    pub state: RunState,
    /// For `crashed`: why (guest fault with RIP, or "vmd exited unexpectedly").
    pub reason: Option<String>,
    /// vmd's pid while running or paused.
    pub pid: Option<u32>,
    /// vCPUs present now (running VMs; hot-add changes it).
    pub vcpus: Option<u32>,
}

impl VmStatus {
    /// The live side of the status (what [`Host::state`] reports).
    pub fn live(&self) -> VmState {
        VmState {
            state: self.state,
            reason: self.reason.clone(),
            pid: self.pid,
            vcpus: self.vcpus,
        }
    }
}

/// A definition file that does not parse or validate, with the live state of the VM it names:
/// a VM whose definition was broken by hand while it runs is still listed, and can still be
/// stopped or attached to through its vmd (which needs only the name).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BrokenVm {
    /// The VM's name: the file's stem.
    pub name: String,
    /// Where and why the definition is unusable (boxed: listings carry many of these).
    pub error: Box<DefinitionError>,
    /// Its live state (`shut off` when no vmd runs for it).
    pub live: VmState,
}

impl BrokenVm {
    /// What to run to repair the definition.
    pub fn fix(&self) -> String {
        format!("vmux edit {}", self.name)
    }
}

/// Errors from [`Host`] operations. Messages name the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Definition store problems (unknown VM, invalid definition, I/O).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The operation needs a running VM.
    #[error("VM '{0}' is not running; start it with `vmux start {0}`")]
    NotRunning(String),
    /// A `--live` change of a VM that is not running.
    #[error(
        "VM '{0}' is not running, so there is nothing to change live; use --config to change \
         the definition for its next start, or `vmux start {0}` first"
    )]
    LiveNeedsRunning(String),
    /// A change that cannot be applied (out of range, duplicate, in use); the message names
    /// the limit and the fix.
    #[error("{0}")]
    Invalid(String),
    /// The operation needs a stopped VM.
    #[error(
        "VM '{0}' is already running; stop it first with `vmux shutdown {0}` or `vmux destroy {0}`"
    )]
    AlreadyRunning(String),
    /// vmd refused or failed the command.
    #[error("VM '{name}': {message}")]
    Refused {
        /// VM name.
        name: String,
        /// vmd's explanation.
        message: String,
    },
    /// The VM could not be started; `message` carries vmd's own error.
    #[error("cannot start VM '{name}': {message}")]
    StartFailed {
        /// VM name.
        name: String,
        /// Why.
        message: String,
    },
    /// `undefine` of a VM that has snapshots (virsh refuses it the same way).
    #[error(
        "VM '{name}' has {} ({}); delete them first with `vmux snapshot-delete {name} SNAPSHOT` (each merges into the disks), or run `vmux undefine {name} --snapshots-metadata` to drop their metadata and keep every image",
        if snapshots.len() == 1 { "a snapshot".to_string() } else { format!("{} snapshots", snapshots.len()) },
        snapshots.join(", ")
    )]
    HasSnapshots {
        /// VM name.
        name: String,
        /// Its snapshots.
        snapshots: Vec<String>,
    },
    /// The VM's snapshot metadata could not be read or removed.
    #[error("cannot {op} the snapshot metadata of VM '{name}'")]
    SnapshotMetadata {
        /// VM name.
        name: String,
        /// "read" or "remove".
        op: &'static str,
        /// Cause.
        #[source]
        source: Box<crate::storage::StorageError>,
    },
    /// Talking to vmd failed.
    #[error("lost contact with VM '{name}' (socket {socket})")]
    Io {
        /// VM name.
        name: String,
        /// The control socket path.
        socket: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// An error raised on a remote host (its words and causes, as they read there).
    #[error(transparent)]
    Remote(Box<crate::remote::WireError>),
    /// The connection to a remote host failed or dropped (the message names the host and what
    /// to do).
    #[error(transparent)]
    Link(#[from] crate::remote::LinkError),
    /// vmd sent something that is not the protocol.
    #[error("VM '{name}' answered with an invalid message: {detail}")]
    Protocol {
        /// VM name.
        name: String,
        /// What was wrong.
        detail: String,
    },
}

/// Where a hotplug change applies, like virsh's `--live` and `--config`: the running VM, the
/// definition used at the next start, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangeScope {
    /// Change the running VM now.
    pub live: bool,
    /// Change the definition (next start).
    pub config: bool,
}

impl ChangeScope {
    /// The running VM only.
    pub const LIVE: ChangeScope = ChangeScope {
        live: true,
        config: false,
    };
    /// The definition only.
    pub const CONFIG: ChangeScope = ChangeScope {
        live: false,
        config: true,
    };
    /// Both.
    pub const BOTH: ChangeScope = ChangeScope {
        live: true,
        config: true,
    };
}

/// What `undefine` removes beyond the definition (its state and logs always go with it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UndefineOptions {
    /// Also delete the VM's snapshot metadata (virsh `--snapshots-metadata`); the images,
    /// frozen and overlays alike, stay in their pools. Without it a VM that has snapshots is
    /// refused with [`ClientError::HasSnapshots`].
    pub snapshots_metadata: bool,
}

/// How `restore` starts a saved VM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestoreOptions {
    /// State after the restore: `Some(true)` paused, `Some(false)` running, `None` as saved.
    pub paused: Option<bool>,
    /// Restore even though a disk image changed since the save (the guest's file systems may
    /// not survive it).
    pub force: bool,
}

/// A raw console connection: bytes read are guest serial output, bytes written are input.
pub struct Console {
    /// Guest output (ring-buffer history first when asked for).
    pub output: Box<dyn Read + Send>,
    /// Guest input.
    pub input: Box<dyn Write + Send>,
}

/// Everything the CLI and TUI can do with VMs on this host.
pub trait Host: Send + Sync {
    /// Every definition with its live state; unusable definition files appear as errors,
    /// with the live state of the VM they name.
    fn list(&self) -> Vec<Result<VmStatus, BrokenVm>>;
    /// One VM's definition and live state.
    fn status(&self, name: &str) -> Result<VmStatus, ClientError>;
    /// One VM's live state, without reading its definition (which may be broken): only the
    /// name must be defined. Lifecycle commands on a running VM go through this, so a
    /// definition edited into nonsense never makes a running VM uncontrollable.
    fn state(&self, name: &str) -> Result<VmState, ClientError>;
    /// The definition file's text as it is on disk, valid or not (for `vmux edit`).
    fn definition_text(&self, name: &str) -> Result<String, ClientError>;
    /// Live facts from vmd (running VMs).
    fn info(&self, name: &str) -> Result<VmInfo, ClientError>;
    /// Latest stats sample from vmd (running VMs).
    fn stats(&self, name: &str) -> Result<VmStats, ClientError>;
    /// Saves a new definition (refuses an existing name, and a definition that could never
    /// start here: a kernel the engine cannot load, a disk that does not exist).
    fn define(&self, config: &VmConfig) -> Result<(), ClientError>;
    /// Replaces an existing definition (takes effect at next start); what changed is checked
    /// as [`Host::define`] checks it.
    fn update(&self, config: &VmConfig) -> Result<(), ClientError>;
    /// Replaces an existing definition only if it is still `original` (what an editor started
    /// from); a definition changed meanwhile is refused and nothing is saved, so no concurrent
    /// change is lost.
    fn update_from(&self, original: &VmConfig, config: &VmConfig) -> Result<(), ClientError>;
    /// Deletes a definition with its state and logs; refused while the VM runs and while it
    /// has snapshots ([`Host::undefine_with`] with the default options).
    fn undefine(&self, name: &str) -> Result<(), ClientError> {
        self.undefine_with(name, UndefineOptions::default())
    }
    /// Deletes a definition with its state and logs, and what `options` adds; refused while the
    /// VM runs, and while it has snapshots unless `options.snapshots_metadata`.
    fn undefine_with(&self, name: &str, options: UndefineOptions) -> Result<(), ClientError>;
    /// Sets or clears the autostart flag.
    fn set_autostart(&self, name: &str, enabled: bool) -> Result<(), ClientError>;
    /// Spawns vmd for `name` and returns once the guest runs (or with vmd's error).
    fn start(&self, name: &str) -> Result<(), ClientError>;
    /// Presses the ACPI power button; returns without waiting for the guest.
    fn shutdown(&self, name: &str) -> Result<(), ClientError>;
    /// Stops the VM at once.
    fn destroy(&self, name: &str) -> Result<(), ClientError>;
    /// Graceful reboot (power button, then boot again).
    fn reboot(&self, name: &str) -> Result<(), ClientError>;
    /// Hard reset.
    fn reset(&self, name: &str) -> Result<(), ClientError>;
    /// Pauses all vCPUs.
    fn suspend(&self, name: &str) -> Result<(), ClientError>;
    /// Resumes after `suspend`.
    fn resume(&self, name: &str) -> Result<(), ClientError>;
    /// Opens a raw console stream; with `history`, earlier output (≤ 1 MiB) comes first.
    fn console(&self, name: &str, history: bool) -> Result<Console, ClientError>;
    /// Sets the VM's vCPU count (`1..=max_vcpus`): live (hot-add/remove; the guest onlines or
    /// ejects them), in the definition, or both. Everything is checked before anything
    /// changes; the definition is written (atomically) only after a live change succeeded.
    fn set_vcpus(&self, name: &str, count: u32, scope: ChangeScope) -> Result<(), ClientError>;
    /// Attaches `disk` (a pool volume or an image path): live (hot-added; the guest is
    /// notified and drives it), in the definition, or both. Refuses images another VM uses,
    /// images this VM already has, taken targets, and writable disks from read-only pools or
    /// files. Returns the disk's target.
    fn attach_disk(
        &self,
        name: &str,
        disk: &DiskConfig,
        scope: ChangeScope,
    ) -> Result<String, ClientError>;
    /// Detaches disk `target`: live (the guest is asked to eject it; the image is closed once
    /// it has), from the definition, or both.
    fn detach_disk(&self, name: &str, target: &str, scope: ChangeScope) -> Result<(), ClientError>;
    /// Saves the running (or paused) VM's memory and device state to `path` and shuts it off,
    /// as `virsh save` does (disks are not copied); `paused` is the state after a restore
    /// (`None`: the state now). Returns once the file is complete and the VM is off.
    fn save(&self, name: &str, path: &Path, paused: Option<bool>) -> Result<SaveInfo, ClientError>;
    /// Starts the VM saved in `path` where it was (defining it from the save when no VM of
    /// that name is defined); returns its name. Refused when the VM runs, when its definition
    /// changed in ways the saved guest would notice, and when a disk changed (unless forced).
    fn restore(&self, path: &Path, options: RestoreOptions) -> Result<String, ClientError>;
    /// Saves the VM to its managed save and shuts it off; the next `start` resumes it.
    fn managed_save(&self, name: &str, paused: Option<bool>) -> Result<SaveInfo, ClientError>;
    /// Discards the VM's managed save (its next start boots afresh).
    fn managed_save_remove(&self, name: &str) -> Result<(), ClientError>;
    /// Sets the memory the guest keeps (`1..=memory`): live through the balloon (the guest
    /// gives the rest back when its driver can), as the definition's `current_memory` for the
    /// next start, or both.
    fn set_memory(&self, name: &str, bytes: u64, scope: ChangeScope) -> Result<(), ClientError>;
    /// The balloon and the guest's memory statistics (running VMs).
    fn memory_stats(&self, name: &str) -> Result<MemoryStats, ClientError>;
    /// Takes disk `target` away from the running VM at once, without asking the guest (as
    /// virsh does when a guest ignores the request): the guest loses the device as if it were
    /// pulled out, and what it had not written is lost. For a guest that does not answer an
    /// eject request (or has no hot-plug support); the definition is not changed.
    fn force_detach_disk(&self, name: &str, target: &str) -> Result<(), ClientError>;
}
