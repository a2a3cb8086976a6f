//! One virtio-blk request (virtio 1.x §5.2.6): take a descriptor chain apart, run it against
//! the backend, write the status byte, and say how many bytes went into the guest's buffers.
//!
//! The chain is read as two byte streams, device-readable then device-writable, without
//! assuming how the driver split them into descriptors (`VIRTIO_F_ANY_LAYOUT` is implied by
//! virtio 1.x): the readable stream starts with the 16-byte header (type, reserved, sector)
//! and carries write data or discard segments; the writable stream carries read data and ends
//! with the status byte.
//!
//! Two kinds of guest mistakes:
//! - a request that is wrong but has a place for the status byte (bad type, bad lengths,
//!   out-of-range sectors or buffer addresses, a write to a read-only disk, buffers in the
//!   wrong direction) completes with `VIRTIO_BLK_S_IOERR` or `VIRTIO_BLK_S_UNSUPP`;
//! - a chain with no writable status byte (it never ends — a loop or a bad `next` — or it ends
//!   in a device-readable buffer, or the status byte lies outside guest RAM) cannot be
//!   answered: it is a [`MalformedChain`], and the device asks for a reset.

use std::io;

use virtio_bindings::bindings::virtio_blk::{
    VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_BLK_ID_BYTES,
    VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
    VIRTIO_BLK_T_WRITE_ZEROES,
};
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory, Permissions};

use super::backend::DiskBackend;
use super::stats::DiskCounters;

/// Bytes per sector: virtio-blk addresses disks in 512-byte sectors whatever the backend.
pub const SECTOR_SIZE: u64 = 512;
/// Serial number length in a GET_ID reply, bytes.
pub const SERIAL_LEN: usize = VIRTIO_BLK_ID_BYTES as usize;
/// Most segments in one discard or write-zeroes request (advertised in the config space).
pub const MAX_DISCARD_SEGMENTS: u32 = 16;
/// Most sectors in one discard or write-zeroes segment (2 GiB; advertised).
pub const MAX_DISCARD_SECTORS: u32 = 1 << 22;
/// Size of the bounce buffer data passes through between guest RAM and the backend, bytes.
pub const BOUNCE_BUFFER_SIZE: usize = 128 << 10;

const HEADER_SIZE: u64 = 16;
const DISCARD_SEGMENT_SIZE: u64 = 16;
/// Write-zeroes segment flag: the device may unmap (deallocate) the range.
const WRITE_ZEROES_UNMAP: u32 = 1;

/// A chain that cannot be answered with a status byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedChain {
    /// The chain has no descriptors, or its descriptor table could not be read.
    #[error("descriptor chain is empty or its descriptor table is unreadable")]
    Empty,
    /// It never ends: a loop, a `next` index out of range, or more descriptors than the queue
    /// holds.
    #[error("descriptor chain does not terminate (loop or bad next index)")]
    Unterminated,
    /// Its last descriptor is device-readable (or empty), so there is no status byte.
    #[error("descriptor chain ends in a buffer the device cannot write the status to")]
    StatusNotWritable,
    /// The status byte lies outside guest RAM.
    #[error("status byte is outside guest memory")]
    StatusOutOfRange,
}

/// Everything a request needs to know about its disk. Owned by the worker thread.
pub struct Disk {
    /// Where the sectors live.
    pub backend: std::sync::Arc<dyn DiskBackend>,
    /// Disk size in sectors (the backend's capacity rounded down).
    pub capacity_sectors: u64,
    /// GET_ID reply: the serial, NUL padded.
    pub serial: [u8; SERIAL_LEN],
    /// Features the driver accepted.
    pub features: u64,
    /// Counters updated per request.
    pub counters: std::sync::Arc<DiskCounters>,
}

impl Disk {
    fn negotiated(&self, feature: u32) -> bool {
        self.features & (1 << feature) != 0
    }

    /// The byte range of `sectors` sectors from `sector`, if it lies on the disk.
    fn byte_range(&self, sector: u64, sectors: u64) -> Option<(u64, u64)> {
        let end = sector.checked_add(sectors)?;
        (end <= self.capacity_sectors).then(|| (sector * SECTOR_SIZE, sectors * SECTOR_SIZE))
    }
}

