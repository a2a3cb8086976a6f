//! GUID partition tables (UEFI spec, chapter 5.3): the primary header at LBA 1, its entry
//! array, both checked by CRC32, and the backup header at the disk's last LBA when the primary
//! is damaged. 512-byte sectors are tried first, then 4096.
//!
//! Hostile input: every field is range-checked before it is used; the entry array is read
//! only when it is at most [`MAX_ENTRY_BYTES`], so no count in the header can make this
//! allocate or loop beyond that.

use super::error::BootImageError;
use super::source::Window;
use super::table::{Partition, PartitionTable, Scheme};

/// "EFI PART".
const SIGNATURE: &[u8; 8] = b"EFI PART";
/// Smallest header (UEFI 2.x).
const MIN_HEADER_SIZE: u32 = 92;
/// Largest entry array vmux reads (8192 entries of 128 bytes; the spec's minimum is 16 KiB).
pub const MAX_ENTRY_BYTES: u64 = 1 << 20;
/// Sector sizes tried, in order.
const SECTOR_SIZES: [u64; 2] = [512, 4096];

/// A checked GPT header.
#[derive(Debug, Clone, Copy)]
struct Header {
    alternate_lba: u64,
    entries_lba: u64,
    num_entries: u32,
    entry_size: u32,
    entries_crc: u32,
}

/// Reads the GPT of `disk`; `None` when there is none. `protective` says the MBR announced
/// one (then a missing table is damage, reported by the caller).
pub fn read(disk: &Window, protective: bool) -> Result<Option<PartitionTable>, BootImageError> {
    let mut problems = Vec::new();
    let mut saw_signature = false;
    for sector in SECTOR_SIZES {
        let lbas = disk.len() / sector;
        if lbas < 3 {
            continue;
        }
        let primary = read_header(disk, 1, sector, lbas)?;
        let primary_signed = primary.is_some();
        if primary_signed {
            saw_signature = true;
        }
        let (primary_problem, backup_lba): (String, u64) = match primary {
            Some(Ok(header)) => {
                let backup_lba = if header.alternate_lba < lbas && header.alternate_lba > 1 {
                    header.alternate_lba
                } else {
                    lbas - 1
                };
                match read_entries(disk, &header, sector)? {
                    Ok(parts) => return Ok(Some(table(parts, Vec::new()))),
                    Err(problem) => (problem, backup_lba),
                }
            }
            Some(Err(problem)) => (problem, lbas - 1),
            None => ("no GPT signature at LBA 1".to_string(), lbas - 1),
        };
        let backup = read_header(disk, backup_lba, sector, lbas)?;
        match backup {
            Some(Ok(header)) => match read_entries(disk, &header, sector)? {
                Ok(parts) => {
                    let note = format!(
                        "the primary GPT is damaged ({primary_problem}); vmux used the backup at the end of the disk (repair it with `sgdisk -e`)"
                    );
                    return Ok(Some(table(parts, vec![note])));
                }
                Err(problem) => {
                    saw_signature = true;
                    problems.push(format!("primary: {}; backup: {problem}", primary_problem));
                }
            },
            Some(Err(problem)) => {
                saw_signature = true;
                problems.push(format!("primary: {}; backup: {problem}", primary_problem));
            }
            None if primary_signed => problems.push(format!(
                "primary: {}; backup: no GPT signature at LBA {backup_lba}",
                primary_problem
            )),
            None => {}
        }
        if saw_signature {
            break;
        }
    }
    if saw_signature || (protective && !problems.is_empty()) {
        return Err(BootImageError::GptDamaged {
            reason: problems.join("; "),
            size: disk.len(),
        });
    }
    Ok(None)
}

fn table(partitions: Vec<Partition>, notes: Vec<String>) -> PartitionTable {
    PartitionTable {
        scheme: Scheme::Gpt,
        partitions,
        notes,
    }
}

