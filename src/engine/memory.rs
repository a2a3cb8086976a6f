//! Guest RAM: where it sits in the guest-physical address space, the e820 map that tells the
//! guest so, and how much of it the host has actually backed.
//!
//! RAM below the 32-bit MMIO hole runs from 0 to `min(size, 3 GiB)`; the rest continues at
//! 4 GiB ([`layout::MMIO_HOLE_END`]). Both ranges are anonymous private mappings (vm-memory's
//! `GuestMemoryMmap`), so an untouched page costs the host nothing and
//! [`touched_bytes`] (mincore) says how much the guest has used.
//!
//! Each mapping starts on a 2 MiB boundary of the host's address space, as QEMU's RAM does:
//! guest-physical 2 MiB pages then line up with host 2 MiB pages, so KVM can map guest RAM
//! with large pages when transparent huge pages back it. Unaligned, a 2 MiB guest page
//! straddles two host huge pages; under the real-Linux tier's nested paging (kvm_amd npt=1
//! in an L1 under QEMU's TCG) 7 of 16 boots of Linux then triple-faulted or hung, while
//! QEMU's aligned RAM booted every time (issue "Real Linux on every machine").
//! vm-memory maps only at addresses the kernel picks, so [`RamMapping`] reserves a larger
//! range, trims it to the aligned part, and hands vm-memory that pointer; it unmaps the
//! range when the last region using it is dropped.

use super::layout;
use std::sync::Arc;
use vm_memory::bitmap::{Bitmap, WithBitmapSlice};
use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap,
};

/// Guest RAM as the engine holds it: vm-memory's mmap-backed memory whose every region owns
/// its 2 MiB-aligned mapping through a [`RamMapping`]. Clones share the mappings.
pub type GuestRam = GuestMemoryMmap<RamMapping>;

/// Host alignment of every guest RAM mapping: one x86 large page.
pub const HOST_ALIGNMENT: usize = 2 << 20;

/// Guest RAM sizes must be a multiple of this (the identity map uses 2 MiB pages).
pub const MEMORY_ALIGNMENT: u64 = 2 << 20;
/// Smallest guest RAM accepted: the boot structures, the ACPI tables and a program at 1 MiB.
pub const MIN_MEMORY_BYTES: u64 = 2 << 20;
/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type of reserved address space.
pub const E820_RESERVED: u32 = 2;

/// Errors setting up guest RAM.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The requested size is unusable.
    #[error(
        "guest memory of {bytes} bytes is not a multiple of 2 MiB of at least 2 MiB: \
         choose a size such as 256 MiB"
    )]
    InvalidSize {
        /// The size asked for, bytes.
        bytes: u64,
    },
    /// mmap of the guest RAM failed.
    #[error("cannot map {bytes} bytes of guest memory: free host memory or choose a smaller size")]
    Map {
        /// The size asked for, bytes.
        bytes: u64,
        /// What the kernel reported.
        #[source]
        source: std::io::Error,
    },
    /// vm-memory refused a mapped range (not page aligned).
    #[error("cannot use the guest memory mapping of {bytes} bytes")]
    Region {
        /// The size asked for, bytes.
        bytes: u64,
        /// What vm-memory reported.
        #[source]
        source: vm_memory::mmap::MmapRegionError,
    },
    /// vm-memory refused the set of ranges (they overlap or are unsorted).
    #[error("cannot lay out the guest memory of {bytes} bytes")]
    Layout {
        /// The size asked for, bytes.
        bytes: u64,
        /// What vm-memory reported.
        #[source]
        source: vm_memory::GuestRegionCollectionError,
    },
}

