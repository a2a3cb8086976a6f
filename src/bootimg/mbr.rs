//! MBR (DOS) partition tables: four primary entries in sector 0, logical partitions in the
//! chain of extended boot records (numbered from 5, as Linux and GRUB do), and the protective
//! MBR of a GPT disk (type 0xEE).
//!
//! A sector ending in 55 AA is only taken for an MBR when every entry is plausible (boot flag
//! 0x00 or 0x80, non-empty ranges starting after sector 0), so a FAT boot sector at the start
//! of a whole-disk filesystem is not misread. The extended chain is followed at most
//! [`MAX_LOGICAL`] links and never back to a record already visited.

use super::error::BootImageError;
use super::source::Window;
use super::table::{Partition, PartitionTable, Scheme};

/// Sector size of MBR disks.
const SECTOR: u64 = 512;
/// Most logical partitions followed.
pub const MAX_LOGICAL: usize = 128;

/// What sector 0 holds.
#[derive(Debug)]
pub enum MbrKind {
    /// An MBR partition table.
    Table(PartitionTable),
    /// A protective MBR: the disk has a GPT.
    Protective,
    /// No MBR.
    None,
}

/// One 16-byte entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    status: u8,
    kind: u8,
    lba: u32,
    sectors: u32,
}

fn entries(sector: &[u8]) -> [Entry; 4] {
    std::array::from_fn(|i| {
        let e = &sector[446 + i * 16..446 + (i + 1) * 16];
        Entry {
            status: e[0],
            kind: e[4],
            lba: u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
            sectors: u32::from_le_bytes([e[12], e[13], e[14], e[15]]),
        }
    })
}

fn is_extended(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0F | 0x85)
}

/// Reads sector 0 of `disk`.
pub fn read(disk: &Window) -> Result<MbrKind, BootImageError> {
    let Some(sector) = disk
        .read_vec(0, SECTOR as usize)
        .map_err(|e| BootImageError::read("MBR", e))?
    else {
        return Ok(MbrKind::None);
    };
    if sector[510..512] != [0x55, 0xAA] {
        return Ok(MbrKind::None);
    }
    let table = entries(&sector);
    if table.iter().any(|e| e.kind == 0xEE) {
        return Ok(MbrKind::Protective);
    }
    let plausible = table
        .iter()
        .all(|e| matches!(e.status, 0x00 | 0x80) && (e.kind == 0 || (e.lba > 0 && e.sectors > 0)));
    if !plausible || table.iter().all(|e| e.kind == 0) {
        return Ok(MbrKind::None);
    }
    let mut partitions = Vec::new();
    let mut notes = Vec::new();
    for (slot, entry) in table.iter().enumerate() {
        if entry.kind == 0 {
            continue;
        }
        if is_extended(entry.kind) {
            logical(disk, entry, &mut partitions, &mut notes)?;
            continue;
        }
        partitions.push(partition(slot as u32 + 1, u64::from(entry.lba), entry));
    }
    Ok(MbrKind::Table(PartitionTable {
        scheme: Scheme::Mbr,
        partitions,
        notes,
    }))
}

fn partition(number: u32, start_lba: u64, entry: &Entry) -> Partition {
    Partition {
        number,
        start: start_lba * SECTOR,
        size: u64::from(entry.sectors) * SECTOR,
        scheme: Scheme::Mbr,
        type_name: format!("0x{:02x}", entry.kind),
    }
}

/// Follows the extended boot record chain of `extended`.
fn logical(
    disk: &Window,
    extended: &Entry,
    partitions: &mut Vec<Partition>,
    notes: &mut Vec<String>,
) -> Result<(), BootImageError> {
    let base = u64::from(extended.lba);
    let mut ebr = base;
    let mut visited = Vec::new();
    let mut number = 5;
    loop {
        if visited.contains(&ebr) {
            notes.push(format!(
                "the extended partition chain comes back to sector {ebr}; vmux stopped following it"
            ));
            return Ok(());
        }
        if visited.len() >= MAX_LOGICAL {
            notes.push(format!(
                "the extended partition chain has more than {MAX_LOGICAL} links; vmux read the first {MAX_LOGICAL}"
            ));
            return Ok(());
        }
        visited.push(ebr);
        let Some(sector) = disk
            .read_vec(ebr * SECTOR, SECTOR as usize)
            .map_err(|e| BootImageError::read("extended boot record", e))?
        else {
            notes.push(format!(
                "the extended boot record at sector {ebr} is past the end of the image (truncated?)"
            ));
            return Ok(());
        };
        if sector[510..512] != [0x55, 0xAA] {
            notes.push(format!(
                "the extended boot record at sector {ebr} has no 55 AA signature; vmux stopped there"
            ));
            return Ok(());
        }
        let [first, next, ..] = entries(&sector);
        if first.kind != 0 && first.sectors > 0 {
            partitions.push(partition(number, ebr + u64::from(first.lba), &first));
            number += 1;
        }
        if !is_extended(next.kind) || next.lba == 0 {
            return Ok(());
        }
        ebr = base + u64::from(next.lba);
    }
}

