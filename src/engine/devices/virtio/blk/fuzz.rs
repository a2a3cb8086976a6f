//! Fuzz entry point for one disk's request queue: the input is the queue's size and the
//! driver's choices, then guest RAM holding the descriptor table, the rings and the buffers;
//! the disk's real worker drains the available ring (virtio-queue walks the chains, direct and
//! indirect; [`super::request`] takes each apart and runs it against an in-memory disk).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use virtio_bindings::bindings::virtio_blk::{
    VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_WRITE_ZEROES,
};

use super::request::{Disk, SECTOR_SIZE, SERIAL_LEN};
use super::worker::Worker;
use crate::engine::fuzz::support::{
    Input, MemDisk, Quiet, eventfd, guest_ram, queue_at, queue_size,
};

/// Size of the fuzzed disk, bytes.
const DISK_BYTES: usize = 64 * SECTOR_SIZE as usize;

/// Byte 0 picks the queue size (a power of two up to 256), byte 1 the driver's flags (bit 0
/// EVENT_IDX, bit 1 a read-only disk, bits 2-4 FLUSH, DISCARD, WRITE_ZEROES accepted); the
/// rest is guest RAM from address 0, where the descriptor table starts and the rings follow.
pub fn serve_queue(data: &[u8]) {
    let mut input = Input::new(data);
    let size = queue_size(input.byte());
    let flags = input.byte();
    let Some(mem) = guest_ram(input.rest()) else {
        return;
    };
    let Some((queue, _)) = queue_at(&mem, 0, size, flags & 1 != 0) else {
        return;
    };
    let mut features = 0u64;
    for (bit, feature) in [
        (4, VIRTIO_BLK_F_FLUSH),
        (8, VIRTIO_BLK_F_DISCARD),
        (16, VIRTIO_BLK_F_WRITE_ZEROES),
    ] {
        if flags & bit != 0 {
            features |= 1 << feature;
        }
    }
    let backend = Arc::new(MemDisk::new(DISK_BYTES, flags & 2 != 0));
    let disk = Disk {
        backend,
        capacity_sectors: DISK_BYTES as u64 / SECTOR_SIZE,
        serial: [b'f'; SERIAL_LEN],
        features,
        counters: Arc::default(),
    };
    let (Some(notify), Some(stop)) = (eventfd(), eventfd()) else {
        return;
    };
    let drain = Arc::new(AtomicBool::new(false));
    let Ok(mut worker) = Worker::new(mem, queue, 0, notify, stop, drain, Arc::new(Quiet), disk)
    else {
        return;
    };
    // Twice: the second pass must find nothing new, or stay broken after a malformed chain.
    let _ = worker.serve();
    let _ = worker.serve();
}
