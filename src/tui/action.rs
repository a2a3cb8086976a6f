//! What flows into and out of `update`.
//!
//! [`Action`]s are facts delivered to the UI thread: a key, a resize, a tick, a host reply, a
//! stats sample, a chunk of guest output. [`Effect`]s are what `update` asks the runtime to do
//! on other threads: a [`HostOp`], opening a console, writing guest input, copying to the
//! clipboard. Keeping host calls out of `update` and `draw` is what lets both be tested
//! headless and keeps the screen responsive while vmd is slow.

use super::console::ConsoleId;
use super::error_text::error_chain;
use super::hosts::config::HostEntry;
use super::hosts::id::HostId;
use super::hosts::state::HostState;
use super::image_setup::{self, ImageSetup};
use super::scope::scope_words;
use super::tasks::{Task, TaskId, TaskOutcome, TaskProgress};
use crate::client::{BrokenVm, ChangeScope, VmStatus};
use crate::client::{HostApi, NetworkSnapshot, StorageSnapshot};
use crate::config::{DiskConfig, VmConfig, format_size};
use crate::protocol::{VmInfo, VmStats};
use crate::storage::VolumeSpec;
use crossterm::event::{KeyEvent, MouseEvent};
use std::path::PathBuf;

/// Host memory from `/proc/meminfo`, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostMemory {
    /// `MemTotal`.
    pub total: u64,
    /// `MemAvailable`.
    pub available: u64,
}

/// One entry of a directory listing for the file picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// File name.
    pub name: String,
    /// Whether it is a directory (followed through symlinks).
    pub is_dir: bool,
}

/// Something that happened; the only input of `update`.
#[derive(Debug)]
pub enum Action {
    /// A key press (releases are filtered out by the runtime).
    Key(KeyEvent),
    /// A mouse event.
    Mouse(MouseEvent),
    /// Text pasted into the terminal (bracketed paste).
    Paste(String),
    /// The terminal is now `width`×`height` cells.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// One second passed.
    Tick,
    /// The definitions and their states, from `Host::list` (broken definitions with the
    /// live state of their VMs).
    Listed(Vec<Result<VmStatus, BrokenVm>>),
    /// A stats sample of a running VM.
    Stats {
        /// VM name.
        vm: String,
        /// The sample.
        stats: VmStats,
    },
    /// Live facts of a running VM.
    Info {
        /// VM name.
        vm: String,
        /// The facts.
        info: VmInfo,
    },
    /// Host memory figures.
    HostMemory(HostMemory),
    /// A [`HostOp`] finished: what the status line says, or the host's error.
    OpDone {
        /// What was done.
        op: HostOp,
        /// The message on success, the error on failure.
        result: Result<String, String>,
    },
    /// A console stream is open.
    ConsoleOpened(ConsoleId),
    /// Guest output for a console.
    ConsoleOutput {
        /// The console.
        id: ConsoleId,
        /// The bytes, as the guest wrote them.
        bytes: Vec<u8>,
    },
    /// A console stream ended or could not be opened.
    ConsoleClosed {
        /// The console.
        id: ConsoleId,
        /// Why, in words.
        reason: String,
    },
    /// A directory listing for the file picker.
    DirListed {
        /// The directory.
        dir: PathBuf,
        /// Its entries, or why it could not be read.
        result: Result<Vec<DirEntry>, String>,
    },
    /// Pools and volumes, or why they could not be read.
    StorageLoaded(Result<StorageSnapshot, String>),
    /// Networks, or why they could not be read.
    NetworksLoaded(Result<NetworkSnapshot, String>),
    /// A long task has got further (from its progress handle, a few times a second).
    TaskProgress {
        /// The task.
        id: TaskId,
        /// Bytes done of bytes to do, rate and time left.
        progress: TaskProgress,
    },
    /// A [`Task`] ended: done, failed or cancelled, with what the status line says.
    TaskDone {
        /// The task.
        id: TaskId,
        /// How it ended.
        outcome: TaskOutcome,
    },
    /// A reply from (or about) remote host `host`: `action` applies to that host's VMs,
    /// pools and networks. Replies without this wrapper are the local host's.
    OnHost {
        /// The host it came from.
        host: HostId,
        /// The reply.
        action: Box<Action>,
    },
    /// A remote host's connection changed.
    HostState {
        /// The host's name.
        name: String,
        /// Its state now.
        state: HostState,
    },
    /// The hosts were written to the settings file: what the status line says, or why not.
    HostsSaved(Result<String, String>),
}

