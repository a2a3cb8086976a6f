//! The transport as a driver sees it: configuration space, the common configuration, the
//! status state machine, notifications and interrupts, with a recording fake device.

use crate::engine::memory::GuestRam;
use std::sync::Mutex;

use super::*;
use crate::engine::devices::virtio::{ActivateError, STATUS_DEVICE_NEEDS_RESET, VirtioInterrupt};
use crate::engine::pci::testing::FakeVm;
use crate::engine::pci::{COMMAND_MEMORY_SPACE, PciDevice};

const MEM_SIZE: usize = 0x10_0000;
const DEVICE_FEATURE_BIT: u64 = 1 << 5;

/// What the fake device saw.
#[derive(Default)]
struct Seen {
    acked: Option<u64>,
    activated: Vec<(u16, u16)>,
    resets: usize,
    notify: Vec<EventFd>,
    /// The queues as activated (index, state), handed back by `quiesce`.
    queues: Vec<(u16, virtio_queue::QueueState)>,
    quiesced: usize,
}

struct FakeDevice {
    seen: Arc<Mutex<Seen>>,
}

impl VirtioDevice for FakeDevice {
    fn device_type(&self) -> u32 {
        2
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[256, 64]
    }
    fn features(&self) -> u64 {
        DEVICE_FEATURE_BIT
    }
    fn ack_features(&mut self, features: u64) {
        self.seen.lock().unwrap().acked = Some(features);
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        data.fill(offset as u8);
    }
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    fn activate(
        &mut self,
        _mem: GuestRam,
        _interrupt: Arc<dyn VirtioInterrupt>,
        queues: Vec<ActiveQueue>,
    ) -> Result<(), ActivateError> {
        let mut seen = self.seen.lock().unwrap();
        for queue in queues {
            seen.activated.push((queue.index, queue.queue.size()));
            seen.queues.push((queue.index, queue.queue.state()));
            seen.notify.push(queue.notify);
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.seen.lock().unwrap().resets += 1;
    }
    fn quiesce(&mut self) -> Vec<(u16, virtio_queue::QueueState)> {
        let mut seen = self.seen.lock().unwrap();
        seen.quiesced += 1;
        std::mem::take(&mut seen.queues)
    }
    fn save_device(&self) -> crate::engine::snapshot::DeviceState {
        crate::engine::snapshot::DeviceState::Net
    }
    fn restore_device(
        &mut self,
        _state: &crate::engine::snapshot::DeviceState,
    ) -> Result<(), crate::engine::devices::virtio::DeviceStateError> {
        Ok(())
    }
}

struct Driver {
    device: VirtioPciDevice,
    vm: Arc<FakeVm>,
    seen: Arc<Mutex<Seen>>,
}

fn driver() -> Driver {
    let mem = crate::engine::memory::test_ram(0, MEM_SIZE as u64);
    let vm = Arc::new(FakeVm::default());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut bars = AddressAllocator::new(layout::PCI_MMIO_START, layout::PCI_MMIO_SIZE);
    let device = VirtioPciDevice::new(
        Box::new(FakeDevice { seen: seen.clone() }),
        mem,
        vm.clone(),
        &mut bars,
    )
    .unwrap();
    Driver { device, vm, seen }
}

impl Driver {
    fn config8(&mut self, offset: usize) -> u8 {
        let mut data = [0u8];
        self.device.read_config(offset, &mut data);
        data[0]
    }

    fn config32(&mut self, offset: usize) -> u32 {
        let mut data = [0u8; 4];
        self.device.read_config(offset, &mut data);
        u32::from_le_bytes(data)
    }

    fn read(&mut self, offset: u64, len: usize) -> u64 {
        let mut data = [0u8; 8];
        self.device.read_bar(0, offset, &mut data[..len]);
        u64::from_le_bytes(data)
    }

    fn write(&mut self, offset: u64, len: usize, value: u64) {
        self.device
            .write_bar(0, offset, &value.to_le_bytes()[..len]);
    }

