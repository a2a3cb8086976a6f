//! virtio-blk end to end without KVM: a raw image file, the PCI transport, the worker thread,
//! and a driver built from virtio-queue's mock split queue.

use crate::engine::memory::GuestRam;
use std::sync::Arc;
use std::time::{Duration, Instant};

use virtio_bindings::bindings::virtio_blk::{
    VIRTIO_BLK_F_RO, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::RawDescriptor;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

use super::{RawFile, VirtioBlk};
use crate::engine::devices::virtio::pci::VirtioPciDevice;
use crate::engine::devices::virtio::{STATUS_DEVICE_NEEDS_RESET, VIRTIO_F_VERSION_1};
use crate::engine::layout;
use crate::engine::pci::testing::FakeVm;
use crate::engine::pci::{AddressAllocator, PciDevice};

const MEM_SIZE: usize = 0x10_0000;
const RING: u64 = 0x1000;
const HEADER: u64 = 0x1_0000;
const DATA: u64 = 0x2_0000;
const STATUS: u64 = 0x3_0000;
const NOTIFY: u64 = 0x3000;
const DEVICE_CFG: u64 = 0x2000;
const DISK_BYTES: usize = 64 * 512;

struct Rig {
    mem: GuestRam,
    transport: VirtioPciDevice,
    image: tempfile::NamedTempFile,
    counters: Arc<super::DiskCounters>,
    /// Used ring index we expect next.
    completed: u16,
    /// Ring addresses: descriptor table, available ring, used ring.
    rings: (u64, u64, u64),
}

fn rig(read_only: bool) -> Rig {
    let image = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(image.path(), vec![0u8; DISK_BYTES]).unwrap();
    let backend = Arc::new(RawFile::open(image.path(), read_only).unwrap());
    let blk = VirtioBlk::new("blk-test", backend, "serial-1234");
    let counters = blk.counters();
    let mem = crate::engine::memory::test_ram(0, MEM_SIZE as u64);
    let mut bars = AddressAllocator::new(layout::PCI_MMIO_START, layout::PCI_MMIO_SIZE);
    let transport = VirtioPciDevice::new(
        Box::new(blk),
        mem.clone(),
        Arc::new(FakeVm::default()),
        &mut bars,
    )
    .unwrap();
    let mut rig = Rig {
        mem,
        transport,
        image,
        counters,
        completed: 0,
        rings: (0, 0, 0),
    };
    rig.initialise();
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

    fn offered(&mut self) -> u64 {
        self.write(0x00, 4, 0);
        let low = self.read(0x04, 4);
        self.write(0x00, 4, 1);
        low | self.read(0x04, 4) << 32
    }

    /// The driver side of device initialisation, accepting every offered feature.
    fn initialise(&mut self) {
        self.write(0x14, 1, 0);
        self.write(0x14, 1, 1);
        self.write(0x14, 1, 3);
        let features = self.offered();
        assert_ne!(features & VIRTIO_F_VERSION_1, 0);
        self.write(0x08, 4, 0);
        self.write(0x0c, 4, features & 0xffff_ffff);
        self.write(0x08, 4, 1);
        self.write(0x0c, 4, features >> 32);
        self.write(0x14, 1, 0xb);
        // Laying the queue out also zeroes its rings, as a driver does at initialisation.
        let mem = self.mem.clone();
        let queue = MockSplitQueue::create(&mem, GuestAddress(RING), 16);
        self.rings = (
            queue.desc_table_addr().0,
            queue.avail_addr().0,
            queue.used_addr().0,
        );
        self.write(0x16, 2, 0);
        self.write(0x18, 2, 16);
        self.write(0x20, 8, queue.desc_table_addr().0);
        self.write(0x28, 8, queue.avail_addr().0);
        self.write(0x30, 8, queue.used_addr().0);
        self.write(0x1c, 2, 1);
        self.write(0x14, 1, 0xf);
        assert_eq!(self.read(0x14, 1), 0xf);
        self.completed = 0;
    }

    /// Submits `descs` as written (with their own NEXT links) and notifies queue 0.
    fn submit_raw(&mut self, descs: &[RawDescriptor]) {
        let (table, avail, _) = self.rings;
        for (i, desc) in descs.iter().enumerate() {
            self.mem
                .write_obj(*desc, GuestAddress(table + 16 * i as u64))
                .unwrap();
        }
        let idx: u16 = self.mem.read_obj(GuestAddress(avail + 2)).unwrap();
        let slot = avail + 4 + 2 * u64::from(idx % 16);
        self.mem.write_obj(0u16, GuestAddress(slot)).unwrap();
        self.mem
            .write_obj(idx.wrapping_add(1), GuestAddress(avail + 2))
            .unwrap();
        self.write(NOTIFY, 2, 0);
    }

    fn used_idx(&self) -> u16 {
        self.mem.read_obj(GuestAddress(self.rings.2 + 2)).unwrap()
    }

    /// Submits a chain linked in order, waits for the device to complete it and returns
    /// the status byte.
    fn request(&mut self, descs: &[(u64, u32, bool)]) -> u8 {
        let raw: Vec<RawDescriptor> = descs
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, writable))| {
                let mut flags = if writable {
                    VRING_DESC_F_WRITE as u16
                } else {
                    0
                };
                if i + 1 < descs.len() {
                    flags |= VRING_DESC_F_NEXT as u16;
                }
                RawDescriptor::from(Descriptor::new(addr, len, flags, i as u16 + 1))
            })
            .collect();
        self.mem.write_obj(0xaau8, GuestAddress(STATUS)).unwrap();
        self.submit_raw(&raw);
        self.wait_for_used();
        self.mem.read_obj(GuestAddress(STATUS)).unwrap()
    }

    fn wait_for_used(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.used_idx() == self.completed {
            assert!(
                Instant::now() < deadline,
                "the device never completed the request"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        self.completed = self.completed.wrapping_add(1);
    }

    /// Waits for DEVICE_NEEDS_RESET and returns the status byte.
    fn wait_for_needs_reset(&mut self) -> u8 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.read(0x14, 1) as u8;
            if status & STATUS_DEVICE_NEEDS_RESET != 0 {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the device never asked for a reset"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn header(&self, request_type: u32, sector: u64) {
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&request_type.to_le_bytes());
        header[8..16].copy_from_slice(&sector.to_le_bytes());
        self.mem.write_slice(&header, GuestAddress(HEADER)).unwrap();
    }

    fn write_sector(&mut self, sector: u64, fill: u8) -> u8 {
        self.mem
            .write_slice(&[fill; 512], GuestAddress(DATA))
            .unwrap();
        self.header(VIRTIO_BLK_T_OUT, sector);
        self.request(&[(HEADER, 16, false), (DATA, 512, false), (STATUS, 1, true)])
    }

    fn read_sector(&mut self, sector: u64) -> (u8, Vec<u8>) {
        self.mem.write_slice(&[0; 512], GuestAddress(DATA)).unwrap();
        self.header(VIRTIO_BLK_T_IN, sector);
        let status = self.request(&[(HEADER, 16, false), (DATA, 512, true), (STATUS, 1, true)]);
        let mut data = vec![0u8; 512];
        self.mem.read_slice(&mut data, GuestAddress(DATA)).unwrap();
        (status, data)
    }
}

