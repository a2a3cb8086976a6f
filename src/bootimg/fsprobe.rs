//! What a partition holds, by magic numbers (the way blkid does it): ext2/3/4, which vmux
//! reads, and the filesystems and containers it cannot (XFS, btrfs, LVM, LUKS, ...), named so
//! the error can say what was found.
//!
//! Reads at most the first 8 KiB, 16 bytes at 32 KiB and 4 KiB at 64 KiB of the partition.

use super::source::Window;
use serde::Serialize;
use std::io;

/// A filesystem or container type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsKind {
    /// ext2 (no journal, no ext4 features).
    Ext2,
    /// ext3 (journal, no ext4 features).
    Ext3,
    /// ext4.
    Ext4,
    /// FAT12/16/32 (an EFI system partition).
    Vfat,
    /// XFS.
    Xfs,
    /// btrfs.
    Btrfs,
    /// An LVM2 physical volume.
    Lvm,
    /// A LUKS encrypted volume.
    Luks,
    /// Linux swap.
    Swap,
    /// A Linux software-RAID member (md superblock 1.1 or 1.2).
    MdRaid,
    /// squashfs.
    Squashfs,
    /// An ISO 9660 filesystem.
    Iso9660,
    /// F2FS.
    F2fs,
    /// NTFS.
    Ntfs,
    /// Nothing recognised.
    Unknown,
}

impl FsKind {
    /// Whether vmux can read /boot from it.
    pub fn is_ext(self) -> bool {
        matches!(self, FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4)
    }

    /// Whether it could hold a Linux /boot that vmux cannot read (the error names it).
    pub fn could_hold_boot(self) -> bool {
        matches!(
            self,
            FsKind::Xfs
                | FsKind::Btrfs
                | FsKind::Lvm
                | FsKind::Luks
                | FsKind::MdRaid
                | FsKind::F2fs
        )
    }

    /// The name messages use.
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Ext2 => "ext2",
            FsKind::Ext3 => "ext3",
            FsKind::Ext4 => "ext4",
            FsKind::Vfat => "FAT (vfat)",
            FsKind::Xfs => "XFS",
            FsKind::Btrfs => "btrfs",
            FsKind::Lvm => "an LVM physical volume",
            FsKind::Luks => "a LUKS encrypted volume",
            FsKind::Swap => "Linux swap",
            FsKind::MdRaid => "a Linux software-RAID member",
            FsKind::Squashfs => "squashfs",
            FsKind::Iso9660 => "ISO 9660",
            FsKind::F2fs => "F2FS",
            FsKind::Ntfs => "NTFS",
            FsKind::Unknown => "unrecognised data",
        }
    }
}

/// A probed partition: its filesystem type, UUID and label when the type has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsInfo {
    /// The type.
    pub kind: FsKind,
    /// The UUID as blkid prints it (`1234-ABCD` for FAT), lower case for the others.
    pub uuid: Option<String>,
    /// The label.
    pub label: Option<String>,
}

impl FsInfo {
    fn kind(kind: FsKind) -> FsInfo {
        FsInfo {
            kind,
            uuid: None,
            label: None,
        }
    }
}

/// Recognises what `part` holds.
pub fn probe(part: &Window) -> io::Result<FsInfo> {
    let head_len = part.len().min(8192) as usize;
    let head = part.read_vec(0, head_len)?.unwrap_or_default();
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);

    if head.len() >= 2048 && at(1080, &[0x53, 0xEF]) {
        return Ok(ext(&head[1024..]));
    }
    if at(0, b"XFSB") {
        return Ok(FsInfo {
            kind: FsKind::Xfs,
            uuid: head.get(32..48).map(uuid),
            label: head.get(108..120).map(text),
        });
    }
    if at(0, b"LUKS\xba\xbe") {
        return Ok(FsInfo::kind(FsKind::Luks));
    }
    if (0..4).any(|s| at(s * 512, b"LABELONE") && at(s * 512 + 24, b"LVM2 001")) {
        return Ok(FsInfo::kind(FsKind::Lvm));
    }
    if at(0, &[0xFC, 0x4E, 0x2B, 0xA9]) || at(4096, &[0xFC, 0x4E, 0x2B, 0xA9]) {
        return Ok(FsInfo::kind(FsKind::MdRaid));
    }
    if at(4086, b"SWAPSPACE2") || at(4086, b"SWAP-SPACE") {
        return Ok(FsInfo::kind(FsKind::Swap));
    }
    if at(0, b"hsqs") {
        return Ok(FsInfo::kind(FsKind::Squashfs));
    }
    if at(1024, &[0x10, 0x20, 0xF5, 0xF2]) {
        return Ok(FsInfo::kind(FsKind::F2fs));
    }
    if at(3, b"NTFS    ") {
        return Ok(FsInfo::kind(FsKind::Ntfs));
    }
    if at(510, &[0x55, 0xAA]) && (at(54, b"FAT1") || at(82, b"FAT32")) {
        let fat32 = at(82, b"FAT32");
        let (serial_at, label_at) = if fat32 { (67, 71) } else { (39, 43) };
        let serial = u32::from_le_bytes(
            head[serial_at..serial_at + 4]
                .try_into()
                .expect("4-byte slice"),
        );
        let label = text(&head[label_at..label_at + 11]);
        return Ok(FsInfo {
            kind: FsKind::Vfat,
            uuid: Some(format!("{:04X}-{:04X}", serial >> 16, serial & 0xFFFF)),
            label: (label != "NO NAME").then_some(label),
        });
    }
    if let Some(btrfs) = part.read_vec(0x10000, 0x1000)?
        && &btrfs[0x40..0x48] == b"_BHRfS_M"
    {
        return Ok(FsInfo {
            kind: FsKind::Btrfs,
            uuid: Some(uuid(&btrfs[0x20..0x30])),
            label: Some(text(&btrfs[0x12B..0x12B + 256])),
        });
    }
    if let Some(iso) = part.read_vec(0x8001, 5)?
        && iso == b"CD001"
    {
        return Ok(FsInfo::kind(FsKind::Iso9660));
    }
    Ok(FsInfo::kind(FsKind::Unknown))
}