/// One anonymous private mapping of guest RAM starting on a [`HOST_ALIGNMENT`] boundary,
/// unmapped when dropped.
#[derive(Debug)]
struct AlignedMapping {
    addr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; the pointer is only used to unmap
// it in `drop`, which may run on any thread. Access to the memory itself goes through
// vm-memory's regions, which are Send + Sync on their own terms.
unsafe impl Send for AlignedMapping {}
// SAFETY: as above; `&AlignedMapping` gives no access to the memory.
unsafe impl Sync for AlignedMapping {}

impl AlignedMapping {
    /// Maps `len` bytes (a multiple of the page size) of zeroed memory at a 2 MiB-aligned
    /// host address.
    fn new(len: usize) -> std::io::Result<AlignedMapping> {
        let reserve = len
            .checked_add(HOST_ALIGNMENT)
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses; no existing
        // memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserve,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let start = (base as usize).next_multiple_of(HOST_ALIGNMENT);
        let head = start - base as usize;
        let tail = reserve - head - len;
        // SAFETY: `[base, base + head)` and `[start + len, start + len + tail)` lie inside the
        // mapping made just above and nothing refers to them; unmapping them leaves exactly
        // `[start, start + len)` mapped. A failed munmap only leaves slack mapped.
        unsafe {
            if head > 0 {
                libc::munmap(base, head);
            }
            if tail > 0 {
                libc::munmap((start + len) as *mut libc::c_void, tail);
            }
        }
        Ok(AlignedMapping {
            addr: start as *mut u8,
            len,
        })
    }
}

impl Drop for AlignedMapping {
    fn drop(&mut self) {
        // SAFETY: `addr..addr + len` is the mapping `new` made; this value owns it and is
        // dropped only after the last region (and so the last guest-memory clone) using it.
        unsafe {
            libc::munmap(self.addr.cast::<libc::c_void>(), self.len);
        }
    }
}

/// Keeps a guest RAM region's [`AlignedMapping`] alive for as long as the region exists.
///
/// vm-memory gives each region a dirty-page bitmap and drops it with the region; vmux tracks
/// no dirty pages, so this "bitmap" records nothing (like vm-memory's `()`) and only carries
/// the ownership of the mapping the region points into.
#[derive(Debug, Clone)]
pub struct RamMapping {
    /// Held, never read: dropping the last clone unmaps the memory.
    _mapping: Arc<AlignedMapping>,
}

impl WithBitmapSlice<'_> for RamMapping {
    type S = ();
}

impl Bitmap for RamMapping {
    fn mark_dirty(&self, _offset: usize, _len: usize) {}

    fn dirty_at(&self, _offset: usize) -> bool {
        false
    }

    fn slice_at(&self, _offset: usize) {}
}

/// One contiguous range of guest RAM (guest-physical start and length in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamRange {
    /// Guest-physical start address.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

/// The RAM ranges of a VM with `bytes` of memory: one below the MMIO hole and, when the VM
/// has more than fits there, one from 4 GiB. `bytes` must already be validated.
pub fn ram_ranges(bytes: u64) -> Vec<RamRange> {
    let low = bytes.min(layout::MMIO_HOLE_START);
    let mut ranges = vec![RamRange { start: 0, len: low }];
    if bytes > low {
        ranges.push(RamRange {
            start: layout::MMIO_HOLE_END,
            len: bytes - low,
        });
    }
    ranges
}

/// End (exclusive) of RAM below the MMIO hole: where the initrd and kernel must end.
pub fn low_ram_end(bytes: u64) -> u64 {
    bytes.min(layout::MMIO_HOLE_START)
}

/// Checks that `bytes` is a usable guest RAM size.
pub fn validate_size(bytes: u64) -> Result<(), MemoryError> {
    if bytes < MIN_MEMORY_BYTES || !bytes.is_multiple_of(MEMORY_ALIGNMENT) {
        return Err(MemoryError::InvalidSize { bytes });
    }
    Ok(())
}

/// Maps `bytes` of guest RAM at the addresses [`ram_ranges`] gives.
pub fn create_guest_memory(bytes: u64) -> Result<GuestRam, MemoryError> {
    validate_size(bytes)?;
    map_ranges(&ram_ranges(bytes))
}

