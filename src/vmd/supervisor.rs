//! The supervisor: vmd's shared picture of its VM (state, current boot, latest stats) and the
//! execution of control commands against it.
//!
//! One `Supervisor` lives for the whole vmd, behind an `Arc` shared by the boot loop (which
//! installs each boot's control handle), the connection threads (which execute commands), and
//! the stats sampler. Lifecycle commands are serialized by their own lock so two clients
//! cannot interleave a pause with a resume; reads (`info`, `stats`) never wait for them.
//! Hotplug commands (`set_vcpus`, `attach_disk`, `detach_disk`) and the engine's hotplug facts
//! live in `hotplug.rs`, which also keeps what the next boot is built from.

use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::boot::error_chain;
use super::events::EventBus;
use super::image_boot::ImageBoot;
use super::live_disks::LiveDisks;
use super::machine::MachineControl;
use super::observer::Observer;
use super::open_images::OpenImages;
use super::ring::ConsoleRing;
use super::state_file::StateFile;
use super::stats::{BootFacts, empty_stats};
use crate::engine::{VmObserver, VmSpec};
use crate::protocol::{
    BootImageInfo, Command, ErrorKind, Event, ExitReason, PROTOCOL_VERSION, ProtocolError,
    ReplyResult, RunState, VmInfo, VmStats,
};

/// Shared state of one vmd.
pub struct Supervisor {
    pub(super) name: String,
    pid: u32,
    pub(super) max_vcpus: u32,
    memory_bytes: u64,
    ring: Arc<ConsoleRing>,
    pub(super) events: EventBus,
    /// Where `state.json` goes; `None` keeps state in memory only (tests).
    state_path: Option<PathBuf>,
    live: Mutex<Live>,
    /// Held while a lifecycle or hotplug command runs.
    commands: Mutex<()>,
    latest: Mutex<VmStats>,
    /// The spec of the first boot, without its disks (they live in `disks`).
    pub(super) base_spec: VmSpec,
    /// vCPUs plugged by the last `set_vcpus` (or at the start): what the next boot starts with.
    pub(super) plugged_vcpus: AtomicU32,
    /// The VM's disks and their open images.
    pub(super) disks: Mutex<LiveDisks>,
    /// The writable qcow2 images open now, mirrored in `open-images.json`.
    pub(super) open_images: Mutex<OpenImages>,
    /// The definition this vmd runs (what a save records); `None` for transient VMs.
    definition: Option<crate::config::VmConfig>,
    /// Where a successful `save` wrote the VM (which then ends).
    saved_to: Mutex<Option<PathBuf>>,
    /// The thread applying the engine's hotplug facts; started with the first boot.
    observer: Mutex<Option<Observer>>,
    /// Set for VMs that boot their disk image's own kernel (read again before each boot).
    pub(super) image_boot: Option<ImageBoot>,
    /// What the current (or last) boot read from the disk image.
    pub(super) boot_image: Mutex<Option<Box<BootImageInfo>>>,
    /// The backing files a hot-added disk's chain may use besides its own allowed ones: files
    /// in the storage pools (none until [`Supervisor::with_backing_trust`]).
    pub(super) backing_trust: crate::storage::BackingTrust,
}

/// The current boot. Invariant: `control` is `Some` exactly while a boot is running or paused.
pub(super) struct Live {
    pub(super) control: Option<Arc<dyn MachineControl>>,
    state: RunState,
    boots: u32,
    started_at: u64,
    boot_clock: Instant,
    serial_base: u64,
    /// A `reboot` pressed the power button: the next power-off boots again.
    reboot_requested: bool,
    /// `destroy` (or a signal) ended the VM; no further boots.
    destroy_requested: bool,
}

/// A handle on the running boot for the stats sampler.
pub struct BootView {
    /// Control of the boot.
    pub control: Arc<dyn MachineControl>,
    /// Facts for [`super::stats::Sampler::sample`].
    pub facts: BootFacts,
}

fn now_epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn protocol_error(kind: ErrorKind, message: impl Into<String>) -> ProtocolError {
    ProtocolError {
        kind,
        message: message.into(),
    }
}