/// The header at `lba`: `None` without a signature, `Some(Err)` when it is damaged.
fn read_header(
    disk: &Window,
    lba: u64,
    sector: u64,
    lbas: u64,
) -> Result<Option<Result<Header, String>>, BootImageError> {
    let bytes = disk
        .read_vec(lba * sector, sector as usize)
        .map_err(|e| BootImageError::read(format!("GPT header at LBA {lba}"), e))?;
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    if &bytes[0..8] != SIGNATURE {
        return Ok(None);
    }
    Ok(Some(parse_header(&bytes, lba, lbas)))
}

fn parse_header(bytes: &[u8], lba: u64, lbas: u64) -> Result<Header, String> {
    let header_size = le32(bytes, 12);
    if header_size < MIN_HEADER_SIZE || header_size as usize > bytes.len() {
        return Err(format!("header size {header_size} is invalid"));
    }
    let mut copy = bytes[..header_size as usize].to_vec();
    copy[16..20].fill(0);
    if crc32fast::hash(&copy) != le32(bytes, 16) {
        return Err(format!("the header checksum at LBA {lba} does not match"));
    }
    let my_lba = le64(bytes, 24);
    if my_lba != lba {
        return Err(format!(
            "the header at LBA {lba} says it is at LBA {my_lba}"
        ));
    }
    let entry_size = le32(bytes, 84);
    if !(128..=4096).contains(&entry_size) || !entry_size.is_power_of_two() {
        return Err(format!("entry size {entry_size} is invalid"));
    }
    let num_entries = le32(bytes, 80);
    if u64::from(num_entries) * u64::from(entry_size) > MAX_ENTRY_BYTES {
        return Err(format!(
            "{num_entries} entries of {entry_size} bytes are more than vmux reads ({MAX_ENTRY_BYTES} bytes)"
        ));
    }
    let entries_lba = le64(bytes, 72);
    if entries_lba < 2 || entries_lba >= lbas {
        return Err(format!(
            "the entry array at LBA {entries_lba} is outside the disk"
        ));
    }
    Ok(Header {
        alternate_lba: le64(bytes, 32),
        entries_lba,
        num_entries,
        entry_size,
        entries_crc: le32(bytes, 88),
    })
}

/// The used entries of `header`'s array, or why the array is unusable.
fn read_entries(
    disk: &Window,
    header: &Header,
    sector: u64,
) -> Result<Result<Vec<Partition>, String>, BootImageError> {
    let len = u64::from(header.num_entries) * u64::from(header.entry_size);
    let start = header.entries_lba.saturating_mul(sector);
    let bytes = disk
        .read_vec(start, len as usize)
        .map_err(|e| BootImageError::read("GPT entry array", e))?;
    let Some(bytes) = bytes else {
        return Ok(Err(format!(
            "the entry array at LBA {} runs past the end of the image",
            header.entries_lba
        )));
    };
    if crc32fast::hash(&bytes) != header.entries_crc {
        return Ok(Err(format!(
            "the entry array checksum at LBA {} does not match",
            header.entries_lba
        )));
    }
    let mut partitions = Vec::new();
    for (index, entry) in bytes.chunks_exact(header.entry_size as usize).enumerate() {
        let type_guid: [u8; 16] = entry[0..16].try_into().expect("16-byte slice");
        if type_guid == [0; 16] {
            continue;
        }
        let first = le64(entry, 32);
        let last = le64(entry, 40);
        if last < first {
            // An entry that describes no range: skip it rather than refuse the whole table
            // (the others may still be good). Ranges past the disk's end are kept and noted
            // by the caller: they are what a truncated download looks like.
            continue;
        }
        partitions.push(Partition {
            number: index as u32 + 1,
            start: first.saturating_mul(sector),
            size: (last - first + 1).saturating_mul(sector),
            scheme: Scheme::Gpt,
            type_name: type_name(&type_guid),
        });
    }
    Ok(Ok(partitions))
}

