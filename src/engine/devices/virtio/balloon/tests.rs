//! virtio-balloon end to end without KVM: the PCI transport, the worker thread, and a driver
//! that lays its rings out by hand, as Linux's virtio_balloon does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::memory::GuestRam;
use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_NEXT;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestAddress};

use super::{Balloon, F_REPORTING, F_STATS_VQ, VirtioBalloon};
use crate::engine::devices::virtio::VIRTIO_F_VERSION_1;
use crate::engine::devices::virtio::pci::VirtioPciDevice;
use crate::engine::layout;
use crate::engine::pci::testing::FakeVm;
use crate::engine::pci::{AddressAllocator, PciDevice};

const MIB: u64 = 1 << 20;
/// Ring pages: queue n at RINGS + n * 0x1000 (descriptors, then available, then used).
const RINGS: u64 = 0x1_0000;
/// Buffers the driver hands over.
const BUFFERS: u64 = 0x2_0000;
/// Memory the tests give back.
const VICTIM: u64 = 4 * MIB;
const NOTIFY: u64 = 0x3000;
const DEVICE_CFG: u64 = 0x2000;
const QUEUE_SIZE: u16 = 16;

struct Rig {
    mem: GuestRam,
    transport: VirtioPciDevice,
    balloon: Balloon,
    /// Available index of each queue.
    next: [u16; 4],
}

fn rig(features: u64) -> Rig {
    let mem = crate::engine::memory::create_guest_memory(16 * MIB).expect("map");
    let balloon = Balloon::default();
    let mut bars = AddressAllocator::new(layout::PCI_MMIO_START, layout::PCI_MMIO_SIZE);
    let transport = VirtioPciDevice::new(
        Box::new(VirtioBalloon::new(balloon.clone())),
        mem.clone(),
        Arc::new(FakeVm::default()),
        &mut bars,
    )
    .expect("transport");
    let mut rig = Rig {
        mem,
        transport,
        balloon,
        next: [0; 4],
    };
    rig.initialise(features);
    rig
}

impl Rig {
    fn read(&mut self, offset: u64, len: usize) -> u64 {
        let mut data = [0u8; 8];
        self.transport.read_bar(0, offset, &mut data[..len]);
        u64::from_le_bytes(data)
    }

    fn write(&mut self, offset: u64, len: usize, value: u64) {
        self.transport
            .write_bar(0, offset, &value.to_le_bytes()[..len]);
    }

    fn ring(queue: u16) -> (u64, u64, u64) {
        let base = RINGS + 0x1000 * u64::from(queue);
        (base, base + 0x100, base + 0x200)
    }

    /// The driver's initialisation with `features` and as many queues as they call for.
    fn initialise(&mut self, features: u64) {
        self.write(0x14, 1, 1);
        self.write(0x14, 1, 3);
        let accepted = features | VIRTIO_F_VERSION_1;
        self.write(0x08, 4, 0);
        self.write(0x0c, 4, accepted & 0xffff_ffff);
        self.write(0x08, 4, 1);
        self.write(0x0c, 4, accepted >> 32);
        self.write(0x14, 1, 0xb);
        let queues =
            2 + u16::from(features & F_STATS_VQ != 0) + u16::from(features & F_REPORTING != 0);
        for queue in 0..queues {
            let (desc, avail, used) = Rig::ring(queue);
            self.write(0x16, 2, u64::from(queue));
            self.write(0x18, 2, u64::from(QUEUE_SIZE));
            self.write(0x20, 8, desc);
            self.write(0x28, 8, avail);
            self.write(0x30, 8, used);
            self.write(0x1c, 2, 1);
        }
        self.write(0x14, 1, 0xf);
        assert_eq!(self.read(0x14, 1), 0xf, "the device went live");
    }

