//! Every call a client can make of a host: one [`Call`] variant per method of the host API
//! (`client::Host`, and the storage and network hosts), with the method's arguments. The
//! agent answers with the method's result as JSON ([`super::wire::Down::Reply`]); the client
//! side (`remote::host`) decodes it into the method's own result type.

pub use super::resource_calls::{NetworkCall, StorageCall};
use crate::client::{ChangeScope, RestoreOptions, UndefineOptions};
use crate::config::{DiskConfig, VmConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A call of the host API, with its arguments. Paths name files on the remote host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Call {
    /// `Host::list`.
    List,
    /// `Host::status`.
    Status {
        /// VM name.
        name: String,
    },
    /// `Host::state`.
    State {
        /// VM name.
        name: String,
    },
    /// `Host::definition_text`.
    DefinitionText {
        /// VM name.
        name: String,
    },
    /// `Host::info`.
    Info {
        /// VM name.
        name: String,
    },
    /// `Host::stats`.
    Stats {
        /// VM name.
        name: String,
    },
    /// `Host::define`.
    Define {
        /// The new definition.
        config: Box<VmConfig>,
    },
    /// `Host::update`.
    Update {
        /// The replacement.
        config: Box<VmConfig>,
    },
    /// `Host::update_from`.
    UpdateFrom {
        /// What the editor started from.
        original: Box<VmConfig>,
        /// The replacement.
        config: Box<VmConfig>,
    },
    /// `Host::undefine_with`.
    Undefine {
        /// VM name.
        name: String,
        /// What else goes.
        options: UndefineOptions,
    },
    /// `Host::set_autostart`.
    SetAutostart {
        /// VM name.
        name: String,
        /// On or off.
        enabled: bool,
    },
    /// A lifecycle verb on a VM.
    Lifecycle {
        /// VM name.
        name: String,
        /// Which.
        verb: Lifecycle,
    },
    /// `Host::console`: output comes on `stream`.
    Console {
        /// VM name.
        name: String,
        /// Earlier output first.
        history: bool,
        /// The stream id the client chose.
        stream: u64,
    },
    /// `Host::set_vcpus`.
    SetVcpus {
        /// VM name.
        name: String,
        /// vCPUs wanted.
        count: u32,
        /// Where.
        scope: ChangeScope,
    },
    /// `Host::attach_disk`.
    AttachDisk {
        /// VM name.
        name: String,
        /// The disk.
        disk: DiskConfig,
        /// Where.
        scope: ChangeScope,
    },
    /// `Host::detach_disk`.
    DetachDisk {
        /// VM name.
        name: String,
        /// The disk's target.
        target: String,
        /// Where.
        scope: ChangeScope,
    },
    /// `Host::force_detach_disk`.
    ForceDetachDisk {
        /// VM name.
        name: String,
        /// The disk's target.
        target: String,
    },
    /// `Host::save` (the file is on the remote host).
    Save {
        /// VM name.
        name: String,
        /// The save file.
        path: PathBuf,
        /// State after a restore.
        paused: Option<bool>,
    },
    /// `Host::restore` (the file is on the remote host).
    Restore {
        /// The save file.
        path: PathBuf,
        /// How.
        options: RestoreOptions,
    },
    /// `Host::managed_save`.
    ManagedSave {
        /// VM name.
        name: String,
        /// State after a restore.
        paused: Option<bool>,
    },
    /// `Host::managed_save_remove`.
    ManagedSaveRemove {
        /// VM name.
        name: String,
    },
    /// `Host::set_memory`.
    SetMemory {
        /// VM name.
        name: String,
        /// Bytes the guest keeps.
        bytes: u64,
        /// Where.
        scope: ChangeScope,
    },
    /// `Host::memory_stats`.
    MemoryStats {
        /// VM name.
        name: String,
    },
    /// A storage host call.
    Storage {
        /// Backing files outside the pools that this call may use (`allowing_backing`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        backing: Vec<PathBuf>,
        /// The call.
        call: StorageCall,
    },
    /// A network host call.
    Network {
        /// The call.
        call: NetworkCall,
    },
}

/// The lifecycle verbs, which all take only a VM name and answer nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// `Host::start`.
    Start,
    /// `Host::shutdown`.
    Shutdown,
    /// `Host::destroy`.
    Destroy,
    /// `Host::reboot`.
    Reboot,
    /// `Host::reset`.
    Reset,
    /// `Host::suspend`.
    Suspend,
    /// `Host::resume`.
    Resume,
}