/// The textual GUID (mixed-endian, as UEFI prints it).
pub fn guid_string(g: &[u8; 16]) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

/// A readable name for a partition type GUID.
fn type_name(g: &[u8; 16]) -> String {
    let guid = guid_string(g);
    let name = match guid.as_str() {
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" => "EFI system",
        "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" => "Linux filesystem",
        "BC13C2FF-59E6-4262-A352-B275FD6F7172" => "Linux extended boot",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" => "Linux root (x86-64)",
        "E6D6D379-F507-44C2-A23C-238F2A3DF928" => "Linux LVM",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" => "Linux swap",
        "A19D880F-05FC-4D3B-A006-743F0F84911E" => "Linux RAID",
        "CA7D7CCB-63ED-4C53-861C-1742536059CC" => "Linux LUKS",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" => "Microsoft basic data",
        _ => return guid,
    };
    name.to_string()
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4-byte slice"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8-byte slice"))
}

/// Builders for GPT test disks, shared with the inspection tests.
#[cfg(test)]
pub(crate) mod testdisk {
    /// One partition of a test disk: type GUID bytes, first and last LBA.
    pub struct Spec {
        pub type_guid: [u8; 16],
        pub first: u64,
        pub last: u64,
    }

    /// The on-disk bytes of the Linux filesystem type GUID.
    pub const LINUX_FS: [u8; 16] = [
        0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D,
        0xE4,
    ];

    /// Writes a primary and a backup GPT (128 entries of 128 bytes) into `disk`.
    pub fn write(disk: &mut [u8], parts: &[Spec]) {
        let lbas = (disk.len() / 512) as u64;
        let mut entries = vec![0u8; 128 * 128];
        for (i, p) in parts.iter().enumerate() {
            let e = &mut entries[i * 128..(i + 1) * 128];
            e[0..16].copy_from_slice(&p.type_guid);
            e[16] = i as u8 + 1;
            e[32..40].copy_from_slice(&p.first.to_le_bytes());
            e[40..48].copy_from_slice(&p.last.to_le_bytes());
        }
        let entries_crc = crc32fast::hash(&entries);
        // Protective MBR.
        disk[446 + 4] = 0xEE;
        disk[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
        disk[446 + 12..446 + 16].copy_from_slice(&((lbas - 1) as u32).to_le_bytes());
        disk[510] = 0x55;
        disk[511] = 0xAA;
        let header = |my: u64, alt: u64, entries_lba: u64| {
            let mut h = vec![0u8; 92];
            h[0..8].copy_from_slice(super::SIGNATURE);
            h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
            h[12..16].copy_from_slice(&92u32.to_le_bytes());
            h[24..32].copy_from_slice(&my.to_le_bytes());
            h[32..40].copy_from_slice(&alt.to_le_bytes());
            h[40..48].copy_from_slice(&34u64.to_le_bytes());
            h[48..56].copy_from_slice(&(lbas - 34).to_le_bytes());
            h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
            h[80..84].copy_from_slice(&128u32.to_le_bytes());
            h[84..88].copy_from_slice(&128u32.to_le_bytes());
            h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
            let crc = crc32fast::hash(&h);
            h[16..20].copy_from_slice(&crc.to_le_bytes());
            h
        };
        let primary = header(1, lbas - 1, 2);
        disk[512..512 + 92].copy_from_slice(&primary);
        disk[1024..1024 + entries.len()].copy_from_slice(&entries);
        let backup_entries = (lbas - 33) as usize * 512;
        disk[backup_entries..backup_entries + entries.len()].copy_from_slice(&entries);
        let backup = header(lbas - 1, 1, lbas - 33);
        let at = (lbas - 1) as usize * 512;
        disk[at..at + 92].copy_from_slice(&backup);
    }
}

#[cfg(test)]
mod tests {
    use super::testdisk::{LINUX_FS, Spec, write};
    use super::*;
    use crate::bootimg::source::Budget;
    use std::sync::Arc;

