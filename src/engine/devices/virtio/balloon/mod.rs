//! virtio-balloon (virtio 1.x §5.5): the host asks the guest to give memory back by raising a
//! target (`num_pages`); the guest's driver hands over pages (inflate queue) and takes them
//! back (deflate queue), reports free memory it does not need (free page reporting), and sends
//! memory statistics (stats queue). Every page the guest gives or reports is released on the
//! host (`madvise(MADV_DONTNEED)` on the private anonymous guest RAM), so vmd's resident memory
//! drops by that much; the guest gets zeroed memory back if it touches the page again.
//!
//! - `device.rs`: [`VirtioBalloon`], the [`VirtioDevice`](super::VirtioDevice): features
//!   (`STATS_VQ`, `DEFLATE_ON_OOM`, `REPORTING`), the configuration space (`num_pages`,
//!   `actual`), starting and stopping the worker.
//! - `worker.rs`: the thread serving the queues.
//! - `release.rs`: giving guest pages back to the host.
//! - `syscalls.rs`: what the worker thread may call in a confined vmd.
//! - [`Balloon`]: the control handle the VM's owner keeps (target, actual, statistics).
//!
//! Queue numbering follows the driver: inflate 0, deflate 1, then the stats queue and the
//! reporting queue in that order, each only when its feature was negotiated (a Linux driver
//! numbers only the queues it uses).

mod device;
mod release;
pub(crate) mod syscalls;
mod worker;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

pub use device::VirtioBalloon;

use super::VirtioInterrupt;

/// Bytes per balloon page (`VIRTIO_BALLOON_PFN_SHIFT` = 12), whatever the guest's page size.
pub const BALLOON_PAGE: u64 = 4096;
/// Feature bit: the stats queue exists.
pub const F_STATS_VQ: u64 = 1 << 1;
/// Feature bit: the guest deflates when it runs out of memory.
pub const F_DEFLATE_ON_OOM: u64 = 1 << 2;
/// Feature bit: free page reporting.
pub const F_REPORTING: u64 = 1 << 5;

/// Memory statistics a guest sends (virtio 1.x §5.5.6.3); `None` for those it did not send.
/// Sizes in bytes, counts as the guest counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalloonStats {
    /// Bytes swapped in (`VIRTIO_BALLOON_S_SWAP_IN`).
    pub swap_in: Option<u64>,
    /// Bytes swapped out.
    pub swap_out: Option<u64>,
    /// Major page faults.
    pub major_faults: Option<u64>,
    /// Minor page faults.
    pub minor_faults: Option<u64>,
    /// Free memory, bytes.
    pub free: Option<u64>,
    /// Total memory the guest sees, bytes.
    pub total: Option<u64>,
    /// Available memory (free plus reclaimable), bytes.
    pub available: Option<u64>,
    /// Disk caches, bytes.
    pub disk_caches: Option<u64>,
    /// Hugetlb allocations.
    pub hugetlb_allocations: Option<u64>,
    /// Hugetlb allocation failures.
    pub hugetlb_failures: Option<u64>,
    /// When the guest last sent them, seconds since the Unix epoch (`None`: never).
    pub updated_at: Option<u64>,
}

impl BalloonStats {
    /// Records one `virtio_balloon_stat` (tag, value); unknown tags are ignored.
    pub fn record(&mut self, tag: u16, value: u64) {
        let slot = match tag {
            0 => &mut self.swap_in,
            1 => &mut self.swap_out,
            2 => &mut self.major_faults,
            3 => &mut self.minor_faults,
            4 => &mut self.free,
            5 => &mut self.total,
            6 => &mut self.available,
            7 => &mut self.disk_caches,
            8 => &mut self.hugetlb_allocations,
            9 => &mut self.hugetlb_failures,
            _ => return,
        };
        *slot = Some(value);
    }
}

/// What the balloon says now ([`Balloon::info`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalloonInfo {
    /// Memory the host asks the guest to give back, bytes.
    pub target_bytes: u64,
    /// Memory the guest says it has given back, bytes.
    pub actual_bytes: u64,
    /// Bytes the device has released on the host since boot (inflated pages and reported free
    /// pages; a page reported twice counts twice).
    pub released_bytes: u64,
    /// Whether the guest's driver has started the device.
    pub driver_ready: bool,
    /// The guest's latest statistics.
    pub stats: BalloonStats,
}

#[derive(Default)]
struct State {
    target_pages: u32,
    actual_pages: u32,
    released_bytes: u64,
    stats: BalloonStats,
    /// Set while the device is activated: how to tell the driver the target changed.
    interrupt: Option<Arc<dyn VirtioInterrupt>>,
}

/// The balloon's control handle, shared by the device (on vCPU and worker threads) and the
/// VM's owner. Every method returns promptly.
#[derive(Clone, Default)]
pub struct Balloon {
    state: Arc<Mutex<State>>,
}

impl Balloon {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Each update is a few stores; a poisoned lock still holds coherent numbers.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the guest to give back `bytes` (rounded down to whole 4 KiB pages) and tells it so
    /// with a configuration-change interrupt when its driver runs.
    pub fn set_target(&self, bytes: u64) {
        let pages = u32::try_from(bytes / BALLOON_PAGE).unwrap_or(u32::MAX);
        let interrupt = {
            let mut state = self.lock();
            if state.target_pages == pages {
                return;
            }
            state.target_pages = pages;
            state.interrupt.clone()
        };
        if let Some(interrupt) = interrupt {
            interrupt.signal_config();
        }
    }

    /// Target and actual size, released bytes and the latest statistics.
    pub fn info(&self) -> BalloonInfo {
        let state = self.lock();
        BalloonInfo {
            target_bytes: u64::from(state.target_pages) * BALLOON_PAGE,
            actual_bytes: u64::from(state.actual_pages) * BALLOON_PAGE,
            released_bytes: state.released_bytes,
            driver_ready: state.interrupt.is_some(),
            stats: state.stats.clone(),
        }
    }

    fn target_pages(&self) -> u32 {
        self.lock().target_pages
    }

    fn actual_pages(&self) -> u32 {
        self.lock().actual_pages
    }

    fn set_actual_pages(&self, pages: u32) {
        self.lock().actual_pages = pages;
    }

    fn restore(&self, target_pages: u32, actual_pages: u32) {
        let mut state = self.lock();
        state.target_pages = target_pages;
        state.actual_pages = actual_pages;
    }

    fn add_released(&self, bytes: u64) {
        let mut state = self.lock();
        state.released_bytes = state.released_bytes.saturating_add(bytes);
    }

    fn set_stats(&self, mut stats: BalloonStats) {
        stats.updated_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs());
        self.lock().stats = stats;
    }

    fn set_interrupt(&self, interrupt: Option<Arc<dyn VirtioInterrupt>>) {
        self.lock().interrupt = interrupt;
    }
}

#[cfg(test)]
mod tests;