/// An ext superblock (`sb` starts at the superblock).
fn ext(sb: &[u8]) -> FsInfo {
    let le32 = |at: usize| u32::from_le_bytes(sb[at..at + 4].try_into().expect("4-byte slice"));
    let compat = le32(0x5C);
    let incompat = le32(0x60);
    let ro_compat = le32(0x64);
    // Beyond filetype (0x2), recover (0x4), journal_dev (0x8) and meta_bg (0x10), every
    // incompat feature is ext4's; so are ro_compat features past sparse, large_file, btree.
    let ext4 = incompat & !0x1E != 0 || ro_compat & !0x7 != 0;
    let kind = if ext4 {
        FsKind::Ext4
    } else if compat & 0x4 != 0 {
        FsKind::Ext3
    } else {
        FsKind::Ext2
    };
    let label = text(&sb[0x78..0x88]);
    FsInfo {
        kind,
        uuid: Some(uuid(&sb[0x68..0x78])),
        label: (!label.is_empty()).then_some(label),
    }
}

/// 16 bytes as a lower-case 8-4-4-4-12 UUID.
pub fn uuid(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    if hex.len() != 32 {
        return hex;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A NUL- or space-padded label.
fn text(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootimg::source::Budget;
    use std::sync::Arc;

    fn probe_bytes(bytes: Vec<u8>) -> FsInfo {
        probe(&Window::whole(Arc::new(bytes), Budget::new(1 << 20, 100))).expect("probe")
    }

    #[test]
    fn xfs_is_named_with_its_uuid() {
        let mut b = vec![0u8; 1 << 17];
        b[0..4].copy_from_slice(b"XFSB");
        b[32..48].copy_from_slice(&[0x11; 16]);
        let info = probe_bytes(b);
        assert_eq!(info.kind, FsKind::Xfs);
        assert_eq!(
            info.uuid.as_deref(),
            Some("11111111-1111-1111-1111-111111111111")
        );
        assert!(info.kind.could_hold_boot());
    }

    #[test]
    fn btrfs_is_found_at_64k() {
        let mut b = vec![0u8; 1 << 18];
        b[0x10040..0x10048].copy_from_slice(b"_BHRfS_M");
        assert_eq!(probe_bytes(b).kind, FsKind::Btrfs);
    }

    #[test]
    fn lvm_labels_are_found_in_the_second_sector() {
        let mut b = vec![0u8; 1 << 16];
        b[512..520].copy_from_slice(b"LABELONE");
        b[536..544].copy_from_slice(b"LVM2 001");
        assert_eq!(probe_bytes(b).kind, FsKind::Lvm);
    }

    #[test]
    fn ext4_features_make_ext4_and_a_journal_alone_ext3() {
        let mut b = vec![0u8; 4096];
        b[1080] = 0x53;
        b[1081] = 0xEF;
        b[1024 + 0x5C] = 0x4; // has_journal
        b[1024 + 0x60] = 0x2; // filetype
        assert_eq!(probe_bytes(b.clone()).kind, FsKind::Ext3);
        b[1024 + 0x60] = 0x42; // + extents
        assert_eq!(probe_bytes(b).kind, FsKind::Ext4);
    }

    #[test]
    fn fat_serials_print_like_blkid() {
        let mut b = vec![0u8; 4096];
        b[54..59].copy_from_slice(b"FAT16");
        b[39..43].copy_from_slice(&0x1234ABCDu32.to_le_bytes());
        b[43..54].copy_from_slice(b"CIDATA     ");
        b[510] = 0x55;
        b[511] = 0xAA;
        let info = probe_bytes(b);
        assert_eq!(info.kind, FsKind::Vfat);
        assert_eq!(info.uuid.as_deref(), Some("1234-ABCD"));
        assert_eq!(info.label.as_deref(), Some("CIDATA"));
    }

    #[test]
    fn short_or_empty_partitions_are_unknown() {
        assert_eq!(probe_bytes(vec![]).kind, FsKind::Unknown);
        assert_eq!(probe_bytes(vec![0; 100]).kind, FsKind::Unknown);
    }
}
