//! The boot identity map: virtual = physical for 0..4 GiB with 2 MiB pages.
//!
//! One PML4 at [`layout::PML4_START`] points to one PDPT at [`layout::PDPTE_START`], whose first
//! four entries point to four page directories from [`layout::PDE_START`], 512 large pages each.
//! The MMIO hole is mapped too, so a guest can reach the APICs and PCI before it builds its own
//! tables.

use crate::engine::layout;

/// Page-table entry bits: present and writable.
const PRESENT_WRITABLE: u64 = 0x3;
/// Page-directory entry bit: this entry maps a 2 MiB page.
const PAGE_SIZE_2M: u64 = 0x80;
/// Number of page directories (one per GiB mapped).
pub const PAGE_DIRECTORIES: u64 = 4;
/// Size of one page-table page.
const TABLE_BYTES: u64 = 0x1000;

/// Everything the identity map consists of: (guest-physical address, bytes) pairs to write.
pub fn identity_map() -> Vec<(u64, Vec<u8>)> {
    let mut tables = Vec::with_capacity(2 + PAGE_DIRECTORIES as usize);
    tables.push((
        layout::PML4_START,
        table(|i| (i == 0).then_some(layout::PDPTE_START | PRESENT_WRITABLE)),
    ));
    tables.push((
        layout::PDPTE_START,
        table(|i| {
            (i < PAGE_DIRECTORIES)
                .then_some((layout::PDE_START + i * TABLE_BYTES) | PRESENT_WRITABLE)
        }),
    ));
    for dir in 0..PAGE_DIRECTORIES {
        tables.push((
            layout::PDE_START + dir * TABLE_BYTES,
            table(|i| Some(((dir * 512 + i) << 21) | PAGE_SIZE_2M | PRESENT_WRITABLE)),
        ));
    }
    tables
}

/// One 4 KiB table of 512 little-endian entries; `entry(i)` gives entry `i` or `None` for 0.
fn table(entry: impl Fn(u64) -> Option<u64>) -> Vec<u8> {
    (0..512u64)
        .flat_map(|i| entry(i).unwrap_or(0).to_le_bytes())
        .collect()
}

const _: () = assert!(layout::PDPTE_START == layout::PML4_START + TABLE_BYTES);
const _: () = assert!(layout::PDE_START == layout::PDPTE_START + TABLE_BYTES);
const _: () = assert!(layout::PDE_START + PAGE_DIRECTORIES * TABLE_BYTES <= layout::CMDLINE_START);

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tables: &[(u64, Vec<u8>)], table_addr: u64, index: usize) -> u64 {
        let (_, bytes) = tables
            .iter()
            .find(|(addr, _)| *addr == table_addr)
            .expect("table present");
        u64::from_le_bytes(bytes[index * 8..index * 8 + 8].try_into().expect("8 bytes"))
    }

    #[test]
    fn pml4_points_to_the_pdpt() {
        let tables = identity_map();
        assert_eq!(entry(&tables, 0x9000, 0), 0xa003);
        assert_eq!(entry(&tables, 0x9000, 1), 0);
    }

    #[test]
    fn pdpt_points_to_four_page_directories() {
        let tables = identity_map();
        let entries: Vec<u64> = (0..5).map(|i| entry(&tables, 0xa000, i)).collect();
        assert_eq!(entries, vec![0xb003, 0xc003, 0xd003, 0xe003, 0]);
    }

    #[test]
    fn page_directories_map_two_mib_pages_identically() {
        let tables = identity_map();
        assert_eq!(entry(&tables, 0xb000, 0), 0x83);
        assert_eq!(entry(&tables, 0xb000, 1), 0x20_0083);
        assert_eq!(entry(&tables, 0xe000, 511), 0xffe0_0083);
    }

    #[test]
    fn every_table_is_one_page() {
        assert!(identity_map().iter().all(|(_, bytes)| bytes.len() == 4096));
    }
}