/// Maps guest RAM for each of `ranges` (page-aligned lengths, not overlapping), each range
/// at a 2 MiB-aligned host address.
pub fn map_ranges(ranges: &[RamRange]) -> Result<GuestRam, MemoryError> {
    let bytes = ranges.iter().map(|r| r.len).sum();
    let mut regions = Vec::with_capacity(ranges.len());
    for range in ranges {
        let len = usize::try_from(range.len).map_err(|_| MemoryError::InvalidSize { bytes })?;
        let mapping =
            AlignedMapping::new(len).map_err(|source| MemoryError::Map { bytes, source })?;
        let addr = mapping.addr;
        let owner = RamMapping {
            _mapping: Arc::new(mapping),
        };
        // SAFETY: `addr..addr + len` is the live mapping `owner` holds; the region keeps
        // `owner` (as its bitmap) for as long as it exists, so the memory outlives every use
        // vm-memory makes of the pointer.
        let region =
            unsafe { MmapRegionBuilder::new_with_bitmap(len, owner).with_raw_mmap_pointer(addr) }
                .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
                .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE)
                .build()
                .map_err(|source| MemoryError::Region { bytes, source })?;
        // `new` refuses only a range whose end overflows u64, which `ram_ranges` never makes.
        let region = GuestRegionMmap::new(region, GuestAddress(range.start))
            .ok_or(MemoryError::InvalidSize { bytes })?;
        regions.push(region);
    }
    GuestMemoryMmap::from_regions(regions).map_err(|source| MemoryError::Layout { bytes, source })
}

/// One e820 entry as the zero page stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    /// Guest-physical start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// [`E820_RAM`] or [`E820_RESERVED`].
    pub kind: u32,
}

/// The e820 map of a VM with `bytes` of RAM: usable low RAM up to the EBDA, the EBDA and BIOS
/// area (holding the ACPI tables) reserved, usable RAM from 1 MiB to the hole, the PCI ECAM
/// reserved (Linux only trusts MMCONFIG that the firmware reserved), and usable RAM above
/// 4 GiB.
pub fn e820_map(bytes: u64) -> Vec<E820Entry> {
    let low_end = low_ram_end(bytes);
    let mut map = vec![
        E820Entry {
            addr: 0,
            size: layout::EBDA_START,
            kind: E820_RAM,
        },
        E820Entry {
            addr: layout::EBDA_START,
            size: layout::HIGH_RAM_START - layout::EBDA_START,
            kind: E820_RESERVED,
        },
    ];
    if low_end > layout::HIGH_RAM_START {
        map.push(E820Entry {
            addr: layout::HIGH_RAM_START,
            size: low_end - layout::HIGH_RAM_START,
            kind: E820_RAM,
        });
    }
    map.push(E820Entry {
        addr: layout::PCI_ECAM_START,
        size: layout::PCI_ECAM_SIZE,
        kind: E820_RESERVED,
    });
    if bytes > low_end {
        map.push(E820Entry {
            addr: layout::MMIO_HOLE_END,
            size: bytes - low_end,
            kind: E820_RAM,
        });
    }
    map
}

/// Guest RAM of `len` bytes (a page multiple) at guest-physical `start`, for tests.
#[cfg(test)]
pub fn test_ram(start: u64, len: u64) -> GuestRam {
    map_ranges(&[RamRange { start, len }]).expect("map test guest memory")
}