/// A volume the creation wizard makes before it defines the VM.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVolume {
    /// Pool.
    pub pool: String,
    /// Volume name.
    pub name: String,
    /// Size and format.
    pub spec: VolumeSpec,
}

/// A lifecycle or definition operation, run by the runtime on a worker thread.
#[derive(Debug, Clone, PartialEq)]
pub enum HostOp {
    /// Start a VM.
    Start(String),
    /// Press the ACPI power button.
    Shutdown(String),
    /// Stop at once.
    Destroy(String),
    /// Graceful reboot.
    Reboot(String),
    /// Hard reset.
    Reset(String),
    /// Pause.
    Suspend(String),
    /// Resume after pause.
    Resume(String),
    /// Set the autostart flag.
    Autostart(String, bool),
    /// Replace a definition.
    Update(Box<VmConfig>),
    /// Delete a definition.
    Undefine(String),
    /// Define a new VM and optionally start it.
    Create {
        /// The definition.
        config: Box<VmConfig>,
        /// Start it once defined.
        start: bool,
        /// Attach its console once started (handled by `update` when this op is done).
        attach: bool,
        /// A volume to create first (it is already among `config.disks`).
        new_volume: Option<NewVolume>,
        /// Networks to give the VM a NIC on (a fresh MAC each), in order.
        networks: Vec<String>,
        /// Networks to start after defining the VM and before starting it.
        start_networks: Vec<String>,
        /// For a VM made from a disk image: the import and cloud-init settings.
        image: Option<Box<ImageSetup>>,
    },
    /// Set a VM's vCPU count (hot-add or remove, and/or in the definition).
    SetVcpus {
        /// VM name.
        vm: String,
        /// The count before (for the messages).
        from: u32,
        /// The count wanted.
        count: u32,
        /// Live, definition or both.
        scope: ChangeScope,
    },
    /// Attach a disk (hot-add, and/or in the definition).
    AttachDisk {
        /// VM name.
        vm: String,
        /// The disk.
        disk: Box<DiskConfig>,
        /// A volume to create first (the disk names it).
        new_volume: Option<NewVolume>,
        /// Live, definition or both.
        scope: ChangeScope,
    },
    /// Detach a disk (hot-remove, and/or from the definition).
    DetachDisk {
        /// VM name.
        vm: String,
        /// Its guest device name.
        target: String,
        /// Live, definition or both.
        scope: ChangeScope,
        /// Take it from the running VM without the guest's consent.
        force: bool,
    },
    /// Save a running VM and stop it: to its managed save (`path` absent; the next start
    /// resumes it) or to a file.
    Save {
        /// VM name.
        vm: String,
        /// The file; `None`: the managed save.
        path: Option<PathBuf>,
    },
    /// Start the VM saved in a file.
    Restore {
        /// The save file.
        path: PathBuf,
        /// How the status line names it until the VM is known (the file name).
        label: String,
    },
    /// Discard a VM's managed save.
    ManagedSaveRemove(String),
    /// Set the memory a guest keeps (balloon, and/or the definition's current memory).
    SetMemory {
        /// VM name.
        vm: String,
        /// Memory before, bytes (for the messages).
        from: u64,
        /// Memory wanted, bytes.
        bytes: u64,
        /// Live, definition or both.
        scope: ChangeScope,
    },
}

impl HostOp {
    /// The VM this operation is about.
    pub fn vm(&self) -> &str {
        match self {
            HostOp::Start(n)
            | HostOp::Shutdown(n)
            | HostOp::Destroy(n)
            | HostOp::Reboot(n)
            | HostOp::Reset(n)
            | HostOp::Suspend(n)
            | HostOp::Resume(n)
            | HostOp::Autostart(n, _)
            | HostOp::ManagedSaveRemove(n)
            | HostOp::Undefine(n) => n,
            HostOp::Save { vm, .. } | HostOp::SetMemory { vm, .. } => vm,
            HostOp::Restore { label, .. } => label,
            HostOp::Update(c) | HostOp::Create { config: c, .. } => &c.name,
            HostOp::SetVcpus { vm, .. }
            | HostOp::AttachDisk { vm, .. }
            | HostOp::DetachDisk { vm, .. } => vm,
        }
    }

