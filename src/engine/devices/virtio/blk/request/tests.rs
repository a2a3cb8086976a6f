//! Request handling against virtio-queue's mock split queue and an in-memory disk.

use crate::engine::memory::GuestRam;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use virtio_bindings::bindings::virtio_blk::{VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_T_SCSI_CMD};
use virtio_bindings::bindings::virtio_ring::{
    VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;

use super::*;

const MEM_SIZE: u64 = 0x10_0000;
const HEADER: u64 = 0x1_0000;
const DATA: u64 = 0x2_0000;
const STATUS: u64 = 0x3_0000;
const INDIRECT_TABLE: u64 = 0x4_0000;
const DISK_SECTORS: u64 = 64;
const R: u16 = 0;
const W: u16 = VRING_DESC_F_WRITE as u16;

/// A disk in a Vec that records flushes, discards and zeroed ranges.
struct MemDisk {
    bytes: Mutex<Vec<u8>>,
    read_only: bool,
    flushes: AtomicUsize,
    discards: Mutex<Vec<(u64, u64)>>,
}

impl MemDisk {
    fn new(read_only: bool) -> Arc<MemDisk> {
        Arc::new(MemDisk {
            bytes: Mutex::new(vec![0xee; (DISK_SECTORS * SECTOR_SIZE) as usize]),
            read_only,
            flushes: AtomicUsize::new(0),
            discards: Mutex::new(Vec::new()),
        })
    }

    fn sector(&self, sector: u64) -> Vec<u8> {
        let start = (sector * SECTOR_SIZE) as usize;
        self.bytes.lock().unwrap()[start..start + SECTOR_SIZE as usize].to_vec()
    }
}

impl DiskBackend for MemDisk {
    fn capacity(&self) -> u64 {
        DISK_SECTORS * SECTOR_SIZE
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let bytes = self.bytes.lock().unwrap();
        buf.copy_from_slice(&bytes[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut bytes = self.bytes.lock().unwrap();
        bytes[offset as usize..offset as usize + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn supports_discard(&self) -> bool {
        true
    }
    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.discards.lock().unwrap().push((offset, len));
        Ok(())
    }
    fn supports_write_zeroes(&self) -> bool {
        true
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        let mut bytes = self.bytes.lock().unwrap();
        bytes[offset as usize..(offset + len) as usize].fill(0);
        Ok(())
    }
}

struct Setup {
    mem: GuestRam,
    backend: Arc<MemDisk>,
    disk: Disk,
}

fn setup_with(read_only: bool, features: u64) -> Setup {
    let mem = crate::engine::memory::test_ram(0, MEM_SIZE);
    let backend = MemDisk::new(read_only);
    let disk = Disk {
        backend: backend.clone(),
        capacity_sectors: DISK_SECTORS,
        serial: *b"vmux-serial-0001\0\0\0\0",
        features,
        counters: Arc::new(DiskCounters::default()),
    };
    Setup { mem, backend, disk }
}

fn setup() -> Setup {
    let all =
        (1 << VIRTIO_BLK_F_FLUSH) | (1 << VIRTIO_BLK_F_DISCARD) | (1 << VIRTIO_BLK_F_WRITE_ZEROES);
    setup_with(false, all)
}

fn desc(addr: u64, len: u32, flags: u16) -> RawDescriptor {
    RawDescriptor::from(Descriptor::new(addr, len, flags, 0))
}

/// A descriptor with an explicit `next` (the chain is written as given).
fn linked(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
    RawDescriptor::from(Descriptor::new(
        addr,
        len,
        flags | VRING_DESC_F_NEXT as u16,
        next,
    ))
}

impl Setup {
    fn header(&self, request_type: u32, sector: u64) {
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&request_type.to_le_bytes());
        header[8..16].copy_from_slice(&sector.to_le_bytes());
        self.mem.write_slice(&header, GuestAddress(HEADER)).unwrap();
        self.mem.write_obj(0xaau8, GuestAddress(STATUS)).unwrap();
    }

    /// Serves the chain `descs` (NEXT links added in order).
    fn run(&self, descs: &[RawDescriptor]) -> Result<u32, MalformedChain> {
        let queue = MockSplitQueue::new(&self.mem, 16);
        let chain = queue.build_desc_chain(descs).unwrap();
        let mut buffer = vec![0u8; 4096];
        handle_chain(&self.mem, chain, &self.disk, &mut buffer)
    }

    /// Serves the chain `descs` exactly as written (for broken links).
    fn run_raw(&self, descs: &[RawDescriptor]) -> Result<u32, MalformedChain> {
        let queue = MockSplitQueue::new(&self.mem, 16);
        let chain = queue.build_multiple_desc_chains(descs).unwrap();
        let mut buffer = vec![0u8; 4096];
        handle_chain(&self.mem, chain, &self.disk, &mut buffer)
    }

    fn status(&self) -> u8 {
        self.mem.read_obj(GuestAddress(STATUS)).unwrap()
    }

    fn guest(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        self.mem.read_slice(&mut bytes, GuestAddress(addr)).unwrap();
        bytes
    }

    fn write_sector(&self, sector: u64, fill: u8) -> Result<u32, MalformedChain> {
        self.mem
            .write_slice(&[fill; 512], GuestAddress(DATA))
            .unwrap();
        self.header(VIRTIO_BLK_T_OUT, sector);
        self.run(&[desc(HEADER, 16, R), desc(DATA, 512, R), desc(STATUS, 1, W)])
    }

    fn read_sector(&self, sector: u64) -> Result<u32, MalformedChain> {
        self.header(VIRTIO_BLK_T_IN, sector);
        self.run(&[desc(HEADER, 16, R), desc(DATA, 512, W), desc(STATUS, 1, W)])
    }

    fn discard_segment(
        &self,
        request_type: u32,
        sector: u64,
        sectors: u32,
        flags: u32,
    ) -> Result<u32, MalformedChain> {
        let mut segment = [0u8; 16];
        segment[0..8].copy_from_slice(&sector.to_le_bytes());
        segment[8..12].copy_from_slice(&sectors.to_le_bytes());
        segment[12..16].copy_from_slice(&flags.to_le_bytes());
        self.mem.write_slice(&segment, GuestAddress(DATA)).unwrap();
        self.header(request_type, 0);
        self.run(&[desc(HEADER, 16, R), desc(DATA, 16, R), desc(STATUS, 1, W)])
    }
}

const OK: u8 = VIRTIO_BLK_S_OK as u8;
const IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;
const UNSUPP: u8 = VIRTIO_BLK_S_UNSUPP as u8;

#[test]
fn written_sector_reads_back() {
    let s = setup();

    let written = s.write_sector(3, 0x5a);
    s.mem.write_slice(&[0; 512], GuestAddress(DATA)).unwrap();
    let read = s.read_sector(3);

    assert_eq!((written, read), (Ok(1), Ok(513)));
    assert_eq!(s.status(), OK);
    assert_eq!(s.guest(DATA, 512), vec![0x5a; 512]);
    assert_eq!(s.backend.sector(3), vec![0x5a; 512]);
}

#[test]
fn data_split_across_descriptors_and_sharing_the_status_descriptor_is_served() {
    let s = setup();
    s.backend.write_at(512, &[0x11; 512]).unwrap();
    s.header(VIRTIO_BLK_T_IN, 1);

    // 200 bytes, then 312 data bytes + the status byte in one descriptor.
    let used = s.run(&[
        desc(HEADER, 16, R),
        desc(DATA, 200, W),
        desc(STATUS - 312, 313, W),
    ]);

    assert_eq!(used, Ok(513));
    assert_eq!(s.status(), OK);
    assert_eq!(s.guest(DATA, 200), vec![0x11; 200]);
    assert_eq!(s.guest(STATUS - 312, 312), vec![0x11; 312]);
}

#[test]
fn request_through_an_indirect_table_is_served() {
    let s = setup();
    s.backend.write_at(0, &[0x22; 512]).unwrap();
    s.header(VIRTIO_BLK_T_IN, 0);
    let table = [
        linked(HEADER, 16, R, 1),
        linked(DATA, 512, W, 2),
        desc(STATUS, 1, W),
    ];
    for (i, entry) in table.iter().enumerate() {
        s.mem
            .write_obj(*entry, GuestAddress(INDIRECT_TABLE + 16 * i as u64))
            .unwrap();
    }

    let used = s.run(&[desc(INDIRECT_TABLE, 48, VRING_DESC_F_INDIRECT as u16)]);

    assert_eq!(used, Ok(513));
    assert_eq!(s.guest(DATA, 512), vec![0x22; 512]);
}

#[test]
fn read_past_the_last_sector_is_an_io_error() {
    let s = setup();

    let used = s.read_sector(DISK_SECTORS);

    assert_eq!(used, Ok(1));
    assert_eq!(s.status(), IOERR);
}

#[test]
fn sector_number_that_overflows_is_an_io_error() {
    let s = setup();

    s.read_sector(u64::MAX).unwrap();

    assert_eq!(s.status(), IOERR);
}

#[test]
fn write_to_a_read_only_disk_is_an_io_error_and_changes_nothing() {
    let s = setup_with(true, 0);

    s.write_sector(1, 0x77).unwrap();

    assert_eq!(s.status(), IOERR);
    assert_eq!(s.backend.sector(1), vec![0xee; 512]);
}

#[test]
fn flush_reaches_the_backend_before_ok() {
    let s = setup();
    s.header(VIRTIO_BLK_T_FLUSH, 0);

    let used = s.run(&[desc(HEADER, 16, R), desc(STATUS, 1, W)]);

    assert_eq!(used, Ok(1));
    assert_eq!(s.status(), OK);
    assert_eq!(s.backend.flushes.load(Ordering::SeqCst), 1);
    assert_eq!(s.disk.counters.snapshot().flushes, 1);
}

#[test]
fn writes_are_flushed_when_the_driver_did_not_accept_flush() {
    let s = setup_with(false, 0);

    s.write_sector(0, 1).unwrap();

    assert_eq!(s.backend.flushes.load(Ordering::SeqCst), 1);
}

#[test]
fn writes_are_not_flushed_when_the_driver_accepted_flush() {
    let s = setup();

    s.write_sector(0, 1).unwrap();

    assert_eq!(s.backend.flushes.load(Ordering::SeqCst), 0);
}

#[test]
fn get_id_returns_the_20_byte_serial() {
    let s = setup();
    s.header(VIRTIO_BLK_T_GET_ID, 0);

    let used = s.run(&[desc(HEADER, 16, R), desc(DATA, 20, W), desc(STATUS, 1, W)]);

    assert_eq!(used, Ok(21));
    assert_eq!(s.status(), OK);
    assert_eq!(s.guest(DATA, 20), b"vmux-serial-0001\0\0\0\0");
}

#[test]
fn unknown_request_type_is_unsupported() {
    let s = setup();
    s.header(VIRTIO_BLK_T_SCSI_CMD, 0);

    s.run(&[desc(HEADER, 16, R), desc(STATUS, 1, W)]).unwrap();

    assert_eq!(s.status(), UNSUPP);
}

#[test]
fn data_that_is_not_whole_sectors_is_an_io_error() {
    let s = setup();
    s.header(VIRTIO_BLK_T_IN, 0);

    s.run(&[desc(HEADER, 16, R), desc(DATA, 100, W), desc(STATUS, 1, W)])
        .unwrap();

    assert_eq!(s.status(), IOERR);
}

#[test]
fn data_buffer_outside_guest_memory_is_an_io_error() {
    let s = setup();
    s.header(VIRTIO_BLK_T_IN, 0);

    let used = s.run(&[
        desc(HEADER, 16, R),
        desc(MEM_SIZE - 256, 512, W),
        desc(STATUS, 1, W),
    ]);

    assert_eq!(used, Ok(1));
    assert_eq!(s.status(), IOERR);
}

#[test]
fn header_outside_guest_memory_is_an_io_error() {
    let s = setup();
    s.mem.write_obj(0xaau8, GuestAddress(STATUS)).unwrap();

    s.run(&[desc(u64::MAX - 8, 16, R), desc(STATUS, 1, W)])
        .unwrap();

    assert_eq!(s.status(), IOERR);
}

#[test]
fn header_in_a_device_writable_buffer_is_an_io_error() {
    let s = setup();
    s.header(VIRTIO_BLK_T_IN, 0);

    s.run(&[desc(HEADER, 16, W), desc(DATA, 512, W), desc(STATUS, 1, W)])
        .unwrap();

    assert_eq!(s.status(), IOERR);
}

#[test]
fn write_data_in_a_device_writable_buffer_is_an_io_error() {
    let s = setup();
    s.header(VIRTIO_BLK_T_OUT, 0);

    s.run(&[desc(HEADER, 16, R), desc(DATA, 512, W), desc(STATUS, 1, W)])
        .unwrap();

    assert_eq!(s.status(), IOERR);
    assert_eq!(s.backend.sector(0), vec![0xee; 512]);
}

#[test]
fn readable_buffer_after_a_writable_one_is_an_io_error() {
    let s = setup();
    s.header(VIRTIO_BLK_T_IN, 0);

    s.run(&[desc(DATA, 512, W), desc(HEADER, 16, R), desc(STATUS, 1, W)])
        .unwrap();

    assert_eq!(s.status(), IOERR);
}

#[test]
fn descriptor_loop_is_malformed() {
    let s = setup();
    s.header(VIRTIO_BLK_T_IN, 0);

    let result = s.run_raw(&[linked(HEADER, 16, R, 1), linked(STATUS, 1, W, 0)]);

    assert_eq!(result, Err(MalformedChain::Unterminated));
}

#[test]
fn next_index_past_the_queue_is_malformed() {
    let s = setup();
    s.header(VIRTIO_BLK_T_IN, 0);

    let result = s.run_raw(&[linked(HEADER, 16, R, 1), linked(STATUS, 1, W, 500)]);

    assert_eq!(result, Err(MalformedChain::Unterminated));
}

#[test]
fn status_in_a_device_readable_buffer_is_malformed() {
    let s = setup();
    s.header(VIRTIO_BLK_T_IN, 0);

    let result = s.run(&[desc(HEADER, 16, R), desc(STATUS, 1, R)]);

    assert_eq!(result, Err(MalformedChain::StatusNotWritable));
    assert_eq!(s.status(), 0xaa, "nothing written");
}

#[test]
fn zero_length_status_buffer_is_malformed() {
    let s = setup();
    s.header(VIRTIO_BLK_T_FLUSH, 0);

    let result = s.run(&[desc(HEADER, 16, R), desc(STATUS, 0, W)]);

    assert_eq!(result, Err(MalformedChain::StatusNotWritable));
}

#[test]
fn status_outside_guest_memory_is_malformed() {
    let s = setup();
    s.header(VIRTIO_BLK_T_FLUSH, 0);

    let result = s.run(&[desc(HEADER, 16, R), desc(MEM_SIZE, 1, W)]);

    assert_eq!(result, Err(MalformedChain::StatusOutOfRange));
}

#[test]
fn write_zeroes_clears_the_range() {
    let s = setup();

    s.discard_segment(VIRTIO_BLK_T_WRITE_ZEROES, 2, 2, WRITE_ZEROES_UNMAP)
        .unwrap();

    assert_eq!(s.status(), OK);
    assert_eq!(s.backend.sector(2), vec![0; 512]);
    assert_eq!(s.backend.sector(3), vec![0; 512]);
    assert_eq!(s.backend.sector(4), vec![0xee; 512]);
}

#[test]
fn discard_reaches_the_backend_in_bytes() {
    let s = setup();

    s.discard_segment(VIRTIO_BLK_T_DISCARD, 8, 4, 0).unwrap();

    assert_eq!(s.status(), OK);
    assert_eq!(*s.backend.discards.lock().unwrap(), [(4096, 2048)]);
}

#[test]
fn discard_with_the_unmap_flag_is_unsupported() {
    let s = setup();

    s.discard_segment(VIRTIO_BLK_T_DISCARD, 0, 1, WRITE_ZEROES_UNMAP)
        .unwrap();

    assert_eq!(s.status(), UNSUPP);
}

#[test]
fn discard_past_the_end_is_an_io_error() {
    let s = setup();

    s.discard_segment(VIRTIO_BLK_T_DISCARD, DISK_SECTORS - 1, 2, 0)
        .unwrap();

    assert_eq!(s.status(), IOERR);
    assert!(s.backend.discards.lock().unwrap().is_empty());
}

#[test]
fn discard_not_negotiated_is_unsupported() {
    let s = setup_with(false, 0);

    s.discard_segment(VIRTIO_BLK_T_DISCARD, 0, 1, 0).unwrap();

    assert_eq!(s.status(), UNSUPP);
}

#[test]
fn requests_are_counted_by_outcome() {
    let s = setup();

    s.write_sector(0, 1).unwrap();
    s.read_sector(0).unwrap();
    s.read_sector(DISK_SECTORS).unwrap();

    let stats = s.disk.counters.snapshot();
    assert_eq!((stats.write_ops, stats.write_bytes), (1, 512));
    assert_eq!((stats.read_ops, stats.read_bytes), (1, 512));
    assert_eq!(stats.errors, 1);
}

#[test]
fn a_read_larger_than_the_bounce_buffer_is_copied_in_pieces() {
    let s = setup();
    let pattern: Vec<u8> = (0..16 * 512).map(|i| (i / 512) as u8).collect();
    s.backend.write_at(0, &pattern).unwrap();
    s.header(VIRTIO_BLK_T_IN, 0);

    let used = s.run(&[
        desc(HEADER, 16, R),
        desc(DATA, 16 * 512, W),
        desc(STATUS, 1, W),
    ]);

    assert_eq!(used, Ok(16 * 512 + 1));
    assert_eq!(s.guest(DATA, 16 * 512), pattern);
}
