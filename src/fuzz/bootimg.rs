//! Fuzz entry point for the boot-image reader: partition tables (MBR, GPT), ext2/3/4,
//! grub.cfg, grubenv and BLS entries, read from a sparse disk the input describes.
//!
//! Real disk images are megabytes of mostly zeros, so the input lists only the non-zero
//! runs: `scripts/fuzz-seeds.py` turns an image into this form for the seed corpus.

use std::io;
use std::sync::Arc;

use crate::bootimg::ReadAt;

use super::Input;

/// Bytes in a sector, the unit of the sparse format's offsets.
const SECTOR: u64 = 512;

/// A disk of `size` bytes, zero except for `runs` (offset, bytes).
struct SparseDisk {
    size: u64,
    runs: Vec<(u64, Vec<u8>)>,
}

impl SparseDisk {
    /// Bytes 0-3: the size in sectors; then runs, each a 4-byte sector offset, a 2-byte length
    /// and that many bytes. Later runs overwrite earlier ones.
    fn decode(data: &[u8]) -> SparseDisk {
        let mut input = Input::new(data);
        let size = u64::from(input.u32()) * SECTOR;
        let mut runs = Vec::new();
        while !input.is_empty() {
            let offset = u64::from(input.u32()) * SECTOR;
            let len = usize::from(input.u16());
            runs.push((offset, input.take(len).to_vec()));
        }
        SparseDisk { size, runs }
    }
}

impl ReadAt for SparseDisk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|end| *end <= self.size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "past the disk's end"))?;
        buf.fill(0);
        for (start, bytes) in &self.runs {
            let run_end = start + bytes.len() as u64;
            if run_end <= offset || *start >= end {
                continue;
            }
            let from = offset.max(*start);
            let to = end.min(run_end);
            let dst = (from - offset) as usize..(to - offset) as usize;
            let src = (from - start) as usize..(to - start) as usize;
            buf[dst].copy_from_slice(&bytes[src]);
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }
}

/// Looks for a kernel, initrd and command line on the disk `data` describes.
pub fn inspect(data: &[u8]) {
    let _ = crate::bootimg::inspect(Arc::new(SparseDisk::decode(data)));
}