impl Supervisor {
    /// A supervisor for the VM `spec` describes, before its first boot.
    pub fn new(
        spec: &VmSpec,
        pid: u32,
        ring: Arc<ConsoleRing>,
        state_path: Option<PathBuf>,
    ) -> Supervisor {
        Supervisor {
            base_spec: VmSpec {
                disks: Vec::new(),
                ..spec.clone()
            },
            plugged_vcpus: AtomicU32::new(spec.vcpus),
            disks: Mutex::new(LiveDisks::new(spec.disks.clone(), &[])),
            open_images: Mutex::new(OpenImages::in_memory()),
            name: spec.name.clone(),
            pid,
            max_vcpus: spec.max_vcpus,
            memory_bytes: spec.memory_bytes,
            ring,
            events: EventBus::new(),
            state_path,
            live: Mutex::new(Live {
                control: None,
                state: RunState::Running,
                boots: 0,
                started_at: now_epoch_secs(),
                boot_clock: Instant::now(),
                serial_base: 0,
                reboot_requested: false,
                destroy_requested: false,
            }),
            commands: Mutex::new(()),
            latest: Mutex::new(empty_stats(spec.memory_bytes)),
            definition: None,
            saved_to: Mutex::new(None),
            observer: Mutex::new(None),
            image_boot: None,
            boot_image: Mutex::new(None),
            backing_trust: crate::storage::BackingTrust::none(),
        }
    }