    /// Puts `buffers` (address, length) as one device-readable chain on `queue`, notifies it,
    /// and waits until the device returns it (unless `wait` is false).
    fn submit(&mut self, queue: u16, buffers: &[(u64, u32)], wait: bool) {
        let (table, avail, used) = Rig::ring(queue);
        let head = self.next[usize::from(queue)] % QUEUE_SIZE * 2 % QUEUE_SIZE;
        for (i, &(addr, len)) in buffers.iter().enumerate() {
            let index = head + i as u16;
            let flags = if i + 1 < buffers.len() {
                VRING_DESC_F_NEXT as u16
            } else {
                0
            };
            let desc = RawDescriptor::from(Descriptor::new(addr, len, flags, index + 1));
            self.mem
                .write_obj(desc, GuestAddress(table + 16 * u64::from(index)))
                .expect("descriptor");
        }
        let idx = self.next[usize::from(queue)];
        let slot = avail + 4 + 2 * u64::from(idx % QUEUE_SIZE);
        self.mem.write_obj(head, GuestAddress(slot)).expect("avail");
        self.mem
            .write_obj(idx.wrapping_add(1), GuestAddress(avail + 2))
            .expect("avail idx");
        self.next[usize::from(queue)] = idx.wrapping_add(1);
        self.write(NOTIFY + 4 * u64::from(queue), 2, u64::from(queue));
        if wait {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let used_idx: u16 = self.mem.read_obj(GuestAddress(used + 2)).expect("used");
                if used_idx == idx.wrapping_add(1) {
                    return;
                }
                assert!(Instant::now() < deadline, "the device kept the buffer");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn wait_until(&self, what: &str, mut done: impl FnMut(&Balloon) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(&self.balloon) {
            assert!(Instant::now() < deadline, "{what} never happened");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn pfns(first: u64, count: u32) -> Vec<u8> {
    (0..count)
        .flat_map(|i| ((first / 4096) as u32 + i).to_le_bytes())
        .collect()
}

#[test]
fn inflated_pages_read_as_zero_and_count_as_released() {
    let mut rig = rig(0);
    rig.mem
        .write_slice(&[0x77; 8 * 4096], GuestAddress(VICTIM))
        .expect("fill");
    rig.mem
        .write_slice(&pfns(VICTIM, 8), GuestAddress(BUFFERS))
        .expect("pfns");

    rig.submit(0, &[(BUFFERS, 32)], true);

    let mut page = [0xffu8; 4096];
    rig.mem
        .read_slice(&mut page, GuestAddress(VICTIM + 7 * 4096))
        .expect("read");
    assert!(page.iter().all(|&b| b == 0));
    assert_eq!(rig.balloon.info().released_bytes, 8 * 4096);
}

#[test]
fn page_numbers_outside_ram_are_skipped_and_the_buffer_still_completes() {
    let mut rig = rig(0);
    rig.mem
        .write_slice(&pfns(64 * MIB, 2), GuestAddress(BUFFERS))
        .expect("pfns");

    rig.submit(0, &[(BUFFERS, 8)], true);

    assert_eq!(rig.balloon.info().released_bytes, 0);
}

#[test]
fn a_new_target_shows_in_the_configuration_and_bumps_its_generation() {
    let mut rig = rig(0);
    let generation = rig.read(0x15, 1);

    rig.balloon.set_target(64 * MIB);

    assert_eq!(rig.read(DEVICE_CFG, 4), 64 * MIB / 4096);
    assert_eq!(rig.read(0x15, 1), generation + 1);
    assert!(rig.balloon.info().driver_ready);
}

#[test]
fn the_driver_reports_its_actual_size_through_the_configuration() {
    let mut rig = rig(0);

    rig.write(DEVICE_CFG + 4, 4, 300);

    assert_eq!(rig.read(DEVICE_CFG + 4, 4), 300);
    assert_eq!(rig.balloon.info().actual_bytes, 300 * 4096);
}

#[test]
fn statistics_from_the_stats_queue_are_kept_with_the_buffer() {
    let mut rig = rig(F_STATS_VQ);
    let mut stats = Vec::new();
    for (tag, value) in [(4u16, 100 * MIB), (5, 256 * MIB), (6, 120 * MIB), (2, 7)] {
        stats.extend_from_slice(&tag.to_le_bytes());
        stats.extend_from_slice(&value.to_le_bytes());
    }
    rig.mem
        .write_slice(&stats, GuestAddress(BUFFERS))
        .expect("stats");

    rig.submit(2, &[(BUFFERS, stats.len() as u32)], false);

    rig.wait_until("the statistics", |b| b.info().stats.free.is_some());
    let info = rig.balloon.info().stats;
    assert_eq!(
        (info.free, info.total, info.available, info.major_faults),
        (Some(100 * MIB), Some(256 * MIB), Some(120 * MIB), Some(7))
    );
    assert!(info.updated_at.is_some());
}

#[test]
fn reported_free_ranges_are_released_before_the_buffer_returns() {
    let mut rig = rig(F_STATS_VQ | F_REPORTING);
    rig.mem
        .write_slice(&[0x55; 4 * 4096], GuestAddress(VICTIM))
        .expect("fill");

    rig.submit(
        3,
        &[(VICTIM, 2 * 4096), (VICTIM + 2 * 4096, 2 * 4096)],
        true,
    );

    let mut page = [0xffu8; 4096];
    rig.mem
        .read_slice(&mut page, GuestAddress(VICTIM + 3 * 4096))
        .expect("read");
    assert!(page.iter().all(|&b| b == 0));
    assert_eq!(rig.balloon.info().released_bytes, 4 * 4096);
}

#[test]
fn a_quiesced_balloon_keeps_its_target_and_stats_buffer_in_its_saved_state() {
    let mut rig = rig(F_STATS_VQ);
    rig.mem
        .write_slice(&[4u8, 0, 1, 0, 0, 0, 0, 0, 0, 0], GuestAddress(BUFFERS))
        .expect("stats");
    rig.submit(2, &[(BUFFERS, 10)], false);
    rig.wait_until("the statistics", |b| b.info().stats.free.is_some());
    rig.balloon.set_target(32 * MIB);

    rig.transport.quiesce();
    let saved = rig
        .transport
        .save_state(31, crate::engine::snapshot::FunctionKind::Balloon);

    let crate::engine::snapshot::DeviceState::Balloon(state) = &saved.device else {
        panic!("not a balloon state: {saved:?}");
    };
    assert_eq!(state.target_pages, (32 * MIB / 4096) as u32);
    assert_eq!(state.stats_head, Some(0));
    assert_eq!(saved.transport.progress.len(), 3);
}
