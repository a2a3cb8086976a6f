//! What a virtio-blk device stores its sectors in: the [`DiskBackend`] trait and the raw-file
//! implementation. The qcow2 backend (storage module) implements the same trait.
//!
//! Offsets and lengths are bytes; callers (the request parser) have already checked them
//! against [`DiskBackend::capacity`]. Methods are called from the disk's worker thread only.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FallocateFlags, fallocate};

/// Storage behind one virtio-blk device.
pub trait DiskBackend: Send + Sync {
    /// Size of the disk, bytes.
    fn capacity(&self) -> u64;
    /// Whether the disk refuses writes.
    fn read_only(&self) -> bool;
    /// Fills `buf` from `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Stores `buf` at `offset`.
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes every completed write durable (fdatasync for files).
    fn flush(&self) -> io::Result<()>;
    /// Whether [`discard`](Self::discard) does something useful.
    fn supports_discard(&self) -> bool;
    /// Tells the backend `len` bytes at `offset` are unused; their contents become
    /// unspecified.
    fn discard(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Whether [`write_zeroes`](Self::write_zeroes) is supported.
    fn supports_write_zeroes(&self) -> bool;
    /// Makes `len` bytes at `offset` read as zeroes.
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Carries on with the image at `path` instead (a live snapshot's new overlay, whose
    /// backing chain holds the current image). Requests wait while the switch happens; on
    /// failure the current image stays in use. Backends that cannot do this say so.
    fn switch_image(&self, path: &std::path::Path) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "this disk cannot switch to {}; only pool images can",
                path.display()
            ),
        ))
    }
}

/// Errors opening a disk image.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The image could not be opened.
    #[error("cannot open disk image {path}: check that it exists and that you may {access} it")]
    Open {
        /// The image path.
        path: PathBuf,
        /// "read" or "read and write".
        access: &'static str,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Its size could not be read.
    #[error("cannot read the size of disk image {path}")]
    Metadata {
        /// The image path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// Largest zero-filled write used when the filesystem cannot zero a range itself, bytes.
const ZERO_CHUNK: u64 = 1 << 20;

/// A raw disk image file: sector n is at byte n * 512. The capacity is the file size at open
/// time (rounded down to whole sectors by the device).
pub struct RawFile {
    file: File,
    capacity: u64,
    read_only: bool,
}

impl RawFile {
    /// Opens `path` for reading, and for writing unless `read_only`.
    pub fn open(path: &Path, read_only: bool) -> Result<RawFile, BackendError> {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|source| BackendError::Open {
                path: path.to_owned(),
                access: if read_only { "read" } else { "read and write" },
                source,
            })?;
        let capacity = file
            .metadata()
            .map_err(|source| BackendError::Metadata {
                path: path.to_owned(),
                source,
            })?
            .len();
        Ok(RawFile {
            file,
            capacity,
            read_only,
        })
    }

    fn fallocate(&self, flags: FallocateFlags, offset: u64, len: u64) -> Result<(), Errno> {
        let offset = i64::try_from(offset).map_err(|_| Errno::EINVAL)?;
        let len = i64::try_from(len).map_err(|_| Errno::EINVAL)?;
        fallocate(
            &self.file,
            flags | FallocateFlags::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        )
    }
}

impl DiskBackend for RawFile {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn supports_discard(&self) -> bool {
        !self.read_only
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        match self.fallocate(FallocateFlags::FALLOC_FL_PUNCH_HOLE, offset, len) {
            // Discard is a hint: a filesystem that cannot punch holes keeps the data.
            Ok(()) | Err(Errno::EOPNOTSUPP) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    }

    fn supports_write_zeroes(&self) -> bool {
        !self.read_only
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        match self.fallocate(FallocateFlags::FALLOC_FL_ZERO_RANGE, offset, len) {
            Ok(()) => Ok(()),
            Err(Errno::EOPNOTSUPP) => {
                // Not every filesystem zeroes ranges; write the zeroes instead.
                let zeroes = vec![0u8; ZERO_CHUNK.min(len) as usize];
                let mut done = 0;
                while done < len {
                    let chunk = (len - done).min(ZERO_CHUNK) as usize;
                    self.file.write_all_at(&zeroes[..chunk], offset + done)?;
                    done += chunk as u64;
                }
                Ok(())
            }
            Err(errno) => Err(errno.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(bytes: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        file
    }

    #[test]
    fn capacity_is_the_file_size() {
        let file = image(&[0; 4096]);

        let disk = RawFile::open(file.path(), false).unwrap();

        assert_eq!(disk.capacity(), 4096);
    }

    #[test]
    fn written_bytes_read_back() {
        let file = image(&[0; 4096]);
        let disk = RawFile::open(file.path(), false).unwrap();

        disk.write_at(512, b"vmux").unwrap();
        disk.flush().unwrap();
        let mut back = [0u8; 4];
        disk.read_at(512, &mut back).unwrap();

        assert_eq!(&back, b"vmux");
        assert_eq!(&std::fs::read(file.path()).unwrap()[512..516], b"vmux");
    }

    #[test]
    fn write_zeroes_clears_the_range_only() {
        let file = image(&[0xaa; 4096]);
        let disk = RawFile::open(file.path(), false).unwrap();

        disk.write_zeroes(1024, 1024).unwrap();

        let bytes = std::fs::read(file.path()).unwrap();
        assert!(bytes[1024..2048].iter().all(|b| *b == 0));
        assert!(
            bytes[..1024]
                .iter()
                .chain(&bytes[2048..])
                .all(|b| *b == 0xaa)
        );
        assert_eq!(bytes.len(), 4096);
    }

    #[test]
    fn discard_keeps_the_size() {
        let file = image(&[0xaa; 8192]);
        let disk = RawFile::open(file.path(), false).unwrap();

        disk.discard(4096, 4096).unwrap();

        assert_eq!(std::fs::metadata(file.path()).unwrap().len(), 8192);
    }

    #[test]
    fn read_only_disk_refuses_writes_at_the_os_level() {
        let file = image(&[0; 4096]);
        let disk = RawFile::open(file.path(), true).unwrap();

        assert!(disk.read_only());
        assert!(disk.write_at(0, b"x").is_err());
        assert!(!disk.supports_discard());
    }

    #[test]
    fn missing_image_names_the_path() {
        let err = RawFile::open(Path::new("/nonexistent/disk.img"), false)
            .err()
            .unwrap();

        assert!(err.to_string().contains("/nonexistent/disk.img"), "{err}");
    }
}