/// A run of guest memory, part of one stream.
#[derive(Debug, Clone, Copy)]
struct Segment {
    addr: GuestAddress,
    len: u64,
}

/// A chain taken apart.
struct Chain {
    readable: Vec<Segment>,
    /// Without the status byte.
    writable: Vec<Segment>,
    /// No readable descriptor follows a writable one.
    in_order: bool,
    status: GuestAddress,
}

/// Serves one chain: returns the number of bytes written into the chain's writable buffers
/// (status byte included), for the used ring.
pub fn handle_chain<M: GuestMemory>(
    mem: &M,
    descriptors: impl Iterator<Item = Descriptor>,
    disk: &Disk,
    buffer: &mut [u8],
) -> Result<u32, MalformedChain> {
    let chain = parse(mem, descriptors)?;
    let (status, data_len) = match execute(mem, &chain, disk, buffer) {
        Ok(data_len) => (VIRTIO_BLK_S_OK, data_len),
        Err(status) => {
            disk.counters.record_error();
            (status, 0)
        }
    };
    mem.write_obj(status as u8, chain.status)
        .map_err(|_| MalformedChain::StatusOutOfRange)?;
    // Data is at most 4 GiB - 1 (virtio-queue caps chains below 2^32 bytes).
    Ok(u32::try_from(data_len + 1).unwrap_or(u32::MAX))
}

fn parse<M: GuestMemory>(
    mem: &M,
    descriptors: impl Iterator<Item = Descriptor>,
) -> Result<Chain, MalformedChain> {
    let mut readable = Vec::new();
    let mut writable = Vec::new();
    let mut in_order = true;
    let mut last: Option<Descriptor> = None;
    for desc in descriptors {
        let segment = Segment {
            addr: desc.addr(),
            len: u64::from(desc.len()),
        };
        if desc.is_write_only() {
            writable.push(segment);
        } else {
            in_order &= writable.is_empty();
            readable.push(segment);
        }
        last = Some(desc);
    }
    let last = last.ok_or(MalformedChain::Empty)?;
    if last.has_next() {
        // virtio-queue stops yielding when the chain loops, runs past the queue size or
        // points at a descriptor it cannot read: a last descriptor that still has NEXT.
        return Err(MalformedChain::Unterminated);
    }
    if !last.is_write_only() || last.len() == 0 {
        return Err(MalformedChain::StatusNotWritable);
    }
    let status_segment = writable
        .last_mut()
        .expect("the last descriptor is writable");
    let status = status_segment
        .addr
        .checked_add(status_segment.len - 1)
        .filter(|a| mem.check_range(*a, 1, Permissions::Write))
        .ok_or(MalformedChain::StatusOutOfRange)?;
    status_segment.len -= 1;
    Ok(Chain {
        readable,
        writable,
        in_order,
        status,
    })
}

