//! What the device fuzz entry points share: a cursor over the input, guest RAM filled from it,
//! split queues laid out back to back in that RAM, an in-memory disk, an interrupt sink and a
//! VM interface without KVM.

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

use crate::engine::devices::virtio::VirtioInterrupt;
use crate::engine::devices::virtio::blk::DiskBackend;
use crate::engine::memory::{GuestRam, RamRange, map_ranges};
use crate::engine::pci::{MsiMessage, PciError, VmInterface};

/// Guest RAM of every device harness, bytes, at guest-physical 0: small enough that random
/// addresses often land inside it, large enough for two 256-entry rings and their buffers.
pub const RAM_SIZE: u64 = 0x1_0000;
/// Largest queue a device offers here (both devices offer 256).
const MAX_QUEUE_SIZE: u16 = 256;

/// Reads numbers off the front of a fuzz input; past its end every read is zero.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    /// Up to `len` bytes (fewer at the end of the input).
    pub fn take(&mut self, len: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(len.min(self.data.len()));
        self.data = tail;
        head
    }

    /// The next byte.
    pub fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    /// The next two bytes, little endian.
    pub fn u16(&mut self) -> u16 {
        u16::from(self.byte()) | u16::from(self.byte()) << 8
    }

    /// The next four bytes, little endian.
    pub fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }

    /// The next eight bytes, little endian.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

thread_local! {
    /// One mapping per thread, rewritten for every input (mapping 64 KiB per input would
    /// cost more than the code under test).
    static RAM: RefCell<Option<GuestRam>> = const { RefCell::new(None) };
}

/// Guest RAM of [`RAM_SIZE`] bytes holding `contents` from address 0 and zeros after it;
/// `None` only when the host cannot map it.
pub fn guest_ram(contents: &[u8]) -> Option<GuestRam> {
    let ram = RAM.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = map_ranges(&[RamRange {
                start: 0,
                len: RAM_SIZE,
            }])
            .ok();
        }
        slot.clone()
    })?;
    let mut image = vec![0u8; RAM_SIZE as usize];
    let len = contents.len().min(image.len());
    image[..len].copy_from_slice(&contents[..len]);
    ram.write_slice(&image, GuestAddress(0)).ok()?;
    Some(ram)
}

/// A queue size a selector byte picks: a power of two from 1 to 256.
pub fn queue_size(selector: u8) -> u16 {
    1 << (selector % 9)
}

/// A ready split queue of `size` entries with its descriptor table at `base` and its rings
/// right after it, as a driver may lay them out; returns it with the first free address after
/// it. `None` when it would not fit in RAM (the transport refuses such a queue too).
pub fn queue_at(mem: &GuestRam, base: u64, size: u16, event_idx: bool) -> Option<(Queue, u64)> {
    let size64 = u64::from(size);
    let avail = base + 16 * size64;
    let used = (avail + 6 + 2 * size64).next_multiple_of(4);
    let end = (used + 6 + 8 * size64).next_multiple_of(16);
    let mut queue = Queue::new(MAX_QUEUE_SIZE).ok()?;
    queue.try_set_size(size).ok()?;
    queue.try_set_desc_table_address(GuestAddress(base)).ok()?;
    queue.try_set_avail_ring_address(GuestAddress(avail)).ok()?;
    queue.try_set_used_ring_address(GuestAddress(used)).ok()?;
    queue.set_event_idx(event_idx);
    queue.set_ready(true);
    queue.is_valid(mem).then_some((queue, end))
}

/// A non-blocking eventfd, as the transport gives a device.
pub fn eventfd() -> Option<EventFd> {
    EventFd::new(libc::EFD_NONBLOCK).ok()
}

/// A disk held in memory; reads and writes outside it fail as a file's would not, which the
/// request code must never let happen (it checks ranges first).
pub struct MemDisk {
    bytes: Mutex<Vec<u8>>,
    read_only: bool,
}

impl MemDisk {
    /// A disk of `len` bytes filled with a pattern.
    pub fn new(len: usize, read_only: bool) -> MemDisk {
        MemDisk {
            bytes: Mutex::new((0..len).map(|i| i as u8).collect()),
            read_only,
        }
    }

    fn bytes(&self) -> MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The byte range `offset..offset + len` of a disk of `capacity` bytes, or the error a
/// request past the end deserves.
fn range(offset: u64, len: u64, capacity: usize) -> io::Result<std::ops::Range<usize>> {
    let start = usize::try_from(offset).map_err(io::Error::other)?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| start.checked_add(len))
        .filter(|end| *end <= capacity)
        .ok_or_else(|| io::Error::other("request past the end of the disk"))?;
    Ok(start..end)
}

impl DiskBackend for MemDisk {
    fn capacity(&self) -> u64 {
        self.bytes().len() as u64
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let bytes = self.bytes();
        let range = range(offset, buf.len() as u64, bytes.len())?;
        buf.copy_from_slice(&bytes[range]);
        Ok(())
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut bytes = self.bytes();
        let range = range(offset, buf.len() as u64, bytes.len())?;
        bytes[range].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn supports_discard(&self) -> bool {
        true
    }
    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.write_zeroes(offset, len)
    }
    fn supports_write_zeroes(&self) -> bool {
        true
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        let mut bytes = self.bytes();
        let range = range(offset, len, bytes.len())?;
        bytes[range].fill(0);
        Ok(())
    }
}

/// Interrupts that go nowhere.
pub struct Quiet;

impl VirtioInterrupt for Quiet {
    fn signal_queue(&self, _queue: u16) {}
    fn signal_config(&self) {}
    fn signal_needs_reset(&self) {}
}

/// A VM interface that hands out GSIs and accepts every route, irqfd and ioeventfd without
/// KVM.
#[derive(Default)]
pub struct NullVm {
    next_gsi: AtomicU32,
}

impl VmInterface for NullVm {
    fn allocate_gsi(&self) -> Result<u32, PciError> {
        Ok(24 + self.next_gsi.fetch_add(1, Ordering::Relaxed))
    }
    fn release_gsi(&self, _gsi: u32) -> Result<(), PciError> {
        Ok(())
    }
    fn set_msi_route(&self, _gsi: u32, _message: MsiMessage) -> Result<(), PciError> {
        Ok(())
    }
    fn register_irqfd(&self, _event: &EventFd, _gsi: u32) -> Result<(), PciError> {
        Ok(())
    }
    fn unregister_irqfd(&self, _event: &EventFd, _gsi: u32) -> Result<(), PciError> {
        Ok(())
    }
    fn register_ioevent(&self, _event: &EventFd, _address: u64) -> Result<(), PciError> {
        Ok(())
    }
    fn unregister_ioevent(&self, _event: &EventFd, _address: u64) -> Result<(), PciError> {
        Ok(())
    }
}
