//! Moving data between opened images: full copies (clone, convert, upload, download) that keep
//! destinations sparse, and commit (snapshot deletion), which writes what an overlay holds into
//! the image below it.
//!
//! Both walk the source by extents, so holes and unallocated clusters cost nothing, and skip
//! writing blocks that are all zero (like `qemu-img convert`'s default `-S 4k`). Both count
//! every byte of the virtual disk they have walked on a [`Progress`] handle (the caller begins
//! and finishes it) and stop with [`ImageError::Cancelled`] at the next chunk once it is
//! cancelled; the destination is then incomplete, and the caller discards it as after a failure.

use super::image::{BlockImage, Extent, ImageError};
use crate::progress::Progress;

/// Bytes moved per read/write call.
pub const COPY_CHUNK: u64 = 2 << 20;
/// Granularity of zero detection: all-zero blocks of this size are not written.
const ZERO_BLOCK: usize = 4096;

/// Copies every byte of `src` into `dst`, which must be freshly created (reading as zeroes) and
/// at least as large. Ranges of `src` that read as zero are not written. Advances `progress` by
/// `src`'s capacity in all.
pub fn copy_image(
    src: &dyn BlockImage,
    dst: &dyn BlockImage,
    progress: &Progress,
) -> Result<(), ImageError> {
    let capacity = src.capacity();
    let mut buf = vec![0u8; COPY_CHUNK as usize];
    let mut offset = 0;
    while offset < capacity {
        let (kind, len) = src
            .extent(offset, COPY_CHUNK)
            .map_err(|e| ImageError::transfer(src.path(), "inspect", offset, e))?;
        if kind != Extent::Zero {
            copy_range(src, dst, offset, &mut buf[..len as usize])?;
        }
        offset += len;
        progress.advance(len)?;
    }
    dst.flush()
        .map_err(|e| ImageError::transfer(dst.path(), "flush", 0, e))
}

/// Writes what `top` holds itself (not what it reads from its backing file) into `base`:
/// data is copied, zero clusters become zeroes. `top` must be opened with its backing chain so
/// that unallocated ranges show as [`Extent::Backing`]. `base` must be at least as large.
/// Running it twice gives the same result (snapshot deletion resumes with it after a crash).
/// Advances `progress` by `top`'s capacity in all. `base` is flushed whatever happens: after a
/// cancel or a failure it holds part of `top`'s data, durably, and the chain reads as before.
pub fn commit(
    top: &dyn BlockImage,
    base: &dyn BlockImage,
    progress: &Progress,
) -> Result<(), ImageError> {
    let merged = commit_ranges(top, base, progress);
    let flushed = base
        .flush()
        .map_err(|e| ImageError::transfer(base.path(), "flush", 0, e));
    merged.and(flushed)
}

fn commit_ranges(
    top: &dyn BlockImage,
    base: &dyn BlockImage,
    progress: &Progress,
) -> Result<(), ImageError> {
    let capacity = top.capacity();
    let mut buf = vec![0u8; COPY_CHUNK as usize];
    let mut offset = 0;
    while offset < capacity {
        let (kind, len) = top
            .extent(offset, COPY_CHUNK)
            .map_err(|e| ImageError::transfer(top.path(), "inspect", offset, e))?;
        match kind {
            Extent::Data => copy_range(top, base, offset, &mut buf[..len as usize])?,
            Extent::Zero => base
                .write_zeroes(offset, len)
                .map_err(|e| ImageError::transfer(base.path(), "write", offset, e))?,
            Extent::Backing => {}
        }
        offset += len;
        progress.advance(len)?;
    }
    Ok(())
}

/// Reads `buf.len()` bytes at `offset` from `src` and writes the blocks that are not all zero
/// to `dst`.
fn copy_range(
    src: &dyn BlockImage,
    dst: &dyn BlockImage,
    offset: u64,
    buf: &mut [u8],
) -> Result<(), ImageError> {
    src.read_at(offset, buf)
        .map_err(|e| ImageError::transfer(src.path(), "read", offset, e))?;
    let mut at = 0;
    while at < buf.len() {
        // Extend a run of non-zero blocks, and write it in one call.
        let run_start = at;
        while at < buf.len() && !is_zero(&buf[at..(at + ZERO_BLOCK).min(buf.len())]) {
            at = (at + ZERO_BLOCK).min(buf.len());
        }
        if at > run_start {
            let dst_offset = offset + run_start as u64;
            dst.write_at(dst_offset, &buf[run_start..at])
                .map_err(|e| ImageError::transfer(dst.path(), "write", dst_offset, e))?;
        }
        // Skip a run of zero blocks.
        while at < buf.len() && is_zero(&buf[at..(at + ZERO_BLOCK).min(buf.len())]) {
            at = (at + ZERO_BLOCK).min(buf.len());
        }
    }
    Ok(())
}

/// Whether every byte is zero (written without an early exit so it vectorizes).
fn is_zero(block: &[u8]) -> bool {
    block.iter().fold(0u8, |acc, b| acc | b) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::create::{NewImage, create_image};
    use crate::storage::format::ImageFormat;
    use crate::storage::image::{OpenOptions, open_image};

    #[test]
    fn a_copy_reads_back_identically_and_stays_sparse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src_path = dir.path().join("src.raw");
        let dst_path = dir.path().join("dst.qcow2");
        create_image(&src_path, &NewImage::new(ImageFormat::Raw, 64 << 20)).expect("src");
        create_image(&dst_path, &NewImage::new(ImageFormat::Qcow2, 64 << 20)).expect("dst");
        let src = open_image(&src_path, &OpenOptions::writable()).expect("open src");
        src.write_at(5 << 20, &[0x5a; 12345]).expect("write");
        let dst = open_image(&dst_path, &OpenOptions::writable()).expect("open dst");
        copy_image(src.as_ref(), dst.as_ref(), &Progress::new()).expect("copy");
        let mut a = vec![0u8; 64 << 20];
        let mut b = vec![1u8; 64 << 20];
        src.read_at(0, &mut a).expect("read src");
        dst.read_at(0, &mut b).expect("read dst");
        assert!(a == b);
        drop(dst);
        let size = std::fs::metadata(&dst_path).expect("stat").len();
        assert!(size < 2 << 20, "destination grew to {size}");
    }

    #[test]
    fn zero_detection_sees_a_single_byte() {
        let mut block = [0u8; 4096];
        assert!(is_zero(&block));
        block[4095] = 1;
        assert!(!is_zero(&block));
    }
}
