//! The partition list of a disk: GPT first (see [`super::gpt`]), then MBR (see
//! [`super::mbr`]), else the whole disk as one filesystem (partition number 0). Numbers are
//! the ones Linux and GRUB use: 1-based, MBR logical partitions from 5.

use super::error::BootImageError;
use super::gpt;
use super::mbr::{self, MbrKind};
use super::source::Window;
use serde::Serialize;

/// Which table a partition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// GUID partition table.
    Gpt,
    /// MBR (DOS) partition table.
    Mbr,
    /// No table: the whole disk is one filesystem.
    None,
}

impl Scheme {
    /// GRUB's name for a partition of this scheme (`hd0,gpt2`, `hd0,msdos1`, `hd0`).
    pub fn grub_device(self, number: u32) -> String {
        match self {
            Scheme::Gpt => format!("hd0,gpt{number}"),
            Scheme::Mbr => format!("hd0,msdos{number}"),
            Scheme::None => "hd0".to_string(),
        }
    }
}

/// One partition (or the whole disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// 1-based number (`vda2` is 2); 0 for the whole disk.
    pub number: u32,
    /// First byte on the disk.
    pub start: u64,
    /// Length in bytes, as the table says (it may reach past the end of a truncated image).
    pub size: u64,
    /// The table it came from.
    pub scheme: Scheme,
    /// The partition type by name ("EFI system", "Linux filesystem", "0x83"), for messages.
    pub type_name: String,
}

/// A disk's partitions, in number order, and what was noticed on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    /// The scheme.
    pub scheme: Scheme,
    /// The partitions.
    pub partitions: Vec<Partition>,
    /// Remarks for the user (a damaged primary GPT, a truncated partition).
    pub notes: Vec<String>,
}

/// Reads the partition table of `disk`.
pub fn read_table(disk: &Window) -> Result<PartitionTable, BootImageError> {
    if disk.len() < 1024 {
        return Err(BootImageError::TooSmall { size: disk.len() });
    }
    let mbr = mbr::read(disk)?;
    let protective = matches!(mbr, MbrKind::Protective);
    if let Some(table) = gpt::read(disk, protective)? {
        return Ok(finish(disk, table));
    }
    match mbr {
        MbrKind::Table(table) => Ok(finish(disk, table)),
        MbrKind::Protective => Err(BootImageError::GptDamaged {
            reason: "the protective MBR announces a GPT, but there is no GPT header at the start or the end of the disk".into(),
            size: disk.len(),
        }),
        MbrKind::None => Ok(PartitionTable {
            scheme: Scheme::None,
            partitions: vec![Partition {
                number: 0,
                start: 0,
                size: disk.len(),
                scheme: Scheme::None,
                type_name: "whole disk".into(),
            }],
            notes: Vec::new(),
        }),
    }
}

/// Sorts by number and notes partitions that reach past the end of the image.
fn finish(disk: &Window, mut table: PartitionTable) -> PartitionTable {
    table.partitions.sort_by_key(|p| p.number);
    for p in &table.partitions {
        if p.start.saturating_add(p.size) > disk.len() {
            table.notes.push(format!(
                "partition {} ends at byte {} but the image has only {} bytes (truncated?)",
                p.number,
                p.start.saturating_add(p.size),
                disk.len()
            ));
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootimg::source::Budget;
    use std::sync::Arc;

    #[test]
    fn a_disk_without_a_table_is_one_whole_disk_partition() {
        let disk = Window::whole(Arc::new(vec![0u8; 8192]), Budget::new(1 << 20, 100));
        let table = read_table(&disk).expect("no table is fine");
        assert_eq!(table.scheme, Scheme::None);
        assert_eq!(table.partitions.len(), 1);
        assert_eq!(table.partitions[0].number, 0);
        assert_eq!(table.partitions[0].size, 8192);
    }

    #[test]
    fn a_tiny_image_is_refused_with_its_size() {
        let disk = Window::whole(Arc::new(vec![0u8; 300]), Budget::new(1 << 20, 100));
        let err = read_table(&disk).expect_err("too small");
        assert!(err.to_string().contains("only 300 bytes"), "{err}");
    }

    #[test]
    fn partitions_past_the_end_of_a_truncated_image_are_noted() {
        let mut bytes = vec![0u8; 1 << 20];
        crate::bootimg::gpt::testdisk::write(
            &mut bytes,
            &[crate::bootimg::gpt::testdisk::Spec {
                type_guid: crate::bootimg::gpt::testdisk::LINUX_FS,
                first: 34,
                last: 1900,
            }],
        );
        bytes.truncate(64 * 1024);
        let disk = Window::whole(Arc::new(bytes), Budget::new(1 << 20, 100));
        let table = read_table(&disk).expect("the table itself is intact");
        assert_eq!(table.partitions.len(), 1);
        assert!(table.notes[0].contains("truncated"), "{:?}", table.notes);
    }

    #[test]
    fn grub_names_follow_the_scheme() {
        assert_eq!(Scheme::Gpt.grub_device(2), "hd0,gpt2");
        assert_eq!(Scheme::Mbr.grub_device(5), "hd0,msdos5");
        assert_eq!(Scheme::None.grub_device(0), "hd0");
    }
}