    /// An engine observer for a new boot, feeding the observer thread (started on first use).
    pub fn observer(self: &Arc<Self>) -> std::io::Result<Arc<dyn VmObserver>> {
        let mut slot = self.observer.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(Observer::start(Arc::downgrade(self))?);
        }
        Ok(slot
            .as_ref()
            .expect("the observer was started just above")
            .observer())
    }

    /// Boots the kernel of disk vda's own /boot, found again before every boot.
    pub fn with_image_boot(mut self, image_boot: ImageBoot) -> Supervisor {
        self.image_boot = Some(image_boot);
        self
    }

    /// Lets hot-added disks use backing files `trust` allows (the storage pools).
    pub fn with_backing_trust(mut self, trust: crate::storage::BackingTrust) -> Supervisor {
        self.backing_trust = trust;
        self
    }

    /// Records the definition this vmd runs (a save stores it).
    pub fn with_definition(mut self, config: crate::config::VmConfig) -> Supervisor {
        self.definition = Some(config);
        self
    }

    /// The definition this vmd runs.
    pub(super) fn definition(&self) -> Option<crate::config::VmConfig> {
        self.definition.clone()
    }

    /// A save to `path` succeeded: the VM ends now, and its end says where it went.
    pub(super) fn saved(&self, path: &std::path::Path) {
        *self.saved_to.lock().unwrap_or_else(PoisonError::into_inner) = Some(path.to_path_buf());
        self.destroy();
    }

    /// Where a save wrote the VM, if one did.
    pub fn saved_to(&self) -> Option<PathBuf> {
        self.saved_to
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Names the disks (in stats, `info` and `detach_disk`): `targets[i]` is the guest device
    /// name of `spec.disks[i]`.
    pub fn with_disk_targets(self, targets: Vec<String>) -> Supervisor {
        self.set_disk_targets(&targets);
        self
    }

    /// Keeps the list of open writable qcow2 images in `images` (already holding the boot
    /// disks' images) instead of in memory.
    pub fn with_open_images(self, images: OpenImages) -> Supervisor {
        *self
            .open_images
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = images;
        self
    }

    pub(super) fn live(&self) -> MutexGuard<'_, Live> {
        // Every update of `Live` is a handful of field stores; a panic elsewhere cannot leave
        // it half-written in a way that matters more than refusing all service would.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The console ring.
    pub fn ring(&self) -> &Arc<ConsoleRing> {
        &self.ring
    }

    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The current boot's control handle, if a boot is running.
    pub fn control(&self) -> Option<Arc<dyn MachineControl>> {
        self.live().control.clone()
    }

    /// Records a freshly started boot and announces it. If a destroy arrived while the boot
    /// was being built, the boot is destroyed at once.
    pub fn boot_started(&self, control: Arc<dyn MachineControl>) {
        self.record_boot_disks(control.as_ref());
        let mut live = self.live();
        live.boots += 1;
        live.started_at = now_epoch_secs();
        live.boot_clock = Instant::now();
        live.serial_base = self.ring.end();
        live.state = RunState::Running;
        live.reboot_requested = false;
        if live.destroy_requested {
            control.destroy();
        }
        live.control = Some(control);
        self.persist(&live, None);
        drop(live);
        self.events.publish(&Event::State {
            state: RunState::Running,
            reason: None,
        });
    }

    /// Forgets the boot that just ended and says whether to boot again after it powered off
    /// (a requested reboot) and whether a destroy forbids any further boot.
    pub fn boot_ended(&self) -> BootEnd {
        let mut live = self.live();
        live.control = None;
        BootEnd {
            reboot_requested: std::mem::take(&mut live.reboot_requested),
            destroy_requested: live.destroy_requested,
        }
    }

    /// Writes back and closes every disk image of the VM (after its last boot ended). Returns
    /// whether every image was written back.
    pub fn close_disks(&self) -> bool {
        let failed = self
            .disks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .close_all();
        let all_written = failed.is_empty();
        for (target, error) in failed {
            log::error!("cannot write back disk {target} as the VM ends: {error}");
        }
        all_written
    }

    /// Records the end of the VM: final state on disk, `state` and `exited` events, and the
    /// bus closed so subscribers drain and disconnect.
    pub fn finished(&self, reason: &ExitReason) {
        let (state, why) = match reason {
            ExitReason::Crashed { reason } => (RunState::Crashed, Some(reason.clone())),
            _ => (RunState::ShutOff, None),
        };
        let mut live = self.live();
        live.state = state;
        live.control = None;
        self.persist(&live, why.clone());
        drop(live);
        self.events.publish(&Event::State { state, reason: why });
        self.events.publish(&Event::Exited {
            reason: reason.clone(),
        });
        self.events.close();
    }

    /// Ends the VM from inside vmd (a signal): like a `destroy` command.
    pub fn destroy(&self) {
        let control = {
            let mut live = self.live();
            live.destroy_requested = true;
            live.control.clone()
        };
        if let Some(control) = control {
            control.destroy();
        }
    }

    /// The running boot for the sampler, or `None` between boots.
    pub fn boot_view(&self) -> Option<BootView> {
        let live = self.live();
        let control = live.control.clone()?;
        Some(BootView {
            control,
            facts: BootFacts {
                boot: live.boots,
                uptime: live.boot_clock.elapsed(),
                serial_out_bytes: self.ring.end().saturating_sub(live.serial_base),
                // Slot order, like the engine's disk counters.
                disk_targets: self.disk_infos().into_iter().map(|d| d.target).collect(),
            },
        })
    }

    /// Stores the latest sample and pushes it to subscribers.
    pub fn record_stats(&self, stats: VmStats) {
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = stats.clone();
        self.events.publish(&Event::Stats(Box::new(stats)));
    }

    pub(super) fn persist(&self, live: &Live, reason: Option<String>) {
        let Some(path) = &self.state_path else {
            return;
        };
        let file = StateFile {
            state: live.state,
            pid: self.pid,
            vcpus: live.control.as_ref().map_or(0, |c| c.vcpu_count()),
            boots: live.boots,
            started_at: live.started_at,
            reason,
        };
        if let Err(e) = file.write(path) {
            log::warn!("cannot write {}: {e}", path.display());
        }
    }

    /// What `info` replies.
    pub fn info(&self) -> VmInfo {
        let live = self.live();
        VmInfo {
            name: self.name.clone(),
            state: live.state,
            pid: self.pid,
            vcpus: live.control.as_ref().map_or(0, |c| c.vcpu_count()),
            max_vcpus: self.max_vcpus,
            memory_bytes: self.memory_bytes,
            started_at: live.started_at,
            boots: live.boots,
            protocol: PROTOCOL_VERSION,
            disks: self.disk_infos(),
            boot_image: self
                .boot_image
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// Executes a command that is answered by one reply (everything but `subscribe` and
    /// `console`, which change the connection and are handled by the session).
    pub fn execute(&self, command: &Command) -> Result<Option<ReplyResult>, ProtocolError> {
        match command {
            Command::Info => Ok(Some(ReplyResult::Info(Box::new(self.info())))),
            Command::Stats => {
                let stats = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
                Ok(Some(ReplyResult::Stats(Box::new(stats.clone()))))
            }
            Command::Pause => self.pause().map(|()| None),
            Command::Resume => self.resume().map(|()| None),
            Command::Shutdown => self.power_button(false).map(|()| None),
            Command::Reboot => self.power_button(true).map(|()| None),
            Command::Reset => {
                let _serial = self.lock_commands();
                self.running_control()?.reset();
                Ok(None)
            }
            Command::Destroy => {
                self.destroy();
                Ok(None)
            }
            Command::SetVcpus { count } => self.set_vcpus(*count).map(|()| None),
            Command::AttachDisk {
                path,
                target,
                read_only,
                serial,
                format,
                allow_backing,
            } => {
                let how =
                    super::disks::AttachImage::new(*format, &self.backing_trust, allow_backing);
                self.attach_disk(path, target.clone(), *read_only, serial.clone(), how)
                    .map(|disk| Some(ReplyResult::Disk(Box::new(disk))))
            }
            Command::DetachDisk { target, force } => {
                self.detach_disk(target, *force).map(|()| None)
            }
            Command::SwitchDisks { disks } => self.switch_disks(disks).map(|()| None),
            Command::Save { path, paused } => self
                .save(path, *paused)
                .map(|saved| Some(ReplyResult::Saved(Box::new(saved)))),
            Command::SetMemory { bytes } => self.set_memory(*bytes).map(|()| None),
            Command::MemoryStats => self
                .memory_stats()
                .map(|stats| Some(ReplyResult::Memory(Box::new(stats)))),
            Command::Subscribe | Command::Console { .. } => Err(protocol_error(
                ErrorKind::BadRequest,
                "this command switches the connection and is handled by the session",
            )),
        }
    }

    pub(super) fn lock_commands(&self) -> MutexGuard<'_, ()> {
        self.commands.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The control handle and state of a running boot, or the error for "between boots".
    pub(super) fn current(&self) -> Result<(Arc<dyn MachineControl>, RunState), ProtocolError> {
        let live = self.live();
        match (&live.control, live.destroy_requested) {
            (Some(control), false) => Ok((Arc::clone(control), live.state)),
            (_, true) => Err(protocol_error(
                ErrorKind::InvalidState,
                "the VM is being destroyed",
            )),
            (None, false) => Err(protocol_error(
                ErrorKind::InvalidState,
                "the VM is between boots (rebooting); try again in a moment",
            )),
        }
    }

    pub(super) fn running_control(&self) -> Result<Arc<dyn MachineControl>, ProtocolError> {
        let (control, state) = self.current()?;
        if state == RunState::Paused {
            return Err(protocol_error(
                ErrorKind::InvalidState,
                format!(
                    "the VM is paused; resume it first with `vmux resume {}`",
                    self.name
                ),
            ));
        }
        Ok(control)
    }

    /// The restored boot that just started is paused (it was restored so).
    pub(super) fn restored_paused(&self) {
        self.set_state(RunState::Paused);
    }

    fn set_state(&self, state: RunState) {
        let mut live = self.live();
        live.state = state;
        self.persist(&live, None);
        drop(live);
        self.events.publish(&Event::State {
            state,
            reason: None,
        });
    }

    fn pause(&self) -> Result<(), ProtocolError> {
        let _serial = self.lock_commands();
        let control = self.running_control()?;
        control.pause().map_err(|e| {
            protocol_error(
                ErrorKind::Engine,
                format!("cannot pause the vCPUs: {}", error_chain(e.as_ref())),
            )
        })?;
        self.set_state(RunState::Paused);
        Ok(())
    }

    fn resume(&self) -> Result<(), ProtocolError> {
        let _serial = self.lock_commands();
        let (control, state) = self.current()?;
        if state != RunState::Paused {
            return Err(protocol_error(
                ErrorKind::InvalidState,
                "the VM is not paused; there is nothing to resume",
            ));
        }
        control.resume().map_err(|e| {
            protocol_error(
                ErrorKind::Engine,
                format!("cannot resume the vCPUs: {}", error_chain(e.as_ref())),
            )
        })?;
        self.set_state(RunState::Running);
        Ok(())
    }

    fn power_button(&self, reboot: bool) -> Result<(), ProtocolError> {
        let _serial = self.lock_commands();
        let control = self.running_control()?;
        if reboot {
            self.live().reboot_requested = true;
        }
        control.power_button();
        Ok(())
    }
}

/// What [`Supervisor::boot_ended`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootEnd {
    /// A graceful reboot was requested: a power-off means "boot again".
    pub reboot_requested: bool,
    /// The VM was destroyed: never boot again.
    pub destroy_requested: bool,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::BootSpec;
    use crate::vmd::fake::FakeControl;
    use std::sync::atomic::Ordering;

    pub(crate) fn spec() -> VmSpec {
        VmSpec {
            name: "t".into(),
            vcpus: 2,
            max_vcpus: 4,
            memory_bytes: 64 << 20,
            boot: BootSpec::Image {
                elf: Arc::from(&b""[..]),
                cmdline: String::new(),
            },
            disks: Vec::new(),
            nics: Vec::new(),
            balloon: false,
        }
    }

    fn running() -> (Supervisor, Arc<FakeControl>) {
        let sup = Supervisor::new(&spec(), 99, Arc::new(ConsoleRing::new(64)), None);
        let control = Arc::new(FakeControl::default());
        sup.boot_started(control.clone());
        (sup, control)
    }

    fn kind(result: Result<Option<ReplyResult>, ProtocolError>) -> ErrorKind {
        result.expect_err("must fail").kind
    }

    #[test]
    fn info_reports_the_running_boot() {
        let (sup, _) = running();
        let info = sup.info();
        assert_eq!(info.state, RunState::Running);
        assert_eq!((info.pid, info.vcpus, info.max_vcpus), (99, 2, 4));
        assert_eq!(info.boots, 1);
        assert_eq!(info.protocol, PROTOCOL_VERSION);
    }

    #[test]
    fn pause_then_resume_changes_state_and_the_engine() {
        let (sup, control) = running();
        sup.execute(&Command::Pause).expect("pause");
        assert!(control.paused.load(Ordering::SeqCst));
        assert_eq!(sup.info().state, RunState::Paused);
        sup.execute(&Command::Resume).expect("resume");
        assert_eq!(sup.info().state, RunState::Running);
    }

    #[test]
    fn pausing_twice_is_an_invalid_state() {
        let (sup, _) = running();
        sup.execute(&Command::Pause).expect("pause");
        assert_eq!(kind(sup.execute(&Command::Pause)), ErrorKind::InvalidState);
    }

    #[test]
    fn resuming_a_running_vm_is_an_invalid_state() {
        let (sup, _) = running();
        assert_eq!(kind(sup.execute(&Command::Resume)), ErrorKind::InvalidState);
    }

    #[test]
    fn shutdown_of_a_paused_vm_asks_to_resume_first() {
        let (sup, control) = running();
        sup.execute(&Command::Pause).expect("pause");
        let err = sup.execute(&Command::Shutdown).expect_err("refused");
        assert!(err.message.contains("vmux resume t"), "{}", err.message);
        assert_eq!(control.power_presses.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn reboot_presses_the_button_and_marks_the_next_power_off() {
        let (sup, control) = running();
        sup.execute(&Command::Reboot).expect("reboot");
        assert_eq!(control.power_presses.load(Ordering::SeqCst), 1);
        assert!(sup.boot_ended().reboot_requested);
    }

    #[test]
    fn shutdown_does_not_mark_a_reboot() {
        let (sup, _) = running();
        sup.execute(&Command::Shutdown).expect("shutdown");
        assert!(!sup.boot_ended().reboot_requested);
    }

    #[test]
    fn commands_between_boots_say_so() {
        let (sup, _) = running();
        sup.boot_ended();
        let err = sup.execute(&Command::Pause).expect_err("no boot");
        assert!(err.message.contains("between boots"), "{}", err.message);
    }

    #[test]
    fn destroy_during_a_reboot_destroys_the_next_boot_at_once() {
        let (sup, _) = running();
        sup.boot_ended();
        sup.execute(&Command::Destroy).expect("destroy");
        let next = Arc::new(FakeControl::default());
        sup.boot_started(next.clone());
        assert_eq!(next.destroys.load(Ordering::SeqCst), 1);
        assert!(sup.boot_ended().destroy_requested);
    }

    #[test]
    fn set_vcpus_reaches_the_engine() {
        let (sup, control) = running();
        sup.execute(&Command::SetVcpus { count: 3 })
            .expect("set_vcpus");
        assert_eq!(control.vcpus_requested.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn set_vcpus_above_max_is_refused_naming_the_limit() {
        let (sup, control) = running();
        let err = sup
            .execute(&Command::SetVcpus { count: 5 })
            .expect_err("above max");
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        assert!(err.message.contains("1 to 4"), "{}", err.message);
        assert_eq!(control.vcpus_requested.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn set_vcpus_of_a_paused_vm_asks_to_resume_first() {
        let (sup, control) = running();
        sup.execute(&Command::Pause).expect("pause");
        let err = sup
            .execute(&Command::SetVcpus { count: 3 })
            .expect_err("paused");
        assert!(err.message.contains("vmux resume t"), "{}", err.message);
        assert_eq!(control.vcpus_requested.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn guest_vcpu_changes_are_pushed_as_events() {
        let (sup, _) = running();
        let rx = sup.events().subscribe().expect("open");
        sup.vcpus_changed(3);
        assert_eq!(rx.try_recv().expect("event"), Event::Vcpus { vcpus: 3 });
    }

    #[test]
    fn state_changes_are_pushed_to_subscribers() {
        let (sup, _) = running();
        let rx = sup.events().subscribe().expect("open");
        sup.execute(&Command::Pause).expect("pause");
        assert_eq!(
            rx.try_recv().expect("event"),
            Event::State {
                state: RunState::Paused,
                reason: None
            }
        );
    }

    #[test]
    fn the_sampler_sees_the_disks_by_their_targets() {
        let disk = |path: &str| crate::engine::DiskSpec {
            path: path.into(),
            read_only: false,
            serial: String::new(),
            backend: None,
        };
        let spec = VmSpec {
            disks: vec![disk("/a.raw"), disk("/b.raw")],
            ..spec()
        };
        let sup = Supervisor::new(&spec, 99, Arc::new(ConsoleRing::new(64)), None)
            .with_disk_targets(vec!["vda".into(), "vdb".into()]);
        sup.boot_started(Arc::new(FakeControl::default()));

        let view = sup.boot_view().expect("a boot runs");

        assert_eq!(view.facts.disk_targets, ["vda", "vdb"]);
    }

    #[test]
    fn a_crash_is_persisted_with_its_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let sup = Supervisor::new(
            &spec(),
            7,
            Arc::new(ConsoleRing::new(64)),
            Some(path.clone()),
        );
        sup.boot_started(Arc::new(FakeControl::default()));
        sup.finished(&ExitReason::Crashed {
            reason: "triple fault".into(),
        });
        let file = StateFile::read(&path).expect("read").expect("present");
        assert_eq!(file.state, RunState::Crashed);
        assert_eq!(file.reason.as_deref(), Some("triple fault"));
        assert_eq!(file.pid, 7);
    }
}