/// Runs a parsed request; `Ok` is the number of data bytes written to the guest, `Err` the
/// failure status.
fn execute<M: GuestMemory>(
    mem: &M,
    chain: &Chain,
    disk: &Disk,
    buffer: &mut [u8],
) -> Result<u64, u32> {
    const IOERR: u32 = VIRTIO_BLK_S_IOERR;
    if !chain.in_order {
        return Err(IOERR);
    }
    let readable_len = total(&chain.readable);
    let writable_len = total(&chain.writable);
    let mut header = [0u8; HEADER_SIZE as usize];
    if readable_len < HEADER_SIZE || !gather(mem, &chain.readable, 0, &mut header) {
        return Err(IOERR);
    }
    let request_type = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let sector = u64::from_le_bytes(header[8..16].try_into().expect("8 header bytes"));
    let payload_len = readable_len - HEADER_SIZE;

    match request_type {
        VIRTIO_BLK_T_IN => {
            if payload_len != 0 {
                return Err(IOERR);
            }
            read(mem, chain, disk, sector, writable_len, buffer)?;
            disk.counters.record_read(writable_len);
            Ok(writable_len)
        }
        VIRTIO_BLK_T_OUT => {
            if writable_len != 0 || disk.backend.read_only() {
                return Err(IOERR);
            }
            write(mem, chain, disk, sector, payload_len, buffer)?;
            disk.counters.record_write(payload_len);
            Ok(0)
        }
        VIRTIO_BLK_T_FLUSH => {
            if payload_len != 0 || writable_len != 0 {
                return Err(IOERR);
            }
            disk.backend.flush().map_err(|e| io_error("flush", &e))?;
            disk.counters.record_flush();
            Ok(0)
        }
        VIRTIO_BLK_T_GET_ID => {
            if payload_len != 0 || writable_len == 0 {
                return Err(IOERR);
            }
            let len = writable_len.min(SERIAL_LEN as u64);
            if !scatter(mem, &chain.writable, 0, &disk.serial[..len as usize]) {
                return Err(IOERR);
            }
            Ok(len)
        }
        VIRTIO_BLK_T_DISCARD | VIRTIO_BLK_T_WRITE_ZEROES => {
            let zeroes = request_type == VIRTIO_BLK_T_WRITE_ZEROES;
            let feature = if zeroes {
                VIRTIO_BLK_F_WRITE_ZEROES
            } else {
                VIRTIO_BLK_F_DISCARD
            };
            if !disk.negotiated(feature) {
                return Err(VIRTIO_BLK_S_UNSUPP);
            }
            if writable_len != 0 || disk.backend.read_only() {
                return Err(IOERR);
            }
            let bytes = discard_or_zero(mem, chain, disk, payload_len, zeroes)?;
            disk.counters.record_write(bytes);
            Ok(0)
        }
        _ => Err(VIRTIO_BLK_S_UNSUPP),
    }
}

fn read<M: GuestMemory>(
    mem: &M,
    chain: &Chain,
    disk: &Disk,
    sector: u64,
    len: u64,
    buffer: &mut [u8],
) -> Result<(), u32> {
    let (start, _) = data_range(disk, sector, len)?;
    if !accessible(mem, &chain.writable, Permissions::Write) {
        return Err(VIRTIO_BLK_S_IOERR);
    }
    let mut done = 0;
    while done < len {
        let chunk_len = (len - done).min(buffer.len() as u64) as usize;
        let chunk = &mut buffer[..chunk_len];
        disk.backend
            .read_at(start + done, chunk)
            .map_err(|e| io_error("read", &e))?;
        if !scatter(mem, &chain.writable, done, chunk) {
            return Err(VIRTIO_BLK_S_IOERR);
        }
        done += chunk.len() as u64;
    }
    Ok(())
}

fn write<M: GuestMemory>(
    mem: &M,
    chain: &Chain,
    disk: &Disk,
    sector: u64,
    len: u64,
    buffer: &mut [u8],
) -> Result<(), u32> {
    let (start, _) = data_range(disk, sector, len)?;
    if !accessible(mem, &chain.readable, Permissions::Read) {
        return Err(VIRTIO_BLK_S_IOERR);
    }
    let mut done = 0;
    while done < len {
        let chunk_len = (len - done).min(buffer.len() as u64) as usize;
        let chunk = &mut buffer[..chunk_len];
        if !gather(mem, &chain.readable, HEADER_SIZE + done, chunk) {
            return Err(VIRTIO_BLK_S_IOERR);
        }
        disk.backend
            .write_at(start + done, chunk)
            .map_err(|e| io_error("write", &e))?;
        done += chunk.len() as u64;
    }
    if !disk.negotiated(VIRTIO_BLK_F_FLUSH) {
        // A driver that did not accept FLUSH cannot ask for durability: be write-through.
        disk.backend.flush().map_err(|e| io_error("flush", &e))?;
    }
    Ok(())
}

/// The byte range of a data transfer of `len` bytes from `sector`: whole sectors on the disk.
fn data_range(disk: &Disk, sector: u64, len: u64) -> Result<(u64, u64), u32> {
    if !len.is_multiple_of(SECTOR_SIZE) {
        return Err(VIRTIO_BLK_S_IOERR);
    }
    disk.byte_range(sector, len / SECTOR_SIZE)
        .ok_or(VIRTIO_BLK_S_IOERR)
}