    fn disk_with_two_partitions() -> Vec<u8> {
        let mut disk = vec![0u8; 1 << 20];
        write(
            &mut disk,
            &[
                Spec {
                    type_guid: LINUX_FS,
                    first: 34,
                    last: 1000,
                },
                Spec {
                    type_guid: LINUX_FS,
                    first: 1001,
                    last: 2000,
                },
            ],
        );
        disk
    }

    fn window(bytes: Vec<u8>) -> Window {
        Window::whole(Arc::new(bytes), Budget::new(64 << 20, 10_000))
    }

    #[test]
    fn a_valid_gpt_lists_its_partitions() {
        let table = read(&window(disk_with_two_partitions()), true)
            .expect("reads")
            .expect("has a table");
        assert_eq!(table.partitions.len(), 2);
        assert_eq!(table.partitions[1].number, 2);
        assert_eq!(table.partitions[1].start, 1001 * 512);
        assert_eq!(table.partitions[1].size, 1000 * 512);
        assert_eq!(table.partitions[0].type_name, "Linux filesystem");
        assert!(table.notes.is_empty());
    }

    #[test]
    fn a_corrupt_primary_header_falls_back_to_the_backup() {
        let mut disk = disk_with_two_partitions();
        disk[512 + 40] ^= 0xFF; // breaks the header CRC
        let table = read(&window(disk), true).expect("reads").expect("backup");
        assert_eq!(table.partitions.len(), 2);
        assert!(table.notes[0].contains("backup"), "{:?}", table.notes);
    }

    #[test]
    fn a_corrupt_primary_entry_array_falls_back_to_the_backup() {
        let mut disk = disk_with_two_partitions();
        disk[1024 + 40] ^= 0xFF;
        let table = read(&window(disk), true).expect("reads").expect("backup");
        assert_eq!(table.partitions[0].start, 34 * 512);
        assert!(
            table.notes[0].contains("entry array checksum"),
            "{:?}",
            table.notes
        );
    }

    #[test]
    fn both_tables_damaged_is_an_error_naming_both() {
        let mut disk = disk_with_two_partitions();
        disk[512 + 40] ^= 0xFF;
        let last = disk.len() - 512;
        disk[last + 40] ^= 0xFF;
        let err = read(&window(disk), true).expect_err("damaged");
        let text = err.to_string();
        assert!(
            text.contains("primary") && text.contains("backup"),
            "{text}"
        );
    }

    #[test]
    fn a_gpt_cut_inside_its_entry_array_is_reported_as_damaged() {
        let mut disk = disk_with_two_partitions();
        disk.truncate(10 * 1024);
        let err = read(&window(disk), true).expect_err("truncated");
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn truncation_at_every_sector_never_panics() {
        let full = disk_with_two_partitions();
        for len in (0..=40 * 512).step_by(256).chain([full.len() - 1]) {
            let _ = read(&window(full[..len].to_vec()), true);
        }
    }

    #[test]
    fn a_huge_entry_count_is_refused_without_reading_it() {
        let mut disk = disk_with_two_partitions();
        disk[512 + 80..512 + 84].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut h = disk[512..512 + 92].to_vec();
        h[16..20].fill(0);
        let crc = crc32fast::hash(&h);
        disk[512 + 16..512 + 20].copy_from_slice(&crc.to_le_bytes());
        // The primary is refused for its count; the backup is intact and used.
        let table = read(&window(disk), true).expect("reads").expect("backup");
        assert!(
            table.notes[0].contains("more than vmux reads"),
            "{:?}",
            table.notes
        );
    }

    #[test]
    fn no_signature_means_no_gpt() {
        assert!(
            read(&window(vec![0u8; 1 << 16]), false)
                .expect("reads")
                .is_none()
        );
    }

    #[test]
    fn guids_print_mixed_endian() {
        assert_eq!(
            guid_string(&LINUX_FS),
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
        );
    }
}
