//! The CPU hotplug controller: which vCPU slots are plugged, which the guest has brought up,
//! and the register block (`layout::CPU_HOTPLUG_PORT`) through which the guest's ACPI code
//! (`\_SB_.CPUS`, acpi/cpus.rs) or the guest kit learns about insertions and removals.
//!
//! The register layout is the one Linux already drives on Cloud Hypervisor's CPU manager:
//!
//! | offset | width | what |
//! |---|---|---|
//! | 0 | 4 | `CSEL`: the selected slot (vCPU index = APIC id) |
//! | 4 | 1 | flags of the selected slot: bit 0 `CPEN` enabled (plugged), bit 1 `CINS` inserting, bit 2 `CRMV` removing, bit 3 `CEJ0` eject |
//! | 5..12 | | reserved: read as 0, writes ignored |
//!
//! Reading the flags reports the slot; writing 1 to `CINS` or `CRMV` acknowledges the
//! insertion or removal notice (the scan method does, after notifying the processor object);
//! writing 1 to `CEJ0` ejects the slot, which vmux honours only for a slot the host asked to
//! remove, and never for vCPU 0. An eject asks the slot's vCPU thread to stop
//! ([`Lifecycle::request_stop`]); the thread ends on its own, no lock held here waits for it.
//!
//! A slot's life: absent → plugged (`inserting` until acknowledged; counted *online* once the
//! guest has started it with INIT/SIPI, which the vCPU thread reports through
//! [`CpuHotplug::vcpu_started`]) → removal requested (`removing` until acknowledged) → ejected
//! (absent again). Boot vCPUs start plugged and online.
//!
//! Lock order: this controller's lock is taken before the lifecycle's, never after. The
//! [`VmObserver`] is always called with no lock held.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use super::super::VmObserver;
use super::super::devices::bus::{self, BusDevice};
use super::super::devices::ged::Ged;
use super::super::layout;
use super::super::lifecycle::Lifecycle;
use super::super::vcpu::VcpuStats;

mod state;

/// Ports the register block spans.
pub const PORT_COUNT: u64 = 12;
/// Offset of `CSEL`, the slot selector (4 bytes).
pub const SELECT_OFFSET: u64 = 0;
/// Offset of the flags byte of the selected slot.
pub const FLAGS_OFFSET: u64 = 4;
/// Flags bit: the slot is plugged (a vCPU thread runs it).
pub const FLAG_ENABLED: u8 = 1 << 0;
/// Flags bit: the slot was plugged and the guest has not acknowledged it yet.
pub const FLAG_INSERTING: u8 = 1 << 1;
/// Flags bit: the host asks the guest to remove the slot; not acknowledged yet.
pub const FLAG_REMOVING: u8 = 1 << 2;
/// Flags bit (write only): eject the slot.
pub const FLAG_EJECT: u8 = 1 << 3;

/// One possible vCPU.
#[derive(Debug, Default, Clone)]
struct Slot {
    /// A vCPU thread runs it (`CPEN`).
    plugged: bool,
    /// The guest has started it (or it was present at boot).
    online: bool,
    /// Insertion not yet acknowledged (`CINS`).
    inserting: bool,
    /// Removal notice not yet acknowledged (`CRMV`).
    removing: bool,
    /// The host wants it gone: the guest's eject is honoured.
    remove_requested: bool,
    /// Its thread's counters while plugged.
    stats: Option<Arc<VcpuStats>>,
}

#[derive(Debug)]
struct Slots {
    selected: u32,
    slots: Vec<Slot>,
}

impl Slots {
    fn online(&self) -> u32 {
        self.slots.iter().filter(|s| s.plugged && s.online).count() as u32
    }

    fn selected_slot(&mut self) -> Option<&mut Slot> {
        self.slots.get_mut(self.selected as usize)
    }
}

/// What [`CpuHotplug::plan_resize`] decided.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResizePlan {
    /// Slots to plug now, ascending: the caller creates and starts their vCPUs, then calls
    /// [`CpuHotplug::plug_hot`] for each.
    pub add: Vec<u32>,
    /// Slots whose removal was requested by this plan (the guest is asked to eject them).
    pub remove: Vec<u32>,
    /// Slots whose pending removal this plan cancelled (they stay plugged).
    pub kept: Vec<u32>,
}

/// The CPU hotplug controller of one boot; shared by the register device, the vCPU threads
/// and the VM's control handle.
pub struct CpuHotplug {
    state: Mutex<Slots>,
    lifecycle: Arc<Lifecycle>,
    ged: Arc<Mutex<Ged>>,
    observer: RwLock<Option<Arc<dyn VmObserver>>>,
}

