//! Guest RAM: where it sits in the guest-physical address space, the e820 map that tells the
//! guest so, and how much of it the host has actually backed.
//!
//! RAM below the 32-bit MMIO hole runs from 0 to `min(size, 3 GiB)`; the rest continues at
//! 4 GiB ([`layout::MMIO_HOLE_END`]). Both ranges are anonymous private mappings (vm-memory's
//! `GuestMemoryMmap`), so an untouched page costs the host nothing and
//! [`touched_bytes`] (mincore) says how much the guest has used.

use super::layout;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

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
        /// What vm-memory reported.
        #[source]
        source: vm_memory::mmap::FromRangesError,
    },
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
pub fn create_guest_memory(bytes: u64) -> Result<GuestMemoryMmap, MemoryError> {
    validate_size(bytes)?;
    let ranges: Vec<(GuestAddress, usize)> = ram_ranges(bytes)
        .iter()
        .map(|r| (GuestAddress(r.start), r.len as usize))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges).map_err(|source| MemoryError::Map { bytes, source })
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

/// Bytes of guest RAM the host has backed with pages so far (pages resident in the VMM's
/// mappings, counted with mincore). Pages swapped out are not counted.
pub fn touched_bytes(mem: &GuestMemoryMmap) -> u64 {
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