    /// Progress words shown while it runs ("starting").
    pub fn progress(&self) -> &'static str {
        match self {
            HostOp::Start(_) => "starting",
            HostOp::Shutdown(_) => "shutting down",
            HostOp::Destroy(_) => "forcing off",
            HostOp::Reboot(_) => "rebooting",
            HostOp::Reset(_) => "resetting",
            HostOp::Suspend(_) => "pausing",
            HostOp::Resume(_) => "resuming",
            HostOp::Autostart(..) => "saving",
            HostOp::Update(_) => "saving",
            HostOp::Undefine(_) => "deleting",
            HostOp::Create { start: true, .. } => "creating and starting",
            HostOp::Create { .. } => "creating",
            HostOp::SetVcpus { .. } => "changing vCPUs",
            HostOp::AttachDisk { .. } => "attaching a disk",
            HostOp::DetachDisk { .. } => "detaching a disk",
            HostOp::Save { .. } => "saving",
            HostOp::Restore { .. } => "restoring",
            HostOp::ManagedSaveRemove(_) => "discarding the saved state of",
            HostOp::SetMemory { .. } => "changing the memory of",
        }
    }

    /// What the status line says when it worked.
    pub fn done_message(&self) -> String {
        let vm = self.vm();
        match self {
            HostOp::Start(_) => format!("{vm} started"),
            HostOp::Shutdown(_) => format!("asked {vm} to shut down (ACPI power button)"),
            HostOp::Destroy(_) => format!("{vm} forced off"),
            HostOp::Reboot(_) => format!("{vm} is rebooting"),
            HostOp::Reset(_) => format!("{vm} reset"),
            HostOp::Suspend(_) => format!("{vm} paused"),
            HostOp::Resume(_) => format!("{vm} resumed"),
            HostOp::Autostart(_, true) => format!("{vm} will start with `vmux autostart-all`"),
            HostOp::Autostart(_, false) => format!("{vm} no longer autostarts"),
            HostOp::Update(_) => format!("{vm} saved; changes apply at its next start"),
            HostOp::Undefine(_) => format!("{vm} deleted"),
            HostOp::Create { start: true, .. } => format!("{vm} created and started"),
            HostOp::Create { .. } => format!("{vm} created"),
            HostOp::SetVcpus {
                from, count, scope, ..
            } => {
                let guest = if !scope.live {
                    ""
                } else if count > from {
                    "; the guest was notified and brings them online"
                } else {
                    "; the guest was asked to eject them"
                };
                format!(
                    "{vm}: vCPUs {from} → {count}, {}{guest}",
                    scope_words(*scope)
                )
            }
            HostOp::AttachDisk { disk, scope, .. } => format!(
                "{vm}: {} attached, {}{}",
                disk.source,
                scope_words(*scope),
                if scope.live {
                    "; the guest was notified"
                } else {
                    ""
                }
            ),
            HostOp::DetachDisk {
                target,
                force: true,
                scope,
                ..
            } => format!(
                "{vm}: {target} taken away without the guest's consent{}",
                if scope.config {
                    " and removed from the definition"
                } else {
                    ""
                }
            ),
            HostOp::Save { path: None, .. } => {
                format!("{vm} saved and shut off; start it to resume where it was")
            }
            HostOp::Save {
                path: Some(path), ..
            } => format!(
                "{vm} saved to {} and shut off; :restore {} continues it",
                path.display(),
                path.display()
            ),
            HostOp::Restore { path, .. } => format!("restored from {}", path.display()),
            HostOp::ManagedSaveRemove(_) => {
                format!("{vm}'s saved state discarded; its next start boots afresh")
            }
            HostOp::SetMemory {
                from, bytes, scope, ..
            } => format!(
                "{vm}: memory {} → {}, {}{}",
                format_size(*from),
                format_size(*bytes),
                scope_words(*scope),
                if scope.live {
                    "; the guest gives memory back through its balloon"
                } else {
                    ""
                }
            ),
            HostOp::DetachDisk { target, scope, .. } if scope.live => format!(
                "{vm}: asked the guest to eject {target} ({}); waiting for it",
                scope_words(*scope)
            ),
            HostOp::DetachDisk { target, scope, .. } => {
                format!("{vm}: {target} detached, {}", scope_words(*scope))
            }
        }
    }

    /// Carries the operation out and returns what the status line says then; the error is
    /// the message for the status line. Blocking: call it on a worker thread, never from
    /// `update` or `draw`.
    pub fn run(&self, backends: &HostApi) -> Result<String, String> {
        let host = backends.vms.as_ref();
        let result = match self {
            HostOp::Start(n) => host.start(n),
            HostOp::Shutdown(n) => host.shutdown(n),
            HostOp::Destroy(n) => host.destroy(n),
            HostOp::Reboot(n) => host.reboot(n),
            HostOp::Reset(n) => host.reset(n),
            HostOp::Suspend(n) => host.suspend(n),
            HostOp::Resume(n) => host.resume(n),
            HostOp::Autostart(n, on) => host.set_autostart(n, *on),
            HostOp::Update(config) => host.update(config),
            HostOp::Undefine(n) => host.undefine(n),
            HostOp::Create {
                config,
                start,
                new_volume,
                networks,
                start_networks,
                image,
                ..
            } => {
                let plan = CreatePlan {
                    config,
                    start: *start,
                    new_volume: new_volume.as_ref(),
                    networks,
                    start_networks,
                    image: image.as_deref(),
                };
                return create(backends, &plan)
                    .map(|extra| format!("{}{extra}", self.done_message()));
            }
            HostOp::SetVcpus {
                vm, count, scope, ..
            } => host.set_vcpus(vm, *count, *scope),
            HostOp::AttachDisk {
                vm,
                disk,
                new_volume,
                scope,
            } => return attach(backends, vm, disk, new_volume.as_ref(), *scope, self),
            HostOp::DetachDisk {
                vm,
                target,
                scope,
                force: true,
            } => host.force_detach_disk(vm, target).and_then(|()| {
                let config = ChangeScope {
                    live: false,
                    ..*scope
                };
                if config.config {
                    host.detach_disk(vm, target, config)
                } else {
                    Ok(())
                }
            }),
            HostOp::DetachDisk {
                vm, target, scope, ..
            } => host.detach_disk(vm, target, *scope),
            HostOp::Save { vm, path: None } => host.managed_save(vm, None).map(drop),
            HostOp::Save {
                vm,
                path: Some(path),
            } => host.save(vm, path, None).map(drop),
            HostOp::Restore { path, .. } => {
                return host
                    .restore(path, crate::client::RestoreOptions::default())
                    .map(|name| format!("{name} {}", self.done_message()))
                    .map_err(|e| error_chain(&e));
            }
            HostOp::ManagedSaveRemove(vm) => host.managed_save_remove(vm),
            HostOp::SetMemory {
                vm, bytes, scope, ..
            } => host.set_memory(vm, *bytes, *scope),
        };
        result
            .map(|()| self.done_message())
            .map_err(|e| error_chain(&e))
    }
}