impl CpuHotplug {
    /// A controller for `max_vcpus` slots, all absent; ejects stop threads through
    /// `lifecycle`, notices go out through `ged`.
    pub fn new(max_vcpus: u32, lifecycle: Arc<Lifecycle>, ged: Arc<Mutex<Ged>>) -> CpuHotplug {
        CpuHotplug {
            state: Mutex::new(Slots {
                selected: 0,
                slots: vec![Slot::default(); max_vcpus as usize],
            }),
            lifecycle,
            ged,
            observer: RwLock::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // Every update is a few field stores; a panic elsewhere cannot leave a slot in a state
        // worse than refusing all service would.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Who hears about online-count changes from now on.
    pub fn set_observer(&self, observer: Arc<dyn VmObserver>) {
        *self
            .observer
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(observer);
    }

    fn announce(&self, online: u32) {
        let observer = self
            .observer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(observer) = observer {
            observer.vcpus_changed(online);
        }
    }

    /// Number of slots (`max_vcpus`).
    pub fn max_vcpus(&self) -> u32 {
        self.lock().slots.len() as u32
    }

    /// Marks boot vCPU `index` plugged and online.
    pub fn plug_boot(&self, index: u32, stats: Arc<VcpuStats>) {
        if let Some(slot) = self.lock().slots.get_mut(index as usize) {
            *slot = Slot {
                plugged: true,
                online: true,
                stats: Some(stats),
                ..Slot::default()
            };
        }
    }

    /// Marks hot-added vCPU `index` plugged and inserting (not online until the guest starts
    /// it). Its thread must already run.
    pub fn plug_hot(&self, index: u32, stats: Arc<VcpuStats>) {
        if let Some(slot) = self.lock().slots.get_mut(index as usize) {
            *slot = Slot {
                plugged: true,
                inserting: true,
                stats: Some(stats),
                ..Slot::default()
            };
        }
    }

    /// Plans the change to `count` plugged vCPUs (`1 <= count <= max_vcpus`, checked by the
    /// caller): slots `count..` that are plugged get a removal request, slots `..count` with
    /// a pending removal keep running, and absent slots `..count` are returned to be added.
    pub fn plan_resize(&self, count: u32) -> ResizePlan {
        let mut plan = ResizePlan::default();
        let mut state = self.lock();
        for (index, slot) in state.slots.iter_mut().enumerate() {
            let index = index as u32;
            let wanted = index < count;
            match (wanted, slot.plugged, slot.remove_requested) {
                (true, false, _) => plan.add.push(index),
                (true, true, true) => {
                    slot.remove_requested = false;
                    slot.removing = false;
                    plan.kept.push(index);
                }
                // vCPU 0 is never removed (count >= 1 keeps it, this guards a bad caller).
                (false, true, false) if index != 0 => {
                    slot.remove_requested = true;
                    slot.removing = true;
                    slot.inserting = false;
                    plan.remove.push(index);
                }
                _ => {}
            }
        }
        plan
    }

    /// Raises the GED's CPU hotplug event so the guest scans the slots.
    pub fn notify_guest(&self) -> std::io::Result<()> {
        bus::lock(&self.ged).notify(layout::GED_EVENT_CPU_HOTPLUG)
    }

    /// The vCPU thread of slot `index` saw the guest start its vCPU (INIT/SIPI): it counts as
    /// online from now on.
    pub fn vcpu_started(&self, index: u32) {
        let online = {
            let mut state = self.lock();
            let Some(slot) = state.slots.get_mut(index as usize) else {
                return;
            };
            if !slot.plugged || slot.online {
                return;
            }
            slot.online = true;
            state.online()
        };
        self.announce(online);
    }

    /// vCPUs plugged and started by the guest (boot vCPUs count from the start).
    pub fn online_count(&self) -> u32 {
        self.lock().online()
    }

    /// vCPUs plugged (including those the guest has not started or is removing).
    #[cfg(test)]
    pub fn plugged_count(&self) -> u32 {
        self.lock().slots.iter().filter(|s| s.plugged).count() as u32
    }

    /// Whether slot `index` is plugged.
    pub fn is_plugged(&self, index: u32) -> bool {
        self.lock()
            .slots
            .get(index as usize)
            .is_some_and(|s| s.plugged)
    }

    /// Counters of every plugged vCPU, by index.
    pub fn stats(&self) -> Vec<(u32, Arc<VcpuStats>)> {
        self.lock()
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.plugged)
            .filter_map(|(i, s)| Some((i as u32, s.stats.clone()?)))
            .collect()
    }

    /// A guest read of `data.len()` bytes at `offset` in the register block.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        let mut state = self.lock();
        let selected = state.selected.to_le_bytes();
        let flags = state.selected_slot().map_or(0, |slot| slot_flags(slot));
        for (i, out) in data.iter_mut().enumerate() {
            *out = match offset.checked_add(i as u64) {
                Some(at @ SELECT_OFFSET..FLAGS_OFFSET) => selected[at as usize],
                Some(FLAGS_OFFSET) => flags,
                _ => 0,
            };
        }
    }