/// Bytes of guest RAM the host has backed with pages so far (pages resident in the VMM's
/// mappings, counted with mincore). Pages swapped out are not counted.
pub fn touched_bytes(mem: &GuestRam) -> u64 {
    // A host page size query cannot fail on Linux; 4 KiB is the safe fallback.
    let page = page_size();
    // Count in windows so that a large guest does not need one huge vector.
    const WINDOW: usize = 64 << 20;
    let mut resident_pages = 0u64;
    for region in mem.iter() {
        let base = region.as_ptr();
        let len = region.len() as usize;
        let mut vec = vec![0u8; WINDOW.div_ceil(page)];
        let mut offset = 0usize;
        while offset < len {
            let chunk = WINDOW.min(len - offset);
            let pages = chunk.div_ceil(page);
            // SAFETY: `base + offset .. + chunk` lies inside the region's live mapping (the
            // region is borrowed for the whole call), `offset` is a multiple of the page size so
            // the address is page aligned, and `vec` holds at least `pages` bytes for the result.
            let rc = unsafe {
                libc::mincore(
                    base.add(offset).cast::<libc::c_void>(),
                    chunk,
                    vec.as_mut_ptr().cast::<libc::c_uchar>(),
                )
            };
            if rc == 0 {
                resident_pages += vec[..pages].iter().filter(|b| **b & 1 != 0).count() as u64;
            }
            offset += chunk;
        }
    }
    resident_pages * page as u64
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|s| *s > 0)
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn small_vm_has_one_ram_range_from_zero() {
        assert_eq!(
            ram_ranges(256 * MIB),
            vec![RamRange {
                start: 0,
                len: 256 * MIB
            }]
        );
    }

    #[test]
    fn large_vm_continues_above_four_gib() {
        assert_eq!(
            ram_ranges(5 * GIB),
            vec![
                RamRange {
                    start: 0,
                    len: 3 * GIB
                },
                RamRange {
                    start: 4 * GIB,
                    len: 2 * GIB
                },
            ]
        );
    }

    #[test]
    fn size_not_multiple_of_two_mib_is_refused() {
        assert!(matches!(
            validate_size(3 * MIB),
            Err(MemoryError::InvalidSize { bytes }) if bytes == 3 * MIB
        ));
    }

    #[test]
    fn size_below_minimum_is_refused() {
        assert!(validate_size(0).is_err());
    }

    #[test]
    fn e820_of_small_vm_reserves_bios_area_and_ecam() {
        let map = e820_map(256 * MIB);
        assert_eq!(
            map,
            vec![
                E820Entry {
                    addr: 0,
                    size: 0x9_fc00,
                    kind: E820_RAM
                },
                E820Entry {
                    addr: 0x9_fc00,
                    size: 0x10_0000 - 0x9_fc00,
                    kind: E820_RESERVED
                },
                E820Entry {
                    addr: 0x10_0000,
                    size: 255 * MIB,
                    kind: E820_RAM
                },
                E820Entry {
                    addr: 0xe000_0000,
                    size: MIB,
                    kind: E820_RESERVED
                },
            ]
        );
    }

    #[test]
    fn e820_of_large_vm_lists_ram_above_four_gib() {
        let map = e820_map(6 * GIB);
        assert_eq!(
            map[2],
            E820Entry {
                addr: MIB,
                size: 3 * GIB - MIB,
                kind: E820_RAM
            }
        );
        assert_eq!(
            map[4],
            E820Entry {
                addr: 4 * GIB,
                size: 3 * GIB,
                kind: E820_RAM
            }
        );
        assert_eq!(map.len(), 5);
    }

    #[test]
    fn every_ram_range_starts_on_a_two_mib_host_boundary() {
        let mem = create_guest_memory(3 * GIB + 64 * MIB).expect("map");
        assert_eq!(mem.num_regions(), 2);
        for region in mem.iter() {
            assert_eq!(region.as_ptr() as usize % HOST_ALIGNMENT, 0);
        }
    }

    #[test]
    fn guest_memory_is_unmapped_with_its_last_clone() {
        let mem = create_guest_memory(4 * MIB).expect("map");
        let addr = mem.iter().next().expect("a region").as_ptr() as usize;
        let clone = mem.clone();
        drop(mem);
        assert!(mapped(addr), "a clone still uses the memory");
        clone
            .write_slice(&[7u8; 16], GuestAddress(0))
            .expect("the clone can write");
        drop(clone);
        assert!(!mapped(addr), "guest memory outlived its last user");
    }

    /// Whether `addr` is inside any mapping of this process.
    fn mapped(addr: usize) -> bool {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        maps.lines().any(|line| {
            let range = line.split_whitespace().next().unwrap_or_default();
            let (lo, hi) = range.split_once('-').unwrap_or_default();
            let lo = usize::from_str_radix(lo, 16).unwrap_or(usize::MAX);
            let hi = usize::from_str_radix(hi, 16).unwrap_or(0);
            (lo..hi).contains(&addr)
        })
    }

    #[test]
    fn fresh_memory_is_untouched_and_writes_count() {
        let mem = create_guest_memory(4 * MIB).expect("map 4 MiB");
        let before = touched_bytes(&mem);
        mem.write_slice(&[1u8; 8192], GuestAddress(MIB))
            .expect("write inside RAM");
        let after = touched_bytes(&mem);
        assert_eq!(before, 0);
        assert!(after >= 8192, "touched {after} bytes");
    }
}
