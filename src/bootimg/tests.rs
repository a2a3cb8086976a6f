//! Whole-inspection tests on hand-made disks: the errors a user sees for a disk vmux cannot
//! boot, and bounded behaviour on forged filesystem metadata. Real filesystem layouts are
//! tested in tests/boot_images.rs on images built by scripts/make-test-images.sh.

use super::gpt::testdisk::{self, LINUX_FS, Spec};
use super::*;
use std::sync::Arc;

const MIB: usize = 1 << 20;

/// A 4 MiB GPT disk with one Linux partition from sector 2048 to 6143.
fn gpt_disk() -> Vec<u8> {
    let mut disk = vec![0u8; 4 * MIB];
    testdisk::write(
        &mut disk,
        &[Spec {
            type_guid: LINUX_FS,
            first: 2048,
            last: 6143,
        }],
    );
    disk
}

const PART: usize = 2048 * 512;

/// Writes an ext superblock at `at` (the filesystem's start): 1 KiB blocks, `blocks` blocks,
/// `per_group` blocks per group.
fn ext_superblock(disk: &mut [u8], at: usize, blocks: u32, per_group: u32) {
    let sb = at + 1024;
    disk[sb + 0x4..sb + 0x8].copy_from_slice(&blocks.to_le_bytes());
    disk[sb + 0x14..sb + 0x18].copy_from_slice(&1u32.to_le_bytes());
    disk[sb + 0x20..sb + 0x24].copy_from_slice(&per_group.to_le_bytes());
    disk[sb + 0x28..sb + 0x2C].copy_from_slice(&256u32.to_le_bytes());
    disk[sb + 0x38..sb + 0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
    disk[sb + 0x58..sb + 0x5A].copy_from_slice(&256u16.to_le_bytes());
    disk[sb + 0x60..sb + 0x64].copy_from_slice(&0x2u32.to_le_bytes());
}

fn inspect_bytes(disk: Vec<u8>) -> Result<BootPlan, BootImageError> {
    inspect(Arc::new(disk))
}

#[test]
fn an_ext_filesystem_larger_than_its_partition_is_called_truncated() {
    let mut disk = gpt_disk();
    ext_superblock(&mut disk, PART, 1 << 30, 8192);
    let err = inspect_bytes(disk).expect_err("too large");
    let text = err.to_string();
    assert!(
        matches!(err, BootImageError::ExtCorrupt { partition: 1, .. }),
        "{text}"
    );
    assert!(text.contains("the image may be truncated"), "{text}");
}

#[test]
fn a_forged_group_count_is_refused_before_ext4_view_allocates() {
    let mut disk = gpt_disk();
    ext_superblock(&mut disk, PART, 2048, 1);
    let err = inspect_bytes(disk).expect_err("1 block per group");
    assert!(
        err.to_string().contains("blocks per group is invalid"),
        "{err}"
    );
}

#[test]
fn a_damaged_superblock_that_passes_the_size_checks_is_an_ext_error() {
    let mut disk = gpt_disk();
    ext_superblock(&mut disk, PART, 2048, 8192);
    // Nothing else of the filesystem exists: group descriptors and inodes are zeroes.
    let err = inspect_bytes(disk).expect_err("no usable filesystem");
    let text = err.to_string();
    assert!(text.contains("partition 1"), "{text}");
}

#[test]
fn a_whole_disk_of_xfs_names_xfs() {
    let mut disk = vec![0u8; 2 * MIB];
    disk[0..4].copy_from_slice(b"XFSB");
    let err = inspect_bytes(disk).expect_err("xfs");
    assert_eq!(
        err.to_string(),
        "the /boot filesystem (the whole disk) is XFS, which vmux cannot read; boot this image with --kernel/--initrd extracted by hand, or convert /boot to ext4"
    );
}

#[test]
fn an_lvm_partition_is_named_when_no_ext_filesystem_boots() {
    let mut disk = gpt_disk();
    disk[PART + 512..PART + 520].copy_from_slice(b"LABELONE");
    disk[PART + 536..PART + 544].copy_from_slice(b"LVM2 001");
    let err = inspect_bytes(disk).expect_err("lvm");
    assert!(
        err.to_string()
            .contains("is an LVM physical volume, which vmux cannot read"),
        "{err}"
    );
}

#[test]
fn zeroes_are_neither_a_table_nor_a_filesystem() {
    let err = inspect_bytes(vec![0u8; 2 * MIB]).expect_err("nothing");
    assert!(
        matches!(err, BootImageError::NothingRecognised { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--kernel/--initrd"), "{err}");
}

#[test]
fn an_empty_gpt_lists_nothing_searched() {
    let mut disk = vec![0u8; 4 * MIB];
    testdisk::write(&mut disk, &[]);
    let err = inspect_bytes(disk).expect_err("empty");
    assert!(
        err.to_string().contains("an empty partition table"),
        "{err}"
    );
}

#[test]
fn random_disks_never_panic() {
    let mut seed = 0xDEAD_BEEF_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..40 {
        let mut disk = gpt_disk();
        if round % 2 == 0 {
            ext_superblock(&mut disk, PART, 4096, 8192);
        }
        for _ in 0..200 {
            let at = (next() as usize) % (PART + 64 * 1024);
            disk[at] = next() as u8;
        }
        let _ = inspect_bytes(disk);
    }
}

/// A disk whose every read succeeds with zeroes, and says how many bytes were asked for.
struct Counting {
    size: u64,
    read: std::sync::atomic::AtomicU64,
}

impl ReadAt for Counting {
    fn read_at(&self, _offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.read
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        buf.fill(0);
        Ok(())
    }
    fn size(&self) -> u64 {
        self.size
    }
}

#[test]
fn inspecting_a_huge_empty_disk_reads_only_its_first_bytes() {
    let disk = Arc::new(Counting {
        size: 1 << 40,
        read: Default::default(),
    });
    let err = inspect(Arc::clone(&disk) as Arc<dyn ReadAt>).expect_err("nothing there");
    assert!(
        matches!(err, BootImageError::NothingRecognised { .. }),
        "{err}"
    );
    let read = disk.read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        read < 256 * 1024,
        "read {read} bytes of an empty 1 TiB disk"
    );
}