/// The add-disk dialog's work: the new volume, then the attach; the message names the guest
/// device the disk became.
fn attach(
    backends: &HostApi,
    vm: &str,
    disk: &DiskConfig,
    new_volume: Option<&NewVolume>,
    scope: ChangeScope,
    op: &HostOp,
) -> Result<String, String> {
    if let Some(volume) = new_volume {
        backends
            .storage
            .create_volume(&volume.pool, &volume.name, volume.spec)
            .map_err(|e| error_chain(&e))?;
    }
    match backends.vms.attach_disk(vm, disk, scope) {
        Ok(target) => {
            Ok(op
                .done_message()
                .replacen(" attached,", &format!(" attached as {target},"), 1))
        }
        Err(e) => Err(match new_volume {
            Some(v) => format!(
                "{}; the new volume {}/{} was kept: attach it again or delete it in the Storage pane",
                error_chain(&e),
                v.pool,
                v.name
            ),
            None => error_chain(&e),
        }),
    }
}

/// What the creation wizard asks for, in the order [`create`] does it.
struct CreatePlan<'a> {
    config: &'a VmConfig,
    start: bool,
    new_volume: Option<&'a NewVolume>,
    networks: &'a [String],
    start_networks: &'a [String],
    image: Option<&'a ImageSetup>,
}

