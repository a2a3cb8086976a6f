//! Giving guest pages back to the host: `madvise(MADV_DONTNEED)` on the host mapping of a
//! guest-physical range. Guest RAM is private anonymous memory (engine/memory.rs), so the host
//! frees the pages at once (vmd's RSS drops) and a later guest access finds zeroes.
//!
//! Ranges come from the guest and are checked here: only whole 4 KiB pages inside one RAM
//! region are released; anything else is refused (and counted by the caller as a guest
//! error), never passed to the kernel.

use crate::engine::memory::GuestRam;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

use super::BALLOON_PAGE;

/// Why a range was not released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// The range is not whole pages, or not inside one RAM region.
    #[error("{len:#x} bytes at guest address {addr:#x} are not whole pages of guest RAM")]
    OutsideRam {
        /// Guest-physical start.
        addr: u64,
        /// Length, bytes.
        len: u64,
    },
    /// The kernel refused (errno).
    #[error("madvise refused {len:#x} bytes at guest address {addr:#x} (errno {errno})")]
    Madvise {
        /// Guest-physical start.
        addr: u64,
        /// Length, bytes.
        len: u64,
        /// The errno.
        errno: i32,
    },
}

/// Releases `len` bytes of guest RAM at `addr` (both multiples of 4 KiB) on the host.
pub fn release(mem: &GuestRam, addr: u64, len: u64) -> Result<(), ReleaseError> {
    let outside = ReleaseError::OutsideRam { addr, len };
    if len == 0 {
        return Ok(());
    }
    if !addr.is_multiple_of(BALLOON_PAGE) || !len.is_multiple_of(BALLOON_PAGE) {
        return Err(outside);
    }
    let region = mem.find_region(GuestAddress(addr)).ok_or(outside)?;
    let offset = addr - region.start_addr().0;
    let end = offset.checked_add(len).ok_or(outside)?;
    if end > region.len() {
        return Err(outside);
    }
    let offset = usize::try_from(offset).map_err(|_| outside)?;
    let len_usize = usize::try_from(len).map_err(|_| outside)?;
    let host = region.as_ptr();
    // SAFETY: `offset..offset + len` lies inside this region's live private anonymous mapping
    // (checked just above; the region is borrowed from `mem`, which the caller keeps alive),
    // and both are multiples of 4 KiB, the host page size of guest RAM, so the address is page
    // aligned. MADV_DONTNEED only drops the pages' contents: the mapping stays valid and reads
    // as zeroes afterwards. No Rust reference into guest RAM exists (guest memory is only
    // accessed through vm-memory's volatile copies), so no Rust-visible value changes under a
    // reference.
    let rc = unsafe {
        libc::madvise(
            host.add(offset).cast::<libc::c_void>(),
            len_usize,
            libc::MADV_DONTNEED,
        )
    };
    if rc != 0 {
        return Err(ReleaseError::Madvise {
            addr,
            len,
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        });
    }
    Ok(())
}

/// Collects page numbers into contiguous ranges so that a run of pages costs one `madvise`.
#[derive(Debug, Default)]
pub struct Ranges {
    current: Option<(u64, u64)>,
    done: Vec<(u64, u64)>,
}

impl Ranges {
    /// Adds balloon page `pfn` (4 KiB units).
    pub fn push(&mut self, pfn: u32) {
        let addr = u64::from(pfn) * BALLOON_PAGE;
        match &mut self.current {
            Some((start, len)) if *start + *len == addr => *len += BALLOON_PAGE,
            _ => {
                if let Some(range) = self.current.replace((addr, BALLOON_PAGE)) {
                    self.done.push(range);
                }
            }
        }
    }

    /// Every range, (guest address, bytes), in the order they were built.
    pub fn finish(mut self) -> Vec<(u64, u64)> {
        self.done.extend(self.current.take());
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    const MIB: u64 = 1 << 20;

    #[test]
    fn consecutive_pages_become_one_range() {
        let mut ranges = Ranges::default();
        for pfn in [10, 11, 12, 20, 21, 5] {
            ranges.push(pfn);
        }
        assert_eq!(
            ranges.finish(),
            vec![
                (10 * 4096, 3 * 4096),
                (20 * 4096, 2 * 4096),
                (5 * 4096, 4096)
            ]
        );
    }

    #[test]
    fn a_released_page_reads_as_zero_and_leaves_the_host() {
        let mem = crate::engine::memory::create_guest_memory(4 * MIB).expect("map");
        mem.write_slice(&[0xab; 8192], GuestAddress(MIB))
            .expect("write");

        release(&mem, MIB, 8192).expect("release");

        let mut back = [0xffu8; 8192];
        mem.read_slice(&mut back, GuestAddress(MIB)).expect("read");
        assert!(back.iter().all(|&b| b == 0));
    }

    #[test]
    fn ranges_outside_ram_or_unaligned_are_refused() {
        let mem = crate::engine::memory::create_guest_memory(4 * MIB).expect("map");
        assert!(release(&mem, 4 * MIB, 4096).is_err(), "past the end");
        assert!(release(&mem, 3 * MIB, 2 * MIB).is_err(), "crosses the end");
        assert!(release(&mem, 100, 4096).is_err(), "unaligned");
        assert!(release(&mem, u64::MAX - 4095, 4096).is_err(), "wraps");
    }
}
