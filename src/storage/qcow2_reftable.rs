//! The refcount-table check a qcow2 image passes before imago may allocate in it (it is opened
//! writable). imago 0.2.6 trusts the refcount table: when the refcount block covering the
//! header's cluster is missing it recurses without bound looking for a place to put one (a
//! stack overflow, found by fuzzing: `fuzz/regressions/qcow2_open/`), and a refcount block
//! past the end of the file is read as zeroes and handed out again. Every image QEMU or vmux
//! writes has a refcount block for cluster 0 (the header is in use) and none outside the file,
//! so such an image is damaged; it is refused with how to check it instead. Reads never
//! allocate, so a read-only open does not need this.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::image::ImageError;
use super::qcow2_header::read_start;

/// Header byte offset of the cluster size's log2 (u32, big endian).
const CLUSTER_BITS_OFFSET: usize = 20;
/// Header byte offset of the refcount table's file offset (u64, big endian).
const REFTABLE_OFFSET: usize = 48;
/// Header byte offset of the refcount table's length in clusters (u32, big endian).
const REFTABLE_CLUSTERS: usize = 56;
/// Bits of a refcount-table entry that hold the block's offset (bits 0-8 are reserved).
const ENTRY_OFFSET_MASK: u64 = !0x1ff;

/// Checks the refcount table of the qcow2 image open as `file` (`path` names it in errors):
/// it lies inside the file, its first entry names a refcount block (the one counting the
/// header), and every block it names starts on a cluster boundary inside the file. Headers it
/// cannot read are left to imago, which refuses them with its own message.
pub fn check(file: &File, path: &Path) -> Result<(), ImageError> {
    let io_error = |source| ImageError::Io {
        path: path.to_path_buf(),
        op: "read",
        source,
    };
    let start = read_start(file).map_err(io_error)?;
    let (Some(cluster_bits), Some(table_offset), Some(table_clusters)) = (
        be(&start, CLUSTER_BITS_OFFSET, 4),
        be(&start, REFTABLE_OFFSET, 8),
        be(&start, REFTABLE_CLUSTERS, 4),
    ) else {
        return Ok(());
    };
    if !(9..=21).contains(&cluster_bits) {
        return Ok(());
    }
    let cluster_size = 1u64 << cluster_bits;
    let file_len = file.metadata().map_err(io_error)?.len();
    // The last cluster may be partial: a file need not end on a cluster boundary.
    let inside = |offset: u64, len: u64| {
        offset.is_multiple_of(cluster_size)
            && offset
                .checked_add(len)
                .is_some_and(|end| end <= file_len.next_multiple_of(cluster_size))
    };
    let damaged = |reason: String| ImageError::DamagedRefcounts {
        path: path.to_path_buf(),
        reason,
    };
    let table_len = table_clusters.saturating_mul(cluster_size);
    if table_clusters == 0 || !inside(table_offset, table_len) {
        return Err(damaged(format!(
            "its refcount table ({table_clusters} clusters at offset {table_offset}) lies outside the file"
        )));
    }
    // Inside the file, so bounded by its size; the part past a partial last cluster is zeroes.
    let readable = table_len.min(file_len.saturating_sub(table_offset));
    let mut table =
        vec![0u8; usize::try_from(readable).map_err(|e| io_error(std::io::Error::other(e)))?];
    file.read_exact_at(&mut table, table_offset)
        .map_err(io_error)?;
    for (index, entry) in table.chunks_exact(8).enumerate() {
        let block = be(entry, 0, 8).unwrap_or(0) & ENTRY_OFFSET_MASK;
        if block == 0 {
            if index == 0 {
                return Err(damaged(
                    "no refcount block counts the header's cluster (refcount table entry 0 is empty)"
                        .to_owned(),
                ));
            }
            continue;
        }
        if !inside(block, cluster_size) {
            return Err(damaged(format!(
                "refcount block {index} (at offset {block}) lies outside the file or off a cluster boundary"
            )));
        }
    }
    if table.len() < 8 {
        return Err(damaged(
            "no refcount block counts the header's cluster (the refcount table is cut off)"
                .to_owned(),
        ));
    }
    Ok(())
}

/// The big-endian number of `width` bytes at `at` in `buf`, if it is that long.
fn be(buf: &[u8], at: usize, width: usize) -> Option<u64> {
    let bytes = buf.get(at..at.checked_add(width)?)?;
    Some(bytes.iter().fold(0u64, |n, b| n << 8 | u64::from(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A 3-cluster (512-byte clusters) qcow2 v3 header: refcount table at cluster 1 holding
    /// `entries`, refcount block at cluster 2.
    fn image(entries: &[u64]) -> tempfile::NamedTempFile {
        let mut bytes = vec![0u8; 3 * 512];
        bytes[..4].copy_from_slice(b"QFI\xfb");
        bytes[4..8].copy_from_slice(&3u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&9u32.to_be_bytes());
        bytes[48..56].copy_from_slice(&512u64.to_be_bytes());
        bytes[56..60].copy_from_slice(&1u32.to_be_bytes());
        for (i, entry) in entries.iter().enumerate() {
            bytes[512 + 8 * i..520 + 8 * i].copy_from_slice(&entry.to_be_bytes());
        }
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(&bytes).expect("write image");
        file
    }

    fn check_image(entries: &[u64]) -> Result<(), ImageError> {
        let file = image(entries);
        check(file.as_file(), file.path())
    }

    #[test]
    fn a_table_whose_blocks_lie_in_the_file_passes() {
        check_image(&[1024]).expect("a sound refcount table");
    }

    #[test]
    fn a_missing_block_for_the_header_is_refused() {
        let error = check_image(&[0, 1024]).expect_err("entry 0 empty");
        assert!(
            error
                .to_string()
                .contains("refcount table entry 0 is empty"),
            "{error}"
        );
    }

    #[test]
    fn a_block_past_the_end_of_the_file_is_refused() {
        let error = check_image(&[1024, 0x20_0000_0000]).expect_err("block 1 outside");
        assert!(error.to_string().contains("refcount block 1"), "{error}");
        assert!(error.to_string().contains("vol-check"), "{error}");
    }

    #[test]
    fn a_table_past_the_end_of_the_file_is_refused() {
        let file = image(&[1024]);
        let mut header = [0u8; 8];
        header.copy_from_slice(&(64u64 * 512).to_be_bytes());
        file.as_file()
            .write_all_at(&header, 48)
            .expect("move the table");
        let error = check(file.as_file(), file.path()).expect_err("table outside");
        assert!(error.to_string().contains("refcount table"), "{error}");
    }
}