const OK: u8 = VIRTIO_BLK_S_OK as u8;

#[test]
fn config_space_reports_capacity_in_sectors() {
    let mut rig = rig(false);

    assert_eq!(rig.read(DEVICE_CFG, 8), (DISK_BYTES / 512) as u64);
}

#[test]
fn write_flush_read_round_trip_reaches_the_image_file() {
    let mut rig = rig(false);

    let written = rig.write_sector(1, 0x5a);
    rig.header(VIRTIO_BLK_T_FLUSH, 0);
    let flushed = rig.request(&[(HEADER, 16, false), (STATUS, 1, true)]);
    let (read, data) = rig.read_sector(1);

    assert_eq!((written, flushed, read), (OK, OK, OK));
    assert_eq!(data, vec![0x5a; 512]);
    let file = std::fs::read(rig.image.path()).unwrap();
    assert_eq!(&file[512..1024], &[0x5a; 512][..]);
    let stats = rig.counters.snapshot();
    assert_eq!((stats.write_ops, stats.read_ops, stats.flushes), (1, 1, 1));
}

#[test]
fn completions_raise_the_queue_interrupt() {
    let mut rig = rig(false);

    rig.read_sector(0);

    // The used ring is written before the interrupt is raised: allow the worker a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut isr = 0;
    while isr & 1 == 0 && Instant::now() < deadline {
        isr |= rig.read(0x1000, 1);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(isr & 1, 1, "ISR queue bit");
}

#[test]
fn get_id_returns_the_serial() {
    let mut rig = rig(false);
    rig.header(VIRTIO_BLK_T_GET_ID, 0);

    let status = rig.request(&[(HEADER, 16, false), (DATA, 20, true), (STATUS, 1, true)]);

    let mut id = [0u8; 20];
    rig.mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(status, OK);
    assert_eq!(&id, b"serial-1234\0\0\0\0\0\0\0\0\0");
}

#[test]
fn read_only_disk_advertises_ro_and_refuses_writes() {
    let mut rig = rig(true);

    let offered = rig.offered();
    let status = rig.write_sector(0, 0x77);

    assert_ne!(offered & (1 << VIRTIO_BLK_F_RO), 0);
    assert_eq!(status, VIRTIO_BLK_S_IOERR as u8);
    assert_eq!(std::fs::read(rig.image.path()).unwrap()[..512], [0u8; 512]);
}

#[test]
fn a_descriptor_loop_needs_reset_and_a_reset_recovers() {
    let mut rig = rig(false);
    rig.header(VIRTIO_BLK_T_IN, 0);
    let looped = [
        RawDescriptor::from(Descriptor::new(HEADER, 16, VRING_DESC_F_NEXT as u16, 1)),
        RawDescriptor::from(Descriptor::new(
            STATUS,
            1,
            (VRING_DESC_F_NEXT | VRING_DESC_F_WRITE) as u16,
            0,
        )),
    ];

    rig.submit_raw(&looped);
    rig.wait_for_used();
    // The chain is handed back before the device flags itself: allow it a moment.
    let status = rig.wait_for_needs_reset();
    rig.initialise();
    let (read, _) = rig.read_sector(0);

    assert_ne!(status & STATUS_DEVICE_NEEDS_RESET, 0);
    assert_eq!(read, OK);
}

#[test]
fn an_available_index_far_ahead_needs_reset() {
    let mut rig = rig(false);
    rig.mem
        .write_obj(100u16, GuestAddress(rig.rings.1 + 2))
        .unwrap();

    rig.write(NOTIFY, 2, 0);
    rig.wait_for_needs_reset();

    assert_eq!(rig.used_idx(), 0, "nothing was consumed");
}

/// xorshift64: a deterministic stream of guest "register traffic".
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_register_and_ring_traffic_never_panics_or_hangs() {
    let mut rig = rig(false);
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let widths = [1usize, 2, 4, 8];

    for _ in 0..20_000 {
        let roll = noise.next();
        let width = widths[(roll % 4) as usize];
        let value = noise.next();
        let bytes = value.to_le_bytes();
        match (roll >> 8) % 6 {
            0 => {
                let mut data = [0u8; 8];
                rig.transport
                    .read_config((noise.next() % 4096) as usize, &mut data[..width]);
            }
            1 => rig
                .transport
                .write_config((noise.next() % 4096) as usize, &bytes[..width]),
            2 => {
                let mut data = [0u8; 8];
                rig.transport.read_bar(
                    (roll >> 16) as u8 % 2,
                    noise.next() % 0x8000,
                    &mut data[..width],
                );
            }
            3 => rig
                .transport
                .write_bar(0, noise.next() % 0x8000, &bytes[..width]),
            // Common configuration and notify writes, where the state machine lives.
            4 => rig
                .transport
                .write_bar(0, noise.next() % 0x38, &bytes[..width]),
            _ => {
                // Scribble over the rings and buffers the device may be reading.
                let at = GuestAddress(noise.next() % (MEM_SIZE as u64 - 8));
                rig.mem.write_obj(value, at).unwrap();
                rig.write(NOTIFY, 2, 0);
            }
        }
    }

    // Whatever state the noise left, a reset and a clean initialisation still work.
    rig.transport.write_config(4, &[0x06, 0]);
    rig.initialise();
    let (status, _) = rig.read_sector(0);
    assert_eq!(status, OK);
}