    fn status(&mut self) -> u8 {
        self.read(0x14, 1) as u8
    }

    fn set_status(&mut self, status: u8) {
        self.write(0x14, 1, u64::from(status));
    }

    fn accept(&mut self, features: u64) {
        self.write(0x08, 4, 0);
        self.write(0x0c, 4, features & 0xffff_ffff);
        self.write(0x08, 4, 1);
        self.write(0x0c, 4, features >> 32);
    }

    /// ACKNOWLEDGE, DRIVER, accept `features`, FEATURES_OK; returns the status read back.
    fn negotiate(&mut self, features: u64) -> u8 {
        self.set_status(STATUS_ACKNOWLEDGE);
        self.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        self.accept(features);
        self.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        self.status()
    }

    /// Sets up queue 0 with size 16 at valid addresses and enables it.
    fn enable_queue0(&mut self) {
        self.write(0x16, 2, 0);
        self.write(0x18, 2, 16);
        self.write(0x20, 8, 0x1000);
        self.write(0x28, 8, 0x2000);
        self.write(0x30, 8, 0x3000);
        self.write(0x1c, 2, 1);
    }

    fn driver_ok(&mut self) {
        self.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    }

    /// (capability id, cfg_type or 0, offset) for each capability in the list.
    fn capabilities(&mut self) -> Vec<(u8, u8, usize)> {
        let mut caps = Vec::new();
        let mut next = self.config8(0x34) as usize;
        while next != 0 && caps.len() < 48 {
            let id = self.config8(next);
            let cfg_type = if id == VENDOR_CAPABILITY_ID {
                self.config8(next + 3)
            } else {
                0
            };
            caps.push((id, cfg_type, next));
            next = self.config8(next + 1) as usize;
        }
        caps
    }

    fn enable_memory_decoding(&mut self) {
        self.device
            .write_config(0x04, &COMMAND_MEMORY_SPACE.to_le_bytes());
    }
}

const FULL: u64 = VIRTIO_F_VERSION_1 | DEVICE_FEATURE_BIT;
const LIVE: u8 = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;

#[test]
fn config_space_identifies_a_modern_virtio_block_device() {
    let mut d = driver();

    assert_eq!(d.config32(0x00), 0x1042_1af4);
    assert_eq!(d.config32(0x08), 0x0100_0001, "class 01/00, revision 1");
    assert_eq!(d.config32(0x2c), 0x1100_1af4);
}

#[test]
fn bar0_is_a_64bit_memory_bar_in_the_pci_window() {
    let mut d = driver();

    let low = d.config32(0x10);
    let high = d.config32(0x14);

    assert_eq!(low & 0xf, 0b0100);
    assert_eq!(
        u64::from(high) << 32 | u64::from(low & !0xf),
        layout::PCI_MMIO_START
    );
}

#[test]
fn capability_list_has_msix_and_the_five_virtio_structures() {
    let mut d = driver();

    let caps = d.capabilities();

    let kinds: Vec<(u8, u8)> = caps.iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(
        kinds,
        [
            (MSIX_CAPABILITY_ID, 0),
            (VENDOR_CAPABILITY_ID, CAP_COMMON_CFG),
            (VENDOR_CAPABILITY_ID, CAP_ISR_CFG),
            (VENDOR_CAPABILITY_ID, CAP_DEVICE_CFG),
            (VENDOR_CAPABILITY_ID, CAP_NOTIFY_CFG),
            (VENDOR_CAPABILITY_ID, CAP_PCI_CFG),
        ]
    );
    let notify = caps[4].2;
    assert_eq!(
        d.config32(notify + 8),
        NOTIFY_OFFSET as u32,
        "notify offset"
    );
    assert_eq!(d.config32(notify + 16), 4, "notify_off_multiplier");
    let msix = caps[0].2;
    assert_eq!(d.config32(msix) >> 16, 2, "3 vectors: table size - 1");
    assert_eq!(d.config32(msix + 4), MSIX_TABLE_OFFSET as u32);
}

#[test]
fn the_offer_includes_version_1_and_the_device_features() {
    let mut d = driver();

    d.write(0x00, 4, 1);
    let high = d.read(0x04, 4);
    d.write(0x00, 4, 0);
    let low = d.read(0x04, 4);

    assert_eq!(high & 1, 1, "VIRTIO_F_VERSION_1");
    assert_ne!(low & DEVICE_FEATURE_BIT, 0);
}

#[test]
fn features_ok_is_refused_without_version_1() {
    let mut d = driver();

    let status = d.negotiate(DEVICE_FEATURE_BIT);

    assert_eq!(status & STATUS_FEATURES_OK, 0);
    assert_eq!(d.seen.lock().unwrap().acked, None);
}

#[test]
fn features_ok_is_refused_with_features_never_offered() {
    let mut d = driver();

    let status = d.negotiate(FULL | 1 << 40);

    assert_eq!(status & STATUS_FEATURES_OK, 0);
}

#[test]
fn features_ok_hands_the_accepted_features_to_the_device() {
    let mut d = driver();

    let status = d.negotiate(FULL);

    assert_ne!(status & STATUS_FEATURES_OK, 0);
    assert_eq!(d.seen.lock().unwrap().acked, Some(FULL));
}

#[test]
fn driver_ok_activates_only_the_enabled_queues() {
    let mut d = driver();
    d.negotiate(FULL);
    d.enable_queue0();

    d.driver_ok();

    assert_eq!(d.status(), LIVE);
    assert_eq!(d.seen.lock().unwrap().activated, [(0, 16)]);
}

#[test]
fn driver_ok_before_features_ok_is_refused() {
    let mut d = driver();
    d.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER);

