//! The boot GDT and the segment registers that match it.
//!
//! Five entries at [`layout::BOOT_GDT_START`]: null, null, 64-bit code (selector 0x10), data
//! (0x18) and a TSS (0x20). The segment registers loaded into the boot vCPU are derived from the
//! same descriptors, so what the guest reads back from its GDT agrees with the hidden parts of
//! its segment registers.

use crate::engine::layout;
use kvm_bindings::kvm_segment;

/// Descriptor flags of the 64-bit code segment: G, L, present, DPL 0, code exec/read accessed.
pub const CODE64_FLAGS: u16 = 0xa09b;
/// Descriptor flags of the data segment: G, D/B, present, DPL 0, data read/write accessed.
pub const DATA_FLAGS: u16 = 0xc093;
/// Descriptor flags of the TSS: G, present, busy 64-bit TSS.
pub const TSS_FLAGS: u16 = 0x808b;

/// The boot GDT, in order.
pub const BOOT_GDT: [u64; 5] = [
    0,
    0,
    gdt_entry(CODE64_FLAGS, 0, 0xfffff),
    gdt_entry(DATA_FLAGS, 0, 0xfffff),
    gdt_entry(TSS_FLAGS, 0, 0xfffff),
];

/// Selector of the code segment (GDT index 2).
pub const CODE_SELECTOR: u16 = 2 * 8;
/// Selector of the data segments (GDT index 3).
pub const DATA_SELECTOR: u16 = 3 * 8;
/// Selector of the TSS (GDT index 4).
pub const TSS_SELECTOR: u16 = 4 * 8;

/// Packs a segment descriptor from its 16 flag bits (access byte in bits 0..8, the G/DB/L/AVL
/// nibble in bits 12..16), base and 20-bit limit.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let flags = flags as u64;
    let base = base as u64;
    let limit = limit as u64;
    ((base & 0xff00_0000) << (56 - 24))
        | ((flags & 0x0000_f0ff) << 40)
        | ((limit & 0x000f_0000) << (48 - 16))
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0x0000_ffff)
}

/// The hidden segment-register state KVM needs for the descriptor `entry` loaded with
/// `selector`.
pub fn segment(entry: u64, selector: u16) -> kvm_segment {
    let base = ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000);
    let raw_limit = (entry & 0xffff) | ((entry >> 32) & 0x000f_0000);
    let granularity = ((entry >> 55) & 1) as u8;
    // With 4 KiB granularity the limit counts pages; KVM wants it in bytes.
    let limit = if granularity == 1 {
        (raw_limit << 12) | 0xfff
    } else {
        raw_limit
    };
    kvm_segment {
        base,
        limit: limit as u32,
        selector,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 0x3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g: granularity,
        avl: ((entry >> 52) & 1) as u8,
        unusable: if (entry >> 47) & 1 == 1 { 0 } else { 1 },
        padding: 0,
    }
}

/// The GDT as the bytes written at [`layout::BOOT_GDT_START`].
pub fn gdt_bytes() -> Vec<u8> {
    BOOT_GDT.iter().flat_map(|e| e.to_le_bytes()).collect()
}

/// `GDTR.limit` of the boot GDT.
pub const GDT_LIMIT: u16 = (BOOT_GDT.len() * 8 - 1) as u16;

const _: () =
    assert!(layout::BOOT_GDT_START + (BOOT_GDT.len() as u64) * 8 <= layout::BOOT_IDT_START);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_descriptor_matches_the_documented_encoding() {
        assert_eq!(BOOT_GDT[2], 0x00af_9b00_0000_ffff);
    }

    #[test]
    fn data_descriptor_matches_the_documented_encoding() {
        assert_eq!(BOOT_GDT[3], 0x00cf_9300_0000_ffff);
    }

    #[test]
    fn tss_descriptor_matches_the_documented_encoding() {
        assert_eq!(BOOT_GDT[4], 0x008f_8b00_0000_ffff);
    }

    #[test]
    fn code_segment_is_long_mode_present_ring0() {
        let cs = segment(BOOT_GDT[2], CODE_SELECTOR);
        assert_eq!((cs.l, cs.db, cs.present, cs.dpl, cs.s), (1, 0, 1, 0, 1));
        assert_eq!((cs.type_, cs.limit, cs.selector), (0xb, 0xffff_ffff, 0x10));
    }

    #[test]
    fn tss_segment_is_a_system_segment() {
        let tr = segment(BOOT_GDT[4], TSS_SELECTOR);
        assert_eq!((tr.s, tr.type_, tr.selector, tr.present), (0, 0xb, 0x20, 1));
    }

    #[test]
    fn base_and_limit_round_trip() {
        let entry = gdt_entry(0x4093, 0x1234_5678, 0xabcde);
        let seg = segment(entry, 8);
        assert_eq!((seg.base, seg.limit, seg.g), (0x1234_5678, 0xabcde, 0));
    }
}