/// The creation wizard's work: the new volume, the NICs, the disk image (imported, unless an
/// import task copied it already; its /boot checked, cloud-init sealed), the definition, the
/// networks to start, the start. Stops at the first failure, saying what was done already
/// (the image volume goes with a VM that could not be defined); returns what the status line
/// adds (generated passwords, shown this once).
fn create(backends: &HostApi, plan: &CreatePlan<'_>) -> Result<String, String> {
    let new_volume = plan.new_volume;
    // An image an import task copied already goes with the VM it was for, until `prepare`
    // owns it.
    let abandon_image = || {
        if let Some(setup) = plan.image {
            image_setup::abandon(backends, setup);
        }
    };
    if let Some(volume) = new_volume {
        backends
            .storage
            .create_volume(&volume.pool, &volume.name, volume.spec)
            .map_err(|e| {
                abandon_image();
                error_chain(&e)
            })?;
    }
    let kept = |message: String| match new_volume {
        Some(v) => format!(
            "{message}; the new volume {}/{} ({}) was kept: use it or delete it in the Storage pane",
            v.pool,
            v.name,
            format_size(v.spec.capacity)
        ),
        None => message,
    };
    let mut config = plan.config.clone();
    for network in plan.networks {
        let nic = backends
            .networks
            .new_nic(&config, network, None)
            .map_err(|e| {
                abandon_image();
                kept(error_chain(&e))
            })?;
        config.nics.push(nic);
    }
    let prepared = match plan.image {
        Some(setup) => image_setup::prepare(backends, &mut config, setup).map_err(kept)?,
        None => image_setup::Prepared::default(),
    };
    let host = backends.vms.as_ref();
    if let Err(e) = host.define(&config) {
        image_setup::discard(backends, &prepared);
        return Err(kept(error_chain(&e)));
    }
    let extra = image_setup::passwords_message(&prepared.passwords);
    for network in plan.start_networks {
        backends.networks.start(network).map_err(|e| {
            format!(
                "{} was created but not started: network {network} could not be started: {}; start the network in the Networks pane (3), then the VM with s{extra}",
                config.name,
                error_chain(&e)
            )
        })?;
    }
    if plan.start {
        host.start(&config.name)
            .map_err(|e| format!("{}{extra}", error_chain(&e)))?;
    }
    Ok(extra)
}

/// Work `update` hands to the runtime.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Run a host operation; an [`Action::OpDone`] follows.
    Host(HostOp),
    /// Poll the host now instead of at the next second.
    Refresh,
    /// Open VM `vm`'s console; [`Action::ConsoleOpened`] or [`Action::ConsoleClosed`] follows.
    OpenConsole {
        /// The id `update` chose for it.
        id: ConsoleId,
        /// VM name.
        vm: String,
        /// Replay earlier output first.
        history: bool,
    },
    /// Send bytes to the guest's serial input.
    ConsoleInput {
        /// The console.
        id: ConsoleId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Close a console stream (the VM keeps running).
    CloseConsole(ConsoleId),
    /// Put text on the user's clipboard with OSC 52.
    Clipboard(String),
    /// List a directory for the file picker; [`Action::DirListed`] follows.
    ListDir(PathBuf),
    /// Read a running VM's live facts now; [`Action::Info`] follows when it answers.
    ReadInfo(String),
    /// Read pools and volumes; [`Action::StorageLoaded`] follows.
    LoadStorage,
    /// Read networks; [`Action::NetworksLoaded`] follows.
    LoadNetworks,
    /// Run a storage or network task; [`Action::TaskProgress`] (for the long ones) and
    /// [`Action::TaskDone`] follow.
    Task {
        /// The id `update` chose for it.
        id: TaskId,
        /// What to do.
        task: Task,
    },
    /// Cancel a running task through its progress handle; it ends with
    /// [`TaskOutcome::Cancelled`] once it has cleaned up (or normally, when it was past its
    /// last step).
    CancelTask(TaskId),
    /// Connect remote host `name` on a worker thread; [`Action::HostState`]s follow.
    Connect {
        /// The host's name.
        name: String,
        /// Its address.
        uri: String,
    },
    /// Close remote host `name`'s link (disconnect, remove); its VMs leave the list.
    Disconnect(String),
    /// Write these hosts to the settings file; [`Action::HostsSaved`] follows.
    SaveHosts(Vec<HostEntry>),
}