    /// A guest write of `data` at `offset` in the register block.
    pub fn write(&self, offset: u64, data: &[u8]) {
        let mut ejected = None;
        {
            let mut state = self.lock();
            for (i, &byte) in data.iter().enumerate() {
                match offset.checked_add(i as u64) {
                    Some(at @ SELECT_OFFSET..FLAGS_OFFSET) => {
                        let mut bytes = state.selected.to_le_bytes();
                        bytes[at as usize] = byte;
                        state.selected = u32::from_le_bytes(bytes);
                    }
                    Some(FLAGS_OFFSET) => {
                        let index = state.selected;
                        if let Some(slot) = state.selected_slot()
                            && command(slot, index, byte)
                        {
                            ejected = Some(index);
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(index) = ejected {
            self.lifecycle.request_stop(index as usize);
            let online = self.online_count();
            log::info!("the guest ejected vCPU {index}; {online} vCPUs online");
            self.announce(online);
        }
    }
}

/// The flags byte of `slot`.
fn slot_flags(slot: &Slot) -> u8 {
    let mut flags = 0;
    if slot.plugged {
        flags |= FLAG_ENABLED;
    }
    if slot.inserting {
        flags |= FLAG_INSERTING;
    }
    if slot.removing {
        flags |= FLAG_REMOVING;
    }
    flags
}

/// The register block on the I/O bus, at `layout::CPU_HOTPLUG_PORT`.
pub struct Registers(pub Arc<CpuHotplug>);

impl BusDevice for Registers {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.0.read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.0.write(offset, data);
    }
}

/// Applies a write of `byte` to the flags of `slot` (vCPU `index`); returns whether it
/// ejected the slot.
fn command(slot: &mut Slot, index: u32, byte: u8) -> bool {
    if byte & FLAG_INSERTING != 0 {
        slot.inserting = false;
    }
    if byte & FLAG_REMOVING != 0 {
        slot.removing = false;
    }
    if byte & FLAG_EJECT == 0 {
        return false;
    }
    // Only what the host asked to remove goes; vCPU 0 never does.
    if !slot.plugged || !slot.remove_requested || index == 0 {
        log::debug!("ignoring the guest's eject of vCPU {index}: no removal was requested");
        return false;
    }
    *slot = Slot::default();
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use vmm_sys_util::eventfd::EventFd;

    struct CountObserver(AtomicU32);

    impl VmObserver for CountObserver {
        fn vcpus_changed(&self, online: u32) {
            self.0.store(online, Ordering::SeqCst);
        }
        fn disk_removed(&self, _slot: u8) {}
    }

    fn controller(max: u32, boot: u32) -> (CpuHotplug, Arc<Lifecycle>, EventFd) {
        let irq = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
        let ged = Arc::new(Mutex::new(Ged::new(irq.try_clone().expect("clone"))));
        let lifecycle = Arc::new(Lifecycle::new());
        let cpus = CpuHotplug::new(max, lifecycle.clone(), ged);
        for index in 0..boot {
            cpus.plug_boot(index, Arc::default());
        }
        (cpus, lifecycle, irq)
    }

    fn select(cpus: &CpuHotplug, index: u32) {
        cpus.write(SELECT_OFFSET, &index.to_le_bytes());
    }

    fn flags(cpus: &CpuHotplug, index: u32) -> u8 {
        select(cpus, index);
        let mut byte = [0u8];
        cpus.read(FLAGS_OFFSET, &mut byte);
        byte[0]
    }

    #[test]
    fn boot_vcpus_read_enabled_and_the_rest_absent() {
        let (cpus, _, _) = controller(4, 2);
        assert_eq!(flags(&cpus, 1), FLAG_ENABLED);
        assert_eq!(flags(&cpus, 2), 0);
        assert_eq!(cpus.online_count(), 2);
    }

    #[test]
    fn selector_reads_back_what_was_written() {
        let (cpus, _, _) = controller(4, 1);
        select(&cpus, 3);
        let mut data = [0u8; 4];
        cpus.read(SELECT_OFFSET, &mut data);
        assert_eq!(u32::from_le_bytes(data), 3);
    }

    #[test]
    fn growing_plans_the_absent_slots_below_the_count() {
        let (cpus, _, _) = controller(8, 2);
        let plan = cpus.plan_resize(5);
        assert_eq!(plan.add, vec![2, 3, 4]);
        assert!(plan.remove.is_empty());
    }

    #[test]
    fn a_hot_added_slot_is_inserting_until_acknowledged() {
        let (cpus, _, _) = controller(4, 1);
        cpus.plug_hot(1, Arc::default());
        assert_eq!(flags(&cpus, 1), FLAG_ENABLED | FLAG_INSERTING);
        cpus.write(FLAGS_OFFSET, &[FLAG_INSERTING]);
        assert_eq!(flags(&cpus, 1), FLAG_ENABLED);
    }

    #[test]
    fn a_hot_added_vcpu_counts_once_the_guest_starts_it() {
        let (cpus, _, _) = controller(4, 1);
        let observer = Arc::new(CountObserver(AtomicU32::new(0)));
        cpus.set_observer(observer.clone());
        cpus.plug_hot(1, Arc::default());
        assert_eq!(cpus.online_count(), 1);
        cpus.vcpu_started(1);
        assert_eq!(cpus.online_count(), 2);
        assert_eq!(observer.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn shrinking_marks_the_top_slots_removing() {
        let (cpus, _, _) = controller(4, 4);
        let plan = cpus.plan_resize(2);
        assert_eq!(plan.remove, vec![2, 3]);
        assert_eq!(flags(&cpus, 3), FLAG_ENABLED | FLAG_REMOVING);
        assert_eq!(cpus.online_count(), 4, "still online until ejected");
    }

    #[test]
    fn eject_of_a_removed_slot_stops_its_vcpu_and_frees_it() {
        let (cpus, lifecycle, _) = controller(4, 0);
        for index in 0..4 {
            lifecycle.add_vcpu(Arc::new(NoKick));
            cpus.plug_boot(index, Arc::default());
        }
        let observer = Arc::new(CountObserver(AtomicU32::new(0)));
        cpus.set_observer(observer.clone());
        cpus.plan_resize(3);
        select(&cpus, 3);
        cpus.write(FLAGS_OFFSET, &[FLAG_REMOVING]);
        cpus.write(FLAGS_OFFSET, &[FLAG_EJECT]);
        assert_eq!(flags(&cpus, 3), 0);
        assert_eq!(
            lifecycle.checkpoint(3),
            crate::engine::lifecycle::Checkpoint::Exit
        );
        assert_eq!(
            lifecycle.checkpoint(2),
            crate::engine::lifecycle::Checkpoint::Run
        );
        assert_eq!(observer.0.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn eject_without_a_removal_request_is_ignored() {
        let (cpus, _, _) = controller(4, 2);
        select(&cpus, 1);
        cpus.write(FLAGS_OFFSET, &[FLAG_EJECT]);
        assert_eq!(flags(&cpus, 1), FLAG_ENABLED);
    }

    #[test]
    fn vcpu_0_is_never_removed() {
        let (cpus, _, _) = controller(4, 2);
        let plan = cpus.plan_resize(0);
        assert_eq!(plan.remove, vec![1]);
        select(&cpus, 0);
        cpus.write(FLAGS_OFFSET, &[FLAG_EJECT]);
        assert_eq!(flags(&cpus, 0), FLAG_ENABLED);
    }

    #[test]
    fn growing_again_before_the_eject_keeps_the_slot() {
        let (cpus, _, _) = controller(4, 4);
        cpus.plan_resize(3);
        let plan = cpus.plan_resize(4);
        assert_eq!(plan.kept, vec![3]);
        assert!(plan.add.is_empty());
        select(&cpus, 3);
        cpus.write(FLAGS_OFFSET, &[FLAG_EJECT]);
        assert_eq!(flags(&cpus, 3), FLAG_ENABLED, "the late eject is ignored");
    }

    #[test]
    fn out_of_range_selection_reads_zero_and_ignores_writes() {
        let (cpus, _, _) = controller(2, 2);
        select(&cpus, 0xdead_beef);
        let mut data = [0xaau8; 12];
        cpus.read(0, &mut data);
        assert_eq!(&data[4..], &[0; 8]);
        cpus.write(FLAGS_OFFSET, &[0xff]);
        assert_eq!(cpus.plugged_count(), 2);
    }

    #[test]
    fn wide_accesses_past_the_block_are_harmless() {
        let (cpus, _, _) = controller(2, 1);
        let mut data = [0xaau8; 8];
        cpus.read(10, &mut data);
        assert_eq!(data, [0; 8]);
        cpus.write(u64::MAX - 1, &[1, 2, 3, 4]);
        assert_eq!(cpus.plugged_count(), 1);
    }

    #[test]
    fn notify_raises_the_cpu_hotplug_event() {
        let (cpus, _, irq) = controller(2, 1);
        cpus.notify_guest().expect("notify");
        assert_eq!(irq.read().expect("interrupt"), 1);
    }

    struct NoKick;

    impl crate::engine::lifecycle::Kick for NoKick {
        fn kick(&self) {}
    }
}
