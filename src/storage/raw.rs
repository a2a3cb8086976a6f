//! Raw images: the virtual disk is the file, byte for byte. I/O is `pread`/`pwrite`; zeroes and
//! discards punch holes (`fallocate`), and `SEEK_DATA`/`SEEK_HOLE` tell data from holes, so raw
//! images stay sparse through copies.

use super::format::ImageFormat;
use super::image::{BlockImage, Extent, ImageError, ImageLock, check_range, check_writable};
use nix::errno::Errno;
use nix::fcntl::{FallocateFlags, fallocate};
use nix::unistd::{Whence, lseek};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes written per `pwrite` when zeroes have to be written as data.
const ZERO_CHUNK: usize = 1 << 20;

/// An opened raw image.
#[derive(Debug)]
pub struct RawImage {
    path: PathBuf,
    file: File,
    capacity: u64,
    read_only: bool,
    _lock: ImageLock,
}

impl RawImage {
    /// Opens and locks `path` (exclusive when writable).
    pub fn open(path: &Path, read_only: bool) -> Result<RawImage, ImageError> {
        let lock = ImageLock::acquire(path, !read_only)?;
        let file = super::nofollow::open_image_file(path, !read_only)?;
        let capacity = file
            .metadata()
            .map_err(|source| ImageError::io(path, "inspect", source))?
            .len();
        Ok(RawImage {
            path: path.to_path_buf(),
            file,
            capacity,
            read_only,
            _lock: lock,
        })
    }

    /// Punches a hole (reads as zeroes, frees blocks) where the file system can.
    fn punch(&self, offset: u64, len: u64) -> io::Result<()> {
        let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        fallocate(&self.file, flags, to_off(offset)?, to_off(len)?).map_err(io::Error::from)
    }

    /// Writes zero bytes as data.
    fn write_zero_data(&self, mut offset: u64, len: u64) -> io::Result<()> {
        let zeroes = vec![0u8; ZERO_CHUNK.min(len as usize)];
        let end = offset + len;
        while offset < end {
            let n = (end - offset).min(zeroes.len() as u64) as usize;
            self.file.write_all_at(&zeroes[..n], offset)?;
            offset += n as u64;
        }
        Ok(())
    }
}

fn to_off(value: u64) -> io::Result<i64> {
    i64::try_from(value)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))
}

impl BlockImage for RawImage {
    fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self) -> ImageFormat {
        ImageFormat::Raw
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.capacity)?;
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        check_writable(self.read_only)?;
        check_range(offset, buf.len() as u64, self.capacity)?;
        self.file.write_all_at(buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.file.sync_data()
    }

    fn supports_discard(&self) -> bool {
        !self.read_only
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        check_writable(self.read_only)?;
        check_range(offset, len, self.capacity)?;
        if len == 0 {
            return Ok(());
        }
        match self.punch(offset, len) {
            Ok(()) => Ok(()),
            // File systems without hole punching still get the zeroes, as data.
            Err(e) if e.raw_os_error() == Some(Errno::EOPNOTSUPP as i32) => {
                self.write_zero_data(offset, len)
            }
            Err(e) => Err(e),
        }
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        check_writable(self.read_only)?;
        check_range(offset, len, self.capacity)?;
        if len == 0 {
            return Ok(());
        }
        self.punch(offset, len)
    }

    fn extent(&self, offset: u64, max_len: u64) -> io::Result<(Extent, u64)> {
        check_range(offset, 0, self.capacity)?;
        let max_len = max_len.min(self.capacity - offset);
        if max_len == 0 {
            return Ok((Extent::Zero, 0));
        }
        let data = match lseek(&self.file, to_off(offset)?, Whence::SeekData) {
            Ok(pos) => pos as u64,
            // No data from here to the end of the file.
            Err(Errno::ENXIO) => return Ok((Extent::Zero, max_len)),
            // No SEEK_DATA support: call everything data.
            Err(Errno::EINVAL) => return Ok((Extent::Data, max_len)),
            Err(e) => return Err(e.into()),
        };
        if data > offset {
            return Ok((Extent::Zero, (data - offset).min(max_len)));
        }
        let hole =
            lseek(&self.file, to_off(offset)?, Whence::SeekHole).map_err(io::Error::from)? as u64;
        Ok((Extent::Data, hole.saturating_sub(offset).clamp(1, max_len)))
    }

    fn resize(&mut self, new_capacity: u64) -> io::Result<()> {
        check_writable(self.read_only)?;
        self.file.set_len(new_capacity)?;
        self.capacity = new_capacity;
        Ok(())
    }

    fn grow_allocated(&mut self, new_capacity: u64) -> io::Result<()> {
        check_writable(self.read_only)?;
        let old = self.capacity;
        if new_capacity <= old {
            return Ok(());
        }
        self.resize(new_capacity)?;
        super::create::allocate(&self.file, old, new_capacity - old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sparse(len: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.raw");
        File::create(&path)
            .and_then(|f| f.set_len(len))
            .expect("create");
        (dir, path)
    }

    #[test]
    fn written_bytes_read_back() {
        let (_dir, path) = sparse(1 << 20);
        let image = RawImage::open(&path, false).expect("open");
        image.write_at(4096, &[0xab; 512]).expect("write");
        let mut buf = [0u8; 512];
        image.read_at(4096, &mut buf).expect("read");
        assert_eq!(buf, [0xab; 512]);
    }

    #[test]
    fn a_read_past_the_end_is_refused() {
        let (_dir, path) = sparse(4096);
        let image = RawImage::open(&path, true).expect("open");
        let mut buf = [0u8; 512];
        let err = image.read_at(4096 - 256, &mut buf).expect_err("must fail");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_read_only_image_refuses_writes() {
        let (_dir, path) = sparse(4096);
        let image = RawImage::open(&path, true).expect("open");
        assert!(image.write_at(0, &[1]).is_err());
    }

    #[test]
    fn extents_tell_data_from_holes() {
        let (_dir, path) = sparse(4 << 20);
        let image = RawImage::open(&path, false).expect("open");
        image.write_at(1 << 20, &[1u8; 65536]).expect("write");
        let (kind, len) = image.extent(0, 4 << 20).expect("extent");
        assert_eq!((kind, len), (Extent::Zero, 1 << 20));
        let (kind, len) = image.extent(1 << 20, 4 << 20).expect("extent");
        assert_eq!(kind, Extent::Data);
        assert!(len >= 65536, "{len}");
    }

    #[test]
    fn write_zeroes_reads_back_as_zeroes() {
        let (_dir, path) = sparse(1 << 20);
        let image = RawImage::open(&path, false).expect("open");
        image.write_at(0, &[7u8; 8192]).expect("write");
        image.write_zeroes(0, 8192).expect("zero");
        let mut buf = [1u8; 8192];
        image.read_at(0, &mut buf).expect("read");
        assert!(buf.iter().all(|b| *b == 0));
    }
}
