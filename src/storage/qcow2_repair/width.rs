//! Refcount entries inside a refcount block, for every `refcount_order` from 0 (1-bit) to 6
//! (64-bit). Widths below a byte pack several entries into each byte starting at its least
//! significant bit; wider ones are big-endian (as QEMU's `get_refcount_ro0..6` read them).

/// The refcount width of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Width {
    order: u32,
}

impl Width {
    /// `order` is log2 of the width in bits, 0..=6 (checked by the header parser).
    pub fn new(order: u32) -> Width {
        debug_assert!(order <= 6, "refcount_order above 6");
        Width {
            order: order.min(6),
        }
    }

    /// Bits per refcount.
    pub fn bits(self) -> u32 {
        1 << self.order
    }

    /// The largest refcount the width holds.
    pub fn max(self) -> u64 {
        if self.bits() == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits()) - 1
        }
    }

    /// Refcounts in one block of `cluster_size` bytes.
    pub fn per_block(self, cluster_bits: u32) -> u64 {
        1u64 << (cluster_bits + 3 - self.order)
    }

    /// Entry `index` of `block`; 0 when the block is too short (never for whole clusters).
    pub fn get(self, block: &[u8], index: u64) -> u64 {
        let bits = u64::from(self.bits());
        let bit = index.saturating_mul(bits);
        let Ok(byte) = usize::try_from(bit / 8) else {
            return 0;
        };
        if bits < 8 {
            let Some(&value) = block.get(byte) else {
                return 0;
            };
            let shift = (bit % 8) as u32;
            return u64::from(value >> shift) & ((1 << bits) - 1);
        }
        let len = (bits / 8) as usize;
        let Some(bytes) = block.get(byte..byte + len) else {
            return 0;
        };
        bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    }

    /// Sets entry `index` of `block` to `value` (callers keep `value <= max()` and the index
    /// inside the block).
    pub fn set(self, block: &mut [u8], index: u64, value: u64) {
        let bits = u64::from(self.bits());
        let bit = index.saturating_mul(bits);
        let Ok(byte) = usize::try_from(bit / 8) else {
            return;
        };
        if bits < 8 {
            let Some(slot) = block.get_mut(byte) else {
                return;
            };
            let shift = (bit % 8) as u32;
            let mask = (((1u16 << bits) - 1) as u8) << shift;
            *slot = (*slot & !mask) | (((value as u8) << shift) & mask);
            return;
        }
        let len = (bits / 8) as usize;
        let Some(bytes) = block.get_mut(byte..byte + len) else {
            return;
        };
        let be = value.to_be_bytes();
        bytes.copy_from_slice(&be[8 - len..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width_round_trips_its_largest_value_without_touching_neighbours() {
        for order in 0..=6 {
            let width = Width::new(order);
            let mut block = vec![0u8; 512];
            let per_block = width.per_block(9);
            assert_eq!(per_block, 4096 >> order);
            width.set(&mut block, 5, width.max());
            width.set(&mut block, per_block - 1, 1);
            assert_eq!(width.get(&block, 5), width.max(), "order {order}");
            assert_eq!(width.get(&block, 4), 0, "order {order}");
            assert_eq!(width.get(&block, 6), 0, "order {order}");
            assert_eq!(width.get(&block, per_block - 1), 1, "order {order}");
        }
    }

    #[test]
    fn sub_byte_entries_start_at_the_least_significant_bit() {
        // QEMU's layout: the first 1-bit refcount is bit 0 of byte 0.
        let block = [0b0000_0001u8, 0];
        assert_eq!(Width::new(0).get(&block, 0), 1);
        assert_eq!(Width::new(0).get(&block, 7), 0);
        assert_eq!(Width::new(2).get(&[0x21u8], 1), 2);
    }

    #[test]
    fn sixteen_bit_entries_are_big_endian() {
        assert_eq!(Width::new(4).get(&[0x01, 0x02], 0), 0x0102);
    }

    #[test]
    fn indices_past_the_block_read_as_zero_and_write_nothing() {
        let mut block = vec![0u8; 8];
        Width::new(6).set(&mut block, 3, 7);
        assert_eq!(block, [0u8; 8]);
        assert_eq!(Width::new(6).get(&block, u64::MAX), 0);
    }
}
