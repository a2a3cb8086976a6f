//! A first-fit allocator of aligned address ranges inside one window (BARs in the 32-bit PCI
//! MMIO window). Small on purpose: a VM has at most 31 devices with a few BARs each.

use std::collections::BTreeMap;

/// Hands out non-overlapping, aligned ranges of `[start, start + size)`. Owned by whoever
/// builds devices (VM setup, later hot-add) on one thread at a time.
#[derive(Debug, Clone)]
pub struct AddressAllocator {
    start: u64,
    end: u64,
    /// Allocated ranges: start → length.
    taken: BTreeMap<u64, u64>,
}

impl AddressAllocator {
    /// An allocator over `[start, start + size)`.
    pub fn new(start: u64, size: u64) -> AddressAllocator {
        AddressAllocator {
            start,
            end: start.saturating_add(size),
            taken: BTreeMap::new(),
        }
    }

    /// The lowest free range of `size` bytes aligned to `align` (a power of two), or `None`
    /// when the window has no such gap.
    pub fn allocate(&mut self, size: u64, align: u64) -> Option<u64> {
        if size == 0 || !align.is_power_of_two() {
            return None;
        }
        let mut candidate = self.start.checked_next_multiple_of(align)?;
        for (&base, &len) in &self.taken {
            if candidate.checked_add(size)? <= base {
                break;
            }
            candidate = candidate.max((base + len).checked_next_multiple_of(align)?);
        }
        let end = candidate.checked_add(size)?;
        (end <= self.end).then(|| {
            self.taken.insert(candidate, size);
            candidate
        })
    }

    /// Takes `[base, base + size)` if it lies in the window and overlaps nothing taken (a
    /// restore puts a BAR back where it was); says whether it did.
    pub fn reserve(&mut self, base: u64, size: u64) -> bool {
        let Some(end) = base.checked_add(size) else {
            return false;
        };
        if size == 0 || base < self.start || end > self.end {
            return false;
        }
        let before = self.taken.range(..end).next_back();
        if before.is_some_and(|(&b, &l)| b + l > base) {
            return false;
        }
        self.taken.insert(base, size);
        true
    }

    /// Returns the range starting at `base` (from [`allocate`](Self::allocate)); unknown
    /// addresses are ignored.
    pub fn free(&mut self, base: u64) {
        self.taken.remove(&base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_and_do_not_overlap() {
        let mut allocator = AddressAllocator::new(0x1000, 0x10_0000);

        let a = allocator.allocate(0x100, 0x100).unwrap();
        let b = allocator.allocate(0x8000, 0x8000).unwrap();
        let c = allocator.allocate(0x100, 0x100).unwrap();

        assert_eq!((a, b, c), (0x1000, 0x8000, 0x1100));
    }

    #[test]
    fn a_reserved_range_is_not_handed_out_and_overlaps_are_refused() {
        let mut allocator = AddressAllocator::new(0x1000, 0x10_0000);

        assert!(allocator.reserve(0x8000, 0x8000));
        assert!(!allocator.reserve(0xc000, 0x1000), "overlaps");
        assert!(!allocator.reserve(0x20_0000, 0x1000), "outside the window");

        assert_eq!(allocator.allocate(0x8000, 0x8000), Some(0x10000));
    }

    #[test]
    fn a_full_window_refuses() {
        let mut allocator = AddressAllocator::new(0, 0x2000);
        allocator.allocate(0x1000, 0x1000).unwrap();
        allocator.allocate(0x1000, 0x1000).unwrap();

        assert_eq!(allocator.allocate(0x1000, 0x1000), None);
    }

    #[test]
    fn freed_ranges_are_reused() {
        let mut allocator = AddressAllocator::new(0, 0x2000);
        let a = allocator.allocate(0x1000, 0x1000).unwrap();
        allocator.allocate(0x1000, 0x1000).unwrap();

        allocator.free(a);

        assert_eq!(allocator.allocate(0x1000, 0x1000), Some(a));
    }

    #[test]
    fn zero_size_and_bad_alignment_are_refused() {
        let mut allocator = AddressAllocator::new(0, 0x2000);

        assert_eq!(allocator.allocate(0, 0x1000), None);
        assert_eq!(allocator.allocate(0x10, 3), None);
    }

    #[test]
    fn a_window_at_the_top_of_the_address_space_does_not_overflow() {
        let mut allocator = AddressAllocator::new(u64::MAX - 0xfff, 0x1000);

        assert_eq!(allocator.allocate(0x2000, 0x1000), None);
    }
}