/// Builders for MBR test disks.
#[cfg(test)]
pub(crate) mod testdisk {
    /// Writes entry `slot` of the table in the sector at `sector_offset`, and the signature.
    pub fn entry(disk: &mut [u8], sector_offset: usize, slot: usize, kind: u8, lba: u32, n: u32) {
        let e = sector_offset + 446 + slot * 16;
        disk[e + 4] = kind;
        disk[e + 8..e + 12].copy_from_slice(&lba.to_le_bytes());
        disk[e + 12..e + 16].copy_from_slice(&n.to_le_bytes());
        disk[sector_offset + 510] = 0x55;
        disk[sector_offset + 511] = 0xAA;
    }
}

#[cfg(test)]
mod tests {
    use super::testdisk::entry;
    use super::*;
    use crate::bootimg::source::Budget;
    use std::sync::Arc;

    fn window(bytes: Vec<u8>) -> Window {
        Window::whole(Arc::new(bytes), Budget::new(64 << 20, 10_000))
    }

    fn table(disk: Vec<u8>) -> PartitionTable {
        match read(&window(disk)).expect("reads") {
            MbrKind::Table(t) => t,
            other => panic!("expected a table, got {other:?}"),
        }
    }

    #[test]
    fn primary_partitions_keep_their_slot_numbers() {
        let mut disk = vec![0u8; 1 << 20];
        entry(&mut disk, 0, 0, 0x83, 2048, 100);
        entry(&mut disk, 0, 2, 0x83, 4096, 100);
        let t = table(disk);
        assert_eq!(t.partitions.len(), 2);
        assert_eq!(
            (t.partitions[0].number, t.partitions[0].start),
            (1, 2048 * 512)
        );
        assert_eq!(t.partitions[1].number, 3);
        assert_eq!(t.partitions[1].type_name, "0x83");
    }

    #[test]
    fn logical_partitions_are_numbered_from_five() {
        let mut disk = vec![0u8; 1 << 20];
        entry(&mut disk, 0, 0, 0x05, 100, 1000);
        entry(&mut disk, 100 * 512, 0, 0x83, 10, 50);
        entry(&mut disk, 100 * 512, 1, 0x05, 200, 100);
        entry(&mut disk, 300 * 512, 0, 0x82, 10, 50);
        let t = table(disk);
        let numbers: Vec<_> = t
            .partitions
            .iter()
            .map(|p| (p.number, p.start / 512))
            .collect();
        assert_eq!(numbers, vec![(5, 110), (6, 310)]);
    }

    #[test]
    fn an_extended_chain_that_loops_is_cut_with_a_note() {
        let mut disk = vec![0u8; 1 << 20];
        entry(&mut disk, 0, 0, 0x05, 100, 1000);
        entry(&mut disk, 100 * 512, 0, 0x83, 10, 50);
        entry(&mut disk, 100 * 512, 1, 0x05, 200, 100);
        entry(&mut disk, 300 * 512, 0, 0x83, 10, 50);
        entry(&mut disk, 300 * 512, 1, 0x05, 200, 100); // points at itself
        let t = table(disk);
        assert_eq!(t.partitions.len(), 2);
        assert!(t.notes[0].contains("comes back"), "{:?}", t.notes);
    }

    #[test]
    fn a_protective_mbr_is_recognised() {
        let mut disk = vec![0u8; 4096];
        entry(&mut disk, 0, 0, 0xEE, 1, 7);
        assert!(matches!(
            read(&window(disk)).expect("reads"),
            MbrKind::Protective
        ));
    }

    #[test]
    fn a_fat_boot_sector_is_not_an_mbr() {
        let mut disk = vec![0u8; 4096];
        disk[446..510].fill(0x4E); // code and BPB bytes where the table would be
        disk[510] = 0x55;
        disk[511] = 0xAA;
        assert!(matches!(read(&window(disk)).expect("reads"), MbrKind::None));
    }

    #[test]
    fn logical_entries_past_the_image_end_stop_with_a_note() {
        let mut disk = vec![0u8; 64 * 1024];
        entry(&mut disk, 0, 0, 0x05, 100_000, 1000);
        let t = table(disk);
        assert!(t.partitions.is_empty());
        assert!(t.notes[0].contains("past the end"), "{:?}", t.notes);
    }
}