    d.set_status(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);

    assert_eq!(d.status(), STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    assert!(d.seen.lock().unwrap().activated.is_empty());
}

#[test]
fn a_queue_outside_guest_memory_needs_reset_instead_of_activating() {
    let mut d = driver();
    d.negotiate(FULL);
    d.enable_queue0();
    d.write(0x16, 2, 1);
    d.write(0x18, 2, 16);
    d.write(0x20, 8, MEM_SIZE as u64);
    d.write(0x1c, 2, 1);

    d.driver_ok();

    assert_ne!(d.status() & STATUS_DEVICE_NEEDS_RESET, 0);
    assert!(d.seen.lock().unwrap().activated.is_empty());
    assert_eq!(d.read(ISR_OFFSET, 1), 2, "configuration change interrupt");
}

#[test]
fn writing_zero_resets_the_device_and_every_register() {
    let mut d = driver();
    d.negotiate(FULL);
    d.enable_queue0();
    d.driver_ok();

    d.set_status(0);

    assert_eq!(d.status(), 0);
    assert_eq!(d.seen.lock().unwrap().resets, 1);
    d.write(0x16, 2, 0);
    assert_eq!(d.read(0x18, 2), 256, "queue size back to the maximum");
    assert_eq!(d.read(0x1c, 2), 0, "queue disabled");
    assert_eq!(d.read(0x20, 8), 0);
}

#[test]
fn the_device_can_be_set_up_again_after_a_reset() {
    let mut d = driver();
    d.negotiate(FULL);
    d.enable_queue0();
    d.driver_ok();
    d.set_status(0);

    d.negotiate(FULL);
    d.enable_queue0();
    d.driver_ok();

    assert_eq!(d.status(), LIVE);
    assert_eq!(d.seen.lock().unwrap().activated.len(), 2);
}

#[test]
fn queue_registers_are_frozen_once_live() {
    let mut d = driver();
    d.negotiate(FULL);
    d.enable_queue0();
    d.driver_ok();

    d.write(0x16, 2, 1);
    d.write(0x18, 2, 8);
    d.write(0x1c, 2, 1);

    assert_eq!(d.read(0x18, 2), 64);
    assert_eq!(d.read(0x1c, 2), 0);
}

#[test]
fn clearing_status_bits_without_reset_is_ignored() {
    let mut d = driver();
    d.negotiate(FULL);

    d.set_status(STATUS_ACKNOWLEDGE);

    assert_eq!(
        d.status(),
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK
    );
}

#[test]
fn notify_write_signals_the_queue_eventfd() {
    let mut d = driver();
    d.negotiate(FULL);
    d.enable_queue0();
    d.driver_ok();

    d.write(NOTIFY_OFFSET, 2, 0);
    d.write(NOTIFY_OFFSET + 4 * 9, 2, 9);

    let seen = d.seen.lock().unwrap();
    assert_eq!(seen.notify[0].read().unwrap(), 1);
}

#[test]
fn ioeventfds_are_registered_at_the_notify_addresses_and_follow_bar0() {
    let mut d = driver();
    let base = layout::PCI_MMIO_START;

    d.enable_memory_decoding();
    let first = d.vm.ioevents.lock().unwrap().clone();
    d.device.write_config(0x10, &0xc010_0000u32.to_le_bytes());
    let moved = d.vm.ioevents.lock().unwrap().clone();

    assert_eq!(first, [base + 0x3000, base + 0x3004]);
    assert_eq!(moved, [0xc010_3000, 0xc010_3004]);
}

#[test]
fn ioeventfds_are_dropped_while_bar0_is_sized() {
    let mut d = driver();
    d.enable_memory_decoding();

    d.device.write_config(0x10, &u32::MAX.to_le_bytes());
    d.device.write_config(0x14, &u32::MAX.to_le_bytes());

    assert!(d.vm.ioevents.lock().unwrap().is_empty());
}

#[test]
fn isr_is_read_to_clear() {
    let mut d = driver();
    d.device.interrupt.signal_queue(0);

    let first = d.read(ISR_OFFSET, 1);
    let second = d.read(ISR_OFFSET, 1);

    assert_eq!((first, second), (1, 0));
}

#[test]
fn device_config_reads_go_to_the_device() {
    let mut d = driver();

    assert_eq!(d.read(DEVICE_CFG_OFFSET + 7, 1), 7);
}

#[test]
fn pci_cfg_window_reaches_the_common_config() {
    let mut d = driver();
    let cap = d.capabilities()[5].2;

    d.device.write_config(cap + 4, &[0]);
    d.device.write_config(cap + 8, &0x12u32.to_le_bytes());
    d.device.write_config(cap + 12, &2u32.to_le_bytes());
    let mut num_queues = [0u8; 2];
    d.device.read_config(cap + 16, &mut num_queues);

    assert_eq!(u16::from_le_bytes(num_queues), 2);
}

#[test]
fn an_unmasked_vector_gets_its_route_once_msix_is_enabled() {
    let mut d = driver();
    let msix = d.capabilities()[0].2;
    d.write(MSIX_TABLE_OFFSET, 8, 0xfee0_0000);
    d.write(MSIX_TABLE_OFFSET + 8, 4, 0x41);
    d.write(MSIX_TABLE_OFFSET + 12, 4, 0);
    let before = d.vm.routes.lock().unwrap().len();

    d.device.write_config(msix + 2, &0x8000u16.to_le_bytes());

    assert_eq!(before, 0, "no route while MSI-X is disabled");
    let routes = d.vm.routes.lock().unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!((routes[0].1.address, routes[0].1.data), (0xfee0_0000, 0x41));
}

#[test]
fn msix_table_past_the_last_vector_reads_zero() {
    let mut d = driver();

    d.write(MSIX_TABLE_OFFSET + 3 * 16, 4, 0x1234);

    assert_eq!(d.read(MSIX_TABLE_OFFSET + 3 * 16, 4), 0);
    assert_eq!(
        d.read(MSIX_TABLE_OFFSET + 12, 4),
        1,
        "vector 0 starts masked"
    );
}

#[test]
fn a_device_with_too_large_queues_is_refused() {
    struct Huge;
    impl VirtioDevice for Huge {
        fn device_type(&self) -> u32 {
            2
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[512]
        }
        fn features(&self) -> u64 {
            0
        }
        fn ack_features(&mut self, _features: u64) {}
        fn read_config(&self, _offset: u64, _data: &mut [u8]) {}
        fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
        fn activate(
            &mut self,
            _mem: GuestRam,
            _interrupt: Arc<dyn VirtioInterrupt>,
            _queues: Vec<ActiveQueue>,
        ) -> Result<(), ActivateError> {
            Ok(())
        }
        fn reset(&mut self) {}
        fn quiesce(&mut self) -> Vec<(u16, virtio_queue::QueueState)> {
            Vec::new()
        }
        fn save_device(&self) -> crate::engine::snapshot::DeviceState {
            crate::engine::snapshot::DeviceState::Net
        }
        fn restore_device(
            &mut self,
            _state: &crate::engine::snapshot::DeviceState,
        ) -> Result<(), crate::engine::devices::virtio::DeviceStateError> {
            Ok(())
        }
    }
    let mem = crate::engine::memory::test_ram(0, MEM_SIZE as u64);
    let mut bars = AddressAllocator::new(layout::PCI_MMIO_START, layout::PCI_MMIO_SIZE);

    let result = VirtioPciDevice::new(Box::new(Huge), mem, Arc::new(FakeVm::default()), &mut bars);

    assert!(matches!(result, Err(VirtioPciError::InvalidQueues { .. })));
}

#[test]
fn a_restored_function_reads_back_like_the_saved_one_and_runs_its_queues() {
    let mut d = driver();
    d.enable_memory_decoding();
    d.negotiate(FULL);
    d.write(0x10, 2, 0);
    d.write(0x16, 2, 0);
    d.write(0x1a, 2, 1);
    d.enable_queue0();
    d.driver_ok();
    d.device.quiesce();
    let saved = d
        .device
        .save_state(3, crate::engine::snapshot::FunctionKind::Balloon);

    let mut restored = driver();
    restored
        .device
        .restore_state(&saved)
        .expect("restore the saved function");

    for offset in [
        0x00u64, 0x04, 0x0c, 0x10, 0x14, 0x18, 0x1a, 0x1c, 0x20, 0x28, 0x30,
    ] {
        assert_eq!(
            restored.read(offset, 2),
            d.read(offset, 2),
            "offset {offset:#x}"
        );
    }
    assert_eq!(restored.status(), LIVE);
    assert_eq!(restored.seen.lock().unwrap().activated, [(0, 16)]);
    restored.device.quiesce();
    assert_eq!(restored.device.save_state(3, saved.kind), saved);
}

#[test]
fn a_quiesced_function_carries_on_after_resume() {
    let mut d = driver();
    d.negotiate(FULL);
    d.enable_queue0();
    d.driver_ok();

    d.device.quiesce();
    d.device.resume();

    let seen = d.seen.lock().unwrap();
    assert_eq!(seen.quiesced, 1);
    assert_eq!(seen.activated, [(0, 16), (0, 16)], "activated again");
}

#[test]
fn a_saved_queue_size_no_driver_could_set_is_refused() {
    let mut d = driver();
    d.negotiate(FULL);
    d.enable_queue0();
    d.driver_ok();
    d.device.quiesce();
    let mut saved = d
        .device
        .save_state(3, crate::engine::snapshot::FunctionKind::Balloon);
    saved.transport.queues[0].size = 300;

    let err = driver().device.restore_state(&saved).expect_err("bad size");

    assert!(err.to_string().contains("queue 0 has size 300"), "{err}");
}
