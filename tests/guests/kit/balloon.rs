//! A virtio-balloon driver (virtio 1.x §5.5), the way Linux's virtio_balloon behaves: it gives
//! the device as many 4 KiB pages as the device's `num_pages` asks for (inflate queue) and
//! takes them back when the target drops (deflate queue), writing `actual` after each step,
//! and keeps one statistics buffer with the device, refilling it whenever the device hands it
//! back (stats queue).
//!
//! The pages come from a pool the program names (a range of RAM it does not otherwise use):
//! inflating takes pages from the top of the pool down, deflating gives them back in the
//! reverse order.

use crate::kit::pci::Config;
use crate::kit::virtio::{self, Device, Queue, Wait};

/// Feature: the stats queue.
pub const F_STATS_VQ: u64 = 1 << 1;
/// Statistics tags (virtio 1.x §5.5.6.3).
const TAG_MAJOR_FAULTS: u16 = 2;
const TAG_FREE: u16 = 4;
const TAG_TOTAL: u16 = 5;
const TAG_AVAILABLE: u16 = 6;
/// Page numbers per inflate or deflate request (one page of u32s).
const PFNS_PER_REQUEST: usize = 1024;
const REQUEST_TIMEOUT_US: u64 = 2_000_000;

#[repr(C, align(4096))]
struct Buffers {
    pfns: [u32; PFNS_PER_REQUEST],
    stats: [u8; 40],
}

static mut BUFFERS: Buffers = Buffers {
    pfns: [0; PFNS_PER_REQUEST],
    stats: [0; 40],
};

/// The balloon and the pool it takes pages from.
pub struct Balloon {
    device: Device,
    inflate: Queue,
    deflate: Queue,
    stats: Queue,
    pool_first_pfn: u32,
    pool_pages: u32,
    /// Pages given to the device.
    actual: u32,
    /// Guest RAM, bytes (for the statistics).
    ram_bytes: u64,
    /// Statistics buffers sent so far (reported as "major faults" so the host sees it move).
    stats_sent: u64,
}

/// The slot of the first virtio-balloon function, if any.
pub fn find(config: Config) -> Option<u8> {
    (0..32u8).find(|&slot| config.ids(slot) == Some((virtio::VENDOR_ID, virtio::DEVICE_ID_BALLOON)))
}

impl Balloon {
    /// Brings up the balloon in `slot` (queues on ring pages 1..=3) with a pool of
    /// `pool_pages` pages from guest address `pool_base` (4 KiB aligned), and hands the device
    /// the first statistics.
    pub fn bring_up(
        config: Config,
        slot: u8,
        pool_base: u64,
        pool_pages: u32,
        ram_bytes: u64,
    ) -> Result<Balloon, &'static str> {
        let device = Device::probe(config, slot).map_err(virtio::Error::text)?;
        let mut inflate = Queue::for_index(1);
        let mut deflate = Queue::for_index(2);
        let mut stats = Queue::for_index(3);
        let offered = device
            .bring_up_queues(&mut [&mut inflate, &mut deflate, &mut stats], F_STATS_VQ)
            .map_err(virtio::Error::text)?;
        if offered & F_STATS_VQ == 0 {
            return Err("the balloon offers no stats queue");
        }
        let mut balloon = Balloon {
            device,
            inflate,
            deflate,
            stats,
            pool_first_pfn: (pool_base >> 12) as u32,
            pool_pages,
            actual: 0,
            ram_bytes,
            stats_sent: 0,
        };
        balloon.device.write_config_u32(4, 0);
        balloon.send_stats();
        Ok(balloon)
    }

    /// Pages given to the device.
    pub fn actual(&self) -> u32 {
        self.actual
    }

    /// The device's target, pages.
    pub fn target(&self) -> u32 {
        self.device.config_u32(0)
    }

    /// Moves toward the device's target (within the pool) and refills the statistics buffer
    /// when the device handed it back. Returns the new size when it changed.
    pub fn poll(&mut self) -> Result<Option<u32>, &'static str> {
        if self.stats.take_used().is_some() {
            self.send_stats();
        }
        let target = self.target().min(self.pool_pages);
        let before = self.actual;
        while self.actual < target {
            let n = ((target - self.actual) as usize).min(PFNS_PER_REQUEST);
            let top = self.pool_pages - self.actual;
            self.give(true, top - n as u32, n)?;
            self.actual += n as u32;
        }
        while self.actual > target {
            let n = ((self.actual - target) as usize).min(PFNS_PER_REQUEST);
            let first = self.pool_pages - self.actual;
            self.give(false, first, n)?;
            self.actual -= n as u32;
        }
        if self.actual == before {
            return Ok(None);
        }
        self.device.write_config_u32(4, self.actual);
        Ok(Some(self.actual))
    }

    /// Sends pool pages `first..first + n` on the inflate (`inflate`) or deflate queue and
    /// waits for the device.
    fn give(&mut self, inflate: bool, first: u32, n: usize) -> Result<(), &'static str> {
        let b = &raw mut BUFFERS;
        // SAFETY: single-threaded, and no request using the buffer is outstanding.
        let pfns = unsafe { &mut (*b).pfns };
        for (i, pfn) in pfns.iter_mut().take(n).enumerate() {
            *pfn = self.pool_first_pfn + first + i as u32;
        }
        let addr = pfns.as_ptr() as u64;
        let queue = if inflate {
            &mut self.inflate
        } else {
            &mut self.deflate
        };
        match queue.submit(&self.device, &[(addr, (n * 4) as u32, false)], REQUEST_TIMEOUT_US) {
            Wait::Used { .. } => Ok(()),
            Wait::NeedsReset => Err("the balloon asked for a reset"),
            Wait::Timeout => Err("the balloon did not take the pages back in time"),
        }
    }

    /// Fills the statistics buffer and hands it to the device (which keeps it until it wants
    /// fresh numbers).
    fn send_stats(&mut self) {
        self.stats_sent += 1;
        let free = u64::from(self.pool_pages - self.actual) * 4096;
        let entries = [
            (TAG_MAJOR_FAULTS, self.stats_sent),
            (TAG_FREE, free),
            (TAG_TOTAL, self.ram_bytes - u64::from(self.actual) * 4096),
            (TAG_AVAILABLE, free),
        ];
        let b = &raw mut BUFFERS;
        // SAFETY: single-threaded; the device handed the buffer back (or never had it).
        let stats = unsafe { &mut (*b).stats };
        for (slot, (tag, value)) in stats.chunks_exact_mut(10).zip(entries) {
            slot[..2].copy_from_slice(&tag.to_le_bytes());
            slot[2..].copy_from_slice(&value.to_le_bytes());
        }
        self.stats
            .set_desc(0, stats.as_ptr() as u64, stats.len() as u32, 0, 0);
        self.stats.publish(0);
        self.stats.notify();
    }
}
