//! A scriptable stand-in for the engine, for unit tests of the supervisor, boot loop and
//! control server without KVM. Its machines print a banner when started and end a boot the
//! way a cooperative guest would: the power button powers off, `reset` resets, `destroy`
//! destroys, and tests can crash one with [`FakeControl::crash`].

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use super::machine::{Engine, Machine, MachineControl, MachineError};
use crate::engine::{DiskSpec, EngineStats, SerialSink, VcpuCounters, VmExit, VmObserver, VmSpec};

/// Records what it was asked and ends the boot accordingly.
#[derive(Default)]
pub struct FakeControl {
    /// Whether `pause` was called last (vs `resume`).
    pub paused: AtomicBool,
    /// Power button presses.
    pub power_presses: AtomicU32,
    /// `reset` calls.
    pub resets: AtomicU32,
    /// `destroy` calls.
    pub destroys: AtomicU32,
    /// Serial input received.
    pub input: Mutex<Vec<u8>>,
    /// The last `set_vcpus` count (0: never called).
    pub vcpus_requested: AtomicU32,
    /// Who hears hotplug facts.
    pub observer: Mutex<Option<Arc<dyn VmObserver>>>,
    /// Disks plugged, by slot (boot disks from slot 1).
    pub disk_slots: Mutex<Vec<u8>>,
    /// Slots whose removal was requested.
    pub detached: Mutex<Vec<u8>>,
    /// The last balloon target asked for, bytes.
    pub balloon_target: Mutex<Option<u64>>,
    /// A save fails with this message instead of writing.
    pub fail_save: Mutex<Option<String>>,
    exit: Mutex<Option<Sender<VmExit>>>,
}

impl FakeControl {
    fn end(&self, exit: VmExit) {
        if let Some(tx) = self.exit.lock().expect("exit").as_ref() {
            let _ = tx.send(exit);
        }
    }

    /// Ends the boot as a guest fault would.
    pub fn crash(&self, reason: &str) {
        self.end(VmExit::Crashed(reason.into()));
    }

    /// Plays the guest onlining or ejecting vCPUs: the observer hears `online`.
    pub fn guest_changed_vcpus(&self, online: u32) {
        let observer = self.observer.lock().expect("observer").clone();
        if let Some(observer) = observer {
            observer.vcpus_changed(online);
        }
    }
}