/// An [`Effect`] and the host it is for: the host of the selection (or of the reply being
/// applied) when it was queued.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// The host whose backends run it.
    pub host: HostId,
    /// What to do.
    pub effect: Effect,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Host;
    use crate::client::fake::FakeHost;
    use crate::client::{FakeNetworks, FakeStorage};
    use crate::config::BootConfig;
    use std::sync::Arc;

    fn backends(host: &Arc<FakeHost>, storage: &Arc<FakeStorage>) -> HostApi {
        HostApi {
            vms: host.clone(),
            storage: storage.clone(),
            networks: Arc::new(FakeNetworks::with_default()),
        }
    }

    #[test]
    fn create_with_start_defines_then_starts() {
        let host = Arc::new(FakeHost::new());
        let op = HostOp::Create {
            config: Box::new(VmConfig::new("a", BootConfig::Demo)),
            start: true,
            attach: false,
            new_volume: None,
            networks: Vec::new(),
            start_networks: Vec::new(),
            image: None,
        };
        op.run(&backends(&host, &Arc::new(FakeStorage::new())))
            .expect("runs");
        let status = host.status("a").expect("defined");
        assert_eq!(status.state, crate::protocol::RunState::Running);
    }

    #[test]
    fn create_makes_the_volume_and_the_nics_first() {
        let host = Arc::new(FakeHost::new());
        let storage = Arc::new(FakeStorage::new());
        let mut config = VmConfig::new("a", BootConfig::Demo);
        config
            .disks
            .push(crate::config::DiskConfig::volume("default", "a.qcow2"));
        let op = HostOp::Create {
            config: Box::new(config),
            start: false,
            attach: false,
            new_volume: Some(NewVolume {
                pool: "default".into(),
                name: "a.qcow2".into(),
                spec: VolumeSpec {
                    capacity: 1 << 30,
                    format: None,
                    preallocate: false,
                },
            }),
            networks: vec!["default".into()],
            start_networks: Vec::new(),
            image: None,
        };
        op.run(&backends(&host, &storage)).expect("runs");
        assert!(storage.volume("default", "a.qcow2").is_some());
        let defined = host.status("a").expect("defined").config;
        assert_eq!(defined.nics.len(), 1);
        assert_eq!(defined.disks.len(), 1);
    }

    #[test]
    fn a_failed_definition_names_the_volume_it_kept() {
        let host = Arc::new(FakeHost::with_vms([VmConfig::new("a", BootConfig::Demo)]));
        let storage = Arc::new(FakeStorage::new());
        let op = HostOp::Create {
            config: Box::new(VmConfig::new("a", BootConfig::Demo)),
            start: false,
            attach: false,
            new_volume: Some(NewVolume {
                pool: "default".into(),
                name: "a.qcow2".into(),
                spec: VolumeSpec {
                    capacity: 1 << 30,
                    format: None,
                    preallocate: false,
                },
            }),
            networks: Vec::new(),
            start_networks: Vec::new(),
            image: None,
        };
        let err = op.run(&backends(&host, &storage)).expect_err("exists");
        assert!(
            err.contains("default/a.qcow2") && err.contains("kept"),
            "{err}"
        );
    }

    #[test]
    fn create_from_an_image_imports_it_checks_its_boot_and_shows_a_generated_password_once() {
        let host = Arc::new(FakeHost::new());
        let storage = Arc::new(FakeStorage::new());
        storage.add_volume("default", "debian-12.qcow2", 2 << 30, 400 << 20);
        let mut config = VmConfig::new(
            "web1",
            BootConfig::Image {
                cmdline_extra: String::new(),
            },
        );
        config
            .disks
            .push(crate::config::DiskConfig::volume("default", "web1.qcow2"));
        let op = HostOp::Create {
            config: Box::new(config),
            start: true,
            attach: false,
            new_volume: None,
            networks: Vec::new(),
            start_networks: Vec::new(),
            image: Some(Box::new(ImageSetup {
                import: Some(image_setup::ImageImport {
                    source: crate::client::ImageSource::Volume {
                        pool: "default".into(),
                        volume: "debian-12.qcow2".into(),
                    },
                    pool: "default".into(),
                    volume: "web1.qcow2".into(),
                    linked: true,
                }),
                cloud_init: Some(
                    crate::cloudinit::CloudInitOptions::parse("root-password=generate")
                        .expect("options"),
                ),
                imported: false,
            })),
        };

        let message = op.run(&backends(&host, &storage)).expect("runs");

        let overlay = storage.volume("default", "web1.qcow2").expect("overlay");
        assert!(overlay.backing.is_some());
        let password = message
            .split("root password: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no password in {message}"));
        let defined = host.status("web1").expect("defined").config;
        let stored = toml::to_string(&defined).expect("toml");
        assert!(!stored.contains(password), "{stored}");
        assert!(matches!(
            defined.cloud_init.and_then(|c| c.root_password),
            Some(crate::cloudinit::Password::Hashed(_))
        ));
    }

    #[test]
    fn an_image_vm_that_cannot_be_defined_leaves_no_overlay() {
        let host = Arc::new(FakeHost::with_vms([VmConfig::new(
            "web1",
            BootConfig::Demo,
        )]));
        let storage = Arc::new(FakeStorage::new());
        storage.add_volume("default", "debian-12.qcow2", 2 << 30, 400 << 20);
        let op = HostOp::Create {
            config: Box::new(VmConfig::new("web1", BootConfig::Demo)),
            start: false,
            attach: false,
            new_volume: None,
            networks: Vec::new(),
            start_networks: Vec::new(),
            image: Some(Box::new(ImageSetup {
                import: Some(image_setup::ImageImport {
                    source: crate::client::ImageSource::Volume {
                        pool: "default".into(),
                        volume: "debian-12.qcow2".into(),
                    },
                    pool: "default".into(),
                    volume: "web1.qcow2".into(),
                    linked: true,
                }),
                cloud_init: None,
                imported: false,
            })),
        };

        assert!(op.run(&backends(&host, &storage)).is_err());
        assert!(storage.volume("default", "web1.qcow2").is_none());
    }

    /// A create whose image an import task copied already into default/web1.qcow2.
    fn create_on_imported(config: VmConfig, networks: Vec<String>) -> HostOp {
        HostOp::Create {
            config: Box::new(config),
            start: false,
            attach: false,
            new_volume: None,
            networks,
            start_networks: Vec::new(),
            image: Some(Box::new(ImageSetup {
                import: Some(image_setup::ImageImport {
                    source: crate::client::ImageSource::File("/srv/debian.qcow2".into()),
                    pool: "default".into(),
                    volume: "web1.qcow2".into(),
                    linked: false,
                }),
                cloud_init: None,
                imported: true,
            })),
        }
    }

    fn image_vm(name: &str) -> VmConfig {
        let mut config = VmConfig::new(
            name,
            BootConfig::Image {
                cmdline_extra: String::new(),
            },
        );
        config
            .disks
            .push(crate::config::DiskConfig::volume("default", "web1.qcow2"));
        config
    }

    #[test]
    fn an_image_copied_by_its_task_is_not_imported_again() {
        let host = Arc::new(FakeHost::new());
        let storage = Arc::new(FakeStorage::new());
        storage.add_volume("default", "web1.qcow2", 2 << 30, 400 << 20);
        create_on_imported(image_vm("web1"), Vec::new())
            .run(&backends(&host, &storage))
            .expect("runs");
        assert!(storage.volume("default", "web1.qcow2").is_some());
        assert!(host.status("web1").is_ok());
    }

    #[test]
    fn an_image_copied_by_its_task_goes_when_the_vm_cannot_be_defined() {
        let host = Arc::new(FakeHost::with_vms([VmConfig::new(
            "web1",
            BootConfig::Demo,
        )]));
        let storage = Arc::new(FakeStorage::new());
        storage.add_volume("default", "web1.qcow2", 2 << 30, 400 << 20);
        let op = create_on_imported(image_vm("web1"), Vec::new());
        assert!(op.run(&backends(&host, &storage)).is_err());
        assert!(storage.volume("default", "web1.qcow2").is_none());
    }

    #[test]
    fn an_image_copied_by_its_task_goes_when_a_nic_cannot_be_made() {
        let host = Arc::new(FakeHost::new());
        let storage = Arc::new(FakeStorage::new());
        storage.add_volume("default", "web1.qcow2", 2 << 30, 400 << 20);
        let op = create_on_imported(image_vm("web1"), vec!["nosuchnet".into()]);
        assert!(op.run(&backends(&host, &storage)).is_err());
        assert!(storage.volume("default", "web1.qcow2").is_none());
        assert!(host.status("web1").is_err());
    }
}