/// Runs every segment of a discard or write-zeroes request after checking them all; returns
/// the bytes covered.
fn discard_or_zero<M: GuestMemory>(
    mem: &M,
    chain: &Chain,
    disk: &Disk,
    payload_len: u64,
    zeroes: bool,
) -> Result<u64, u32> {
    let count = payload_len / DISCARD_SEGMENT_SIZE;
    if payload_len == 0
        || !payload_len.is_multiple_of(DISCARD_SEGMENT_SIZE)
        || count > u64::from(MAX_DISCARD_SEGMENTS)
    {
        return Err(VIRTIO_BLK_S_IOERR);
    }
    let mut ranges = Vec::with_capacity(count as usize);
    for i in 0..count {
        let mut raw = [0u8; DISCARD_SEGMENT_SIZE as usize];
        if !gather(
            mem,
            &chain.readable,
            HEADER_SIZE + i * DISCARD_SEGMENT_SIZE,
            &mut raw,
        ) {
            return Err(VIRTIO_BLK_S_IOERR);
        }
        let sector = u64::from_le_bytes(raw[0..8].try_into().expect("8 bytes"));
        let sectors = u32::from_le_bytes(raw[8..12].try_into().expect("4 bytes"));
        let flags = u32::from_le_bytes(raw[12..16].try_into().expect("4 bytes"));
        let allowed_flags = if zeroes { WRITE_ZEROES_UNMAP } else { 0 };
        if flags & !allowed_flags != 0 {
            return Err(VIRTIO_BLK_S_UNSUPP);
        }
        if sectors > MAX_DISCARD_SECTORS {
            return Err(VIRTIO_BLK_S_IOERR);
        }
        ranges.push(
            disk.byte_range(sector, u64::from(sectors))
                .ok_or(VIRTIO_BLK_S_IOERR)?,
        );
    }
    let mut bytes = 0;
    for (offset, len) in ranges {
        let result = if zeroes {
            disk.backend.write_zeroes(offset, len)
        } else {
            disk.backend.discard(offset, len)
        };
        result.map_err(|e| io_error("discard/write-zeroes", &e))?;
        bytes += len;
    }
    Ok(bytes)
}

fn io_error(what: &str, error: &io::Error) -> u32 {
    log::warn!("virtio-blk {what} failed: {error}");
    VIRTIO_BLK_S_IOERR
}

fn total(segments: &[Segment]) -> u64 {
    segments.iter().map(|s| s.len).sum()
}

/// Every segment lies in guest RAM with `access`.
fn accessible<M: GuestMemory>(mem: &M, segments: &[Segment], access: Permissions) -> bool {
    segments.iter().all(|s| {
        s.len == 0 || usize::try_from(s.len).is_ok_and(|len| mem.check_range(s.addr, len, access))
    })
}

/// Copies `buf.len()` bytes of the stream `segments` from stream offset `offset` into `buf`.
fn gather<M: GuestMemory>(mem: &M, segments: &[Segment], offset: u64, buf: &mut [u8]) -> bool {
    walk(segments, offset, buf.len(), |addr, from, len| {
        mem.read_slice(&mut buf[from..from + len], addr).is_ok()
    })
}

/// Copies `buf` into the stream `segments` at stream offset `offset`.
fn scatter<M: GuestMemory>(mem: &M, segments: &[Segment], offset: u64, buf: &[u8]) -> bool {
    walk(segments, offset, buf.len(), |addr, from, len| {
        mem.write_slice(&buf[from..from + len], addr).is_ok()
    })
}

/// Calls `copy(guest address, buffer offset, length)` for each piece of the stream range
/// `offset..offset + len`; false when the stream is too short or a copy fails.
fn walk(
    segments: &[Segment],
    mut offset: u64,
    len: usize,
    mut copy: impl FnMut(GuestAddress, usize, usize) -> bool,
) -> bool {
    let mut done = 0usize;
    for segment in segments {
        if done == len {
            break;
        }
        if offset >= segment.len {
            offset -= segment.len;
            continue;
        }
        let piece = (segment.len - offset).min((len - done) as u64) as usize;
        let Some(addr) = segment.addr.checked_add(offset) else {
            return false;
        };
        if !copy(addr, done, piece) {
            return false;
        }
        done += piece;
        offset = 0;
    }
    done == len
}

#[cfg(test)]
mod tests;
