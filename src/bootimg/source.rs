//! The bytes under boot-image inspection: [`ReadAt`], a read-only view of a whole virtual disk,
//! and [`Window`], one partition of it with a shared read [`Budget`].
//!
//! Every read the partition-table, filesystem and boot-entry code makes goes through a
//! `Window`, which refuses reads outside its partition and charges the budget, so a hostile
//! image cannot make an inspection read without end: once the budget is spent every further
//! read fails and the inspection stops with [`super::BootImageError::Budget`].

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A read-only byte source for a whole virtual disk (offsets are bytes of the guest-visible
/// disk, not of the file holding it).
///
/// Implementations may be used from one thread at a time or many; `read_at` must either fill
/// `buf` completely or fail. Reads past [`ReadAt::size`] fail.
pub trait ReadAt: Send + Sync {
    /// Fills `buf` with the bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Size of the disk in bytes.
    fn size(&self) -> u64;
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| past_end(offset, buf.len()))?;
        let end = start
            .checked_add(buf.len())
            .filter(|end| *end <= self.len())
            .ok_or_else(|| past_end(offset, buf.len()))?;
        buf.copy_from_slice(&self[start..end]);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.len() as u64
    }
}

/// A raw disk image file read as it is (no format interpretation). For images that the
/// storage layer manages use [`super::StorageDisk`] instead, which understands qcow2.
#[derive(Debug)]
pub struct RawFile {
    file: File,
    size: u64,
}

impl RawFile {
    /// Wraps an opened file; its current length is the disk size.
    pub fn new(file: File) -> io::Result<RawFile> {
        let size = file.metadata()?.len();
        Ok(RawFile { file, size })
    }
}

impl ReadAt for RawFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.size => self.file.read_exact_at(buf, offset),
            _ => Err(past_end(offset, buf.len())),
        }
    }

    fn size(&self) -> u64 {
        self.size
    }
}

fn past_end(offset: u64, len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("read of {len} bytes at offset {offset} is past the end"),
    )
}

/// How much one inspection or extraction may read: bytes and read calls. Shared by every
/// [`Window`] of that operation.
#[derive(Debug)]
pub struct Budget {
    limit: u64,
    bytes_left: AtomicU64,
    reads_left: AtomicU64,
    exhausted: AtomicBool,
}

impl Budget {
    /// A budget of `bytes` bytes in at most `reads` read calls.
    pub fn new(bytes: u64, reads: u64) -> Arc<Budget> {
        Arc::new(Budget {
            limit: bytes,
            bytes_left: AtomicU64::new(bytes),
            reads_left: AtomicU64::new(reads),
            exhausted: AtomicBool::new(false),
        })
    }

    /// The byte limit, for messages ("512 MiB").
    pub fn describe(&self) -> String {
        format!("{} MiB", self.limit.div_ceil(1 << 20))
    }

    /// Whether a read was refused because the budget ran out.
    pub fn exhausted(&self) -> bool {
        self.exhausted.load(Ordering::Relaxed)
    }

    fn charge(&self, bytes: u64) -> io::Result<()> {
        let take = |counter: &AtomicU64, amount: u64| {
            counter
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(amount)
                })
                .is_ok()
        };
        if take(&self.reads_left, 1) && take(&self.bytes_left, bytes) {
            return Ok(());
        }
        self.exhausted.store(true, Ordering::Relaxed);
        Err(io::Error::other(
            "the read budget of this boot-image inspection is spent",
        ))
    }
}

/// A byte range of the disk (a partition, or the whole disk) that reads are confined to.
#[derive(Clone)]
pub struct Window {
    disk: Arc<dyn ReadAt>,
    start: u64,
    len: u64,
    budget: Arc<Budget>,
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("start", &self.start)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Window {
    /// The whole disk.
    pub fn whole(disk: Arc<dyn ReadAt>, budget: Arc<Budget>) -> Window {
        let len = disk.size();
        Window {
            disk,
            start: 0,
            len,
            budget,
        }
    }

    /// `len` bytes from `start` of the disk, cut at the disk's end.
    pub fn sub(&self, start: u64, len: u64) -> Window {
        let disk_size = self.disk.size();
        let start = start.min(disk_size);
        Window {
            disk: Arc::clone(&self.disk),
            start,
            len: len.min(disk_size - start),
            budget: Arc::clone(&self.budget),
        }
    }

    /// Length of the window in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the window holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The budget reads are charged to.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Fills `buf` from `offset` within the window.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.len => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "read of {} bytes at offset {offset} is past the end of a {}-byte range",
                        buf.len(),
                        self.len
                    ),
                ));
            }
        }
        self.budget.charge(buf.len() as u64)?;
        self.disk.read_at(self.start + offset, buf)
    }

    /// Reads `len` bytes at `offset`, or `None` when they lie (partly) past the window's end.
    pub fn read_vec(&self, offset: u64, len: usize) -> io::Result<Option<Vec<u8>>> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.len => {
                let mut buf = vec![0; len];
                self.read(offset, &mut buf)?;
                Ok(Some(buf))
            }
            _ => Ok(None),
        }
    }
}

impl ext4_view::Ext4Read for Window {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Window::read(self, start_byte, dst).map_err(|e| Box::new(e) as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(bytes: Vec<u8>, budget_bytes: u64) -> Window {
        Window::whole(Arc::new(bytes), Budget::new(budget_bytes, 1000))
    }

    #[test]
    fn reads_inside_a_window_are_offset_by_its_start() {
        let whole = window((0..=255u8).collect(), 1 << 20);
        let part = whole.sub(16, 32);
        let mut buf = [0u8; 4];
        part.read(4, &mut buf).expect("inside");
        assert_eq!(buf, [20, 21, 22, 23]);
    }

    #[test]
    fn reads_past_a_window_fail_even_when_the_disk_has_the_bytes() {
        let part = window(vec![0; 256], 1 << 20).sub(0, 16);
        let mut buf = [0u8; 4];
        assert!(part.read(14, &mut buf).is_err());
        assert!(part.read(u64::MAX - 1, &mut buf).is_err());
    }

    #[test]
    fn a_window_past_the_disk_end_is_cut_to_it() {
        let part = window(vec![0; 100], 1 << 20).sub(90, 1000);
        assert_eq!(part.len(), 10);
        assert!(window(vec![0; 100], 1 << 20).sub(500, 10).is_empty());
    }

    #[test]
    fn a_spent_budget_refuses_reads_and_says_so() {
        let whole = window(vec![0; 64], 8);
        let mut buf = [0u8; 8];
        whole.read(0, &mut buf).expect("within budget");
        assert!(!whole.budget().exhausted());
        assert!(whole.read(8, &mut buf).is_err());
        assert!(whole.budget().exhausted());
    }

    #[test]
    fn vec_reads_past_the_end_fail() {
        let disk = vec![1u8; 10];
        let mut buf = [0u8; 4];
        assert!(disk.read_at(8, &mut buf).is_err());
        disk.read_at(6, &mut buf).expect("last four");
    }
}