impl MachineControl for FakeControl {
    fn pause(&self) -> Result<(), MachineError> {
        self.paused.store(true, Ordering::SeqCst);
        Ok(())
    }
    fn resume(&self) -> Result<(), MachineError> {
        self.paused.store(false, Ordering::SeqCst);
        Ok(())
    }
    fn power_button(&self) {
        self.power_presses.fetch_add(1, Ordering::SeqCst);
        self.end(VmExit::PowerOff);
    }
    fn reset(&self) {
        self.resets.fetch_add(1, Ordering::SeqCst);
        self.end(VmExit::Reset);
    }
    fn destroy(&self) {
        self.destroys.fetch_add(1, Ordering::SeqCst);
        self.end(VmExit::Destroyed);
    }
    fn serial_input(&self, bytes: &[u8]) -> usize {
        self.input.lock().expect("input").extend_from_slice(bytes);
        bytes.len()
    }
    fn vcpu_count(&self) -> u32 {
        2
    }
    fn set_vcpus(&self, count: u32) -> Result<(), MachineError> {
        self.vcpus_requested.store(count, Ordering::SeqCst);
        Ok(())
    }
    fn set_observer(&self, observer: Arc<dyn VmObserver>) {
        *self.observer.lock().expect("observer") = Some(observer);
    }
    fn attach_disk(&self, _disk: &DiskSpec) -> Result<u8, MachineError> {
        let mut slots = self.disk_slots.lock().expect("slots");
        let slot = (1..32u8)
            .find(|s| !slots.contains(s))
            .ok_or("the fake bus is full")?;
        slots.push(slot);
        slots.sort_unstable();
        Ok(slot)
    }
    fn detach_disk(&self, slot: u8) -> Result<(), MachineError> {
        self.detached.lock().expect("detached").push(slot);
        Ok(())
    }
    fn force_detach_disk(&self, slot: u8) -> Result<(), MachineError> {
        self.disk_slots
            .lock()
            .expect("slots")
            .retain(|s| *s != slot);
        let observer = self.observer.lock().expect("observer").clone();
        if let Some(observer) = observer {
            observer.disk_removed(slot);
        }
        Ok(())
    }
    fn disk_slots(&self) -> Vec<u8> {
        self.disk_slots.lock().expect("slots").clone()
    }
    fn stats(&self) -> EngineStats {
        EngineStats {
            vcpus: vec![VcpuCounters {
                index: 0,
                tid: std::process::id(),
                exits: 10,
            }],
            memory_bytes: 64 << 20,
            memory_touched_bytes: 1 << 20,
            disks: Vec::new(),
            nics: Vec::new(),
            balloon: self.balloon(),
        }
    }
    /// Writes the owner's record to `path` (no VM state: the fake has none).
    fn save(
        &self,
        path: &std::path::Path,
        owner: &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<crate::engine::SaveReport, MachineError> {
        if let Some(message) = self.fail_save.lock().expect("fail").clone() {
            return Err(message.into());
        }
        let record = owner()?;
        std::fs::write(path, &record)?;
        Ok(crate::engine::SaveReport {
            file_bytes: record.len() as u64,
            memory_bytes: 0,
            touched_bytes: 0,
        })
    }
    fn set_balloon_target(&self, bytes: u64) -> Result<(), MachineError> {
        *self.balloon_target.lock().expect("balloon") = Some(bytes);
        Ok(())
    }
    fn balloon(&self) -> Option<crate::engine::BalloonInfo> {
        let target = (*self.balloon_target.lock().expect("balloon"))?;
        Some(crate::engine::BalloonInfo {
            target_bytes: target,
            actual_bytes: target,
            released_bytes: target,
            driver_ready: true,
            stats: crate::engine::BalloonStats {
                free: Some(1 << 20),
                ..Default::default()
            },
        })
    }
}

/// Builds [`FakeControl`]-driven machines and remembers each boot's control.
pub struct FakeEngine {
    /// Text each boot prints on start.
    pub banner: &'static [u8],
    /// Boots from this number on (1-based) fail to build.
    pub fail_from_boot: Option<u32>,
    /// Every boot's control, in order.
    pub controls: Mutex<Vec<Arc<FakeControl>>>,
}

impl FakeEngine {
    /// An engine whose boots all succeed and print `banner`.
    pub fn new(banner: &'static [u8]) -> FakeEngine {
        FakeEngine {
            banner,
            fail_from_boot: None,
            controls: Mutex::new(Vec::new()),
        }
    }

    /// The control of boot `n` (1-based).
    pub fn control(&self, n: usize) -> Arc<FakeControl> {
        Arc::clone(&self.controls.lock().expect("controls")[n - 1])
    }

    /// Boots built so far.
    pub fn boots(&self) -> usize {
        self.controls.lock().expect("controls").len()
    }
}

struct FakeMachine {
    control: Arc<FakeControl>,
    exits: Receiver<VmExit>,
    serial: Arc<dyn SerialSink>,
    banner: &'static [u8],
}

impl Engine for FakeEngine {
    fn create(
        &self,
        _spec: &VmSpec,
        serial: Arc<dyn SerialSink>,
    ) -> Result<Box<dyn Machine>, MachineError> {
        let mut controls = self.controls.lock().expect("controls");
        if self
            .fail_from_boot
            .is_some_and(|n| controls.len() as u32 + 1 >= n)
        {
            return Err("fake engine refused to build the VM".into());
        }
        let (tx, rx) = mpsc::channel();
        let control = Arc::new(FakeControl {
            exit: Mutex::new(Some(tx)),
            ..FakeControl::default()
        });
        controls.push(Arc::clone(&control));
        Ok(Box::new(FakeMachine {
            control,
            exits: rx,
            serial,
            banner: self.banner,
        }))
    }

    /// The fake keeps no state: a restore builds a fresh fake machine, as `create` does.
    fn restore(
        &self,
        spec: &VmSpec,
        serial: Arc<dyn SerialSink>,
        _file: &mut crate::engine::snapshot::SaveFile,
    ) -> Result<Box<dyn Machine>, MachineError> {
        self.create(spec, serial)
    }
}

impl Machine for FakeMachine {
    fn start(&mut self) -> Result<(), MachineError> {
        self.serial.write(self.banner);
        Ok(())
    }
    fn control(&self) -> Arc<dyn MachineControl> {
        self.control.clone()
    }
    fn wait(self: Box<Self>) -> VmExit {
        self.exits
            .recv()
            .unwrap_or_else(|_| VmExit::Crashed("fake machine lost its control".into()))
    }
}
