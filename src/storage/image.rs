//! [`BlockImage`]: I/O on one opened disk image, the interface the engine's virtio-blk device
//! (one worker thread per disk) and every storage operation (copy, convert, commit, wipe) use.
//! Raw images go through `pread`/`pwrite` ([`super::raw::RawImage`]), qcow2 through imago
//! ([`super::qcow2::Qcow2Image`]); [`open_image`] picks one after checking the whole backing
//! chain.
//!
//! Locking: an opened image holds `flock` on its file, exclusive when writable, shared when
//! read-only, and shared on every backing file. Two writers, or a writer and a reader of the
//! same file (a running VM and a `vol-wipe`, or a backing file and a write to it), conflict with
//! [`ImageError::InUse`] instead of corrupting each other.

use super::format::{BackingTrust, Detect, FormatOrigin, ImageFormat, ImageInfo, chain};
use super::nofollow::open_image_file;
use super::qcow2_header::HeaderProblem;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Errors opening, creating or inspecting images. Messages name the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be opened.
    #[error("cannot open {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// A file system operation on the image failed.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done ("read", "create", ...).
        op: &'static str,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The path is a directory or a special file.
    #[error("{} is not an image file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A file named or recorded as qcow2 does not start with the qcow2 magic.
    #[error(
        "{} is not a qcow2 image (it has no qcow2 header) although {origin}; if it is a raw image, record it as raw (`vmux vol-set-format POOL VOLUME raw` for a pool volume, format=raw in a VM's disk, --format raw on vol commands)",
        path.display()
    )]
    NotQcow2 {
        /// The file.
        path: PathBuf,
        /// What said qcow2.
        origin: FormatOrigin,
    },
    /// Nothing records the format and the file name does not name one.
    #[error(
        "the format of {} is not recorded and its name does not say it (no .qcow2, .raw or .img extension); vmux never decides a format from an image's content, because a guest can write anything into a raw disk. Record it: `vmux vol-set-format POOL VOLUME raw|qcow2` for a pool volume, format=raw|qcow2 in the VM's disk (`--disk PATH,format=raw`), or --format on vol commands",
        path.display()
    )]
    FormatUnknown {
        /// The file.
        path: PathBuf,
    },
    /// A file whose name says raw starts with a qcow2 header, and nothing records which it is.
    #[error(
        "{} is named as a raw image but starts with a qcow2 header, and its format is not recorded; vmux does not guess which is right (a guest can write a qcow2 header into its raw disk). If it is a qcow2 image, record qcow2 (`vmux vol-set-format POOL VOLUME qcow2`, format=qcow2 in the VM's disk, or --format qcow2); if it is a raw disk, record raw the same way",
        path.display()
    )]
    FormatAmbiguous {
        /// The file.
        path: PathBuf,
    },
    /// The path is a symbolic link (never followed).
    #[error(
        "{} is a symbolic link{}; vmux does not follow links to images (a link in a pool could point anywhere on the host); give the file itself{}",
        path.display(),
        target.as_ref().map(|t| format!(" to {}", t.display())).unwrap_or_default(),
        target.as_ref().map(|t| format!(" ({})", t.display())).unwrap_or_default()
    )]
    Symlink {
        /// The link.
        path: PathBuf,
        /// Where it points, when readable.
        target: Option<PathBuf>,
    },
    /// A backing file reference without a format.
    #[error(
        "{} names its backing file {} without recording its format, and vmux does not guess formats; if you trust that file, record its format with `qemu-img rebase -u -F raw|qcow2 -b {} {}`",
        image.display(), backing.display(), backing.display(), image.display()
    )]
    BackingFormatMissing {
        /// The overlay.
        image: PathBuf,
        /// The backing file it names.
        backing: PathBuf,
    },
    /// A backing file outside every pool that the user did not allow.
    #[error(
        "{} uses the backing file {}, which is outside every storage pool; vmux follows such a backing file only when you allow it by path: allow-backing={} in the VM's disk (`--disk ...,allow-backing={}`), or `--allow-backing {}` on vol commands",
        image.display(), backing.display(), backing.display(), backing.display(), backing.display()
    )]
    BackingNotTrusted {
        /// The overlay.
        image: PathBuf,
        /// The backing file it names.
        backing: PathBuf,
    },
    /// The qcow2 header is damaged.
    #[error(
        "{} has a damaged qcow2 header: {reason}; check it with `qemu-img check {}`",
        path.display(), path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The qcow2 refcount structures are damaged so that writing could corrupt the image
    /// (`qcow2_reftable`).
    #[error(
        "{} has damaged qcow2 refcount structures: {reason}; it is not opened for writing. Check it with `vmux vol-check POOL VOLUME` or `qemu-img check {}`",
        path.display(), path.display()
    )]
    DamagedRefcounts {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The image uses a feature vmux cannot handle.
    #[error(
        "{} uses {feature}, which vmux does not support; convert it with `qemu-img convert -O qcow2 {} NEW.qcow2`",
        path.display(), path.display()
    )]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The feature, by name.
        feature: String,
    },
    /// The qcow2 dirty bit is set (an unclean shutdown with lazy refcounts).
    #[error(
        "{} was not closed cleanly (qcow2 dirty bit); repair it with `qemu-img check -r all {}`",
        path.display(), path.display()
    )]
    Dirty {
        /// The file.
        path: PathBuf,
    },
    /// A backing file does not exist.
    #[error(
        "the backing file {} of {} does not exist; restore it, or point the image at another with `qemu-img rebase -u -b NEW {}`",
        backing.display(), image.display(), image.display()
    )]
    BackingMissing {
        /// The overlay.
        image: PathBuf,
        /// The missing file.
        backing: PathBuf,
    },
    /// The backing chain comes back to an image already in it.
    #[error(
        "the backing chain of {} loops: it comes back to {}; fix the chain with `qemu-img rebase -u`",
        image.display(), backing.display()
    )]
    BackingLoop {
        /// The image whose backing closes the loop.
        image: PathBuf,
        /// The image reached twice.
        backing: PathBuf,
    },
    /// The backing chain is deeper than vmux follows.
    #[error(
        "the backing chain of {} is deeper than {} images; flatten it with `qemu-img convert`",
        path.display(), super::format::MAX_CHAIN_DEPTH
    )]
    ChainTooDeep {
        /// The top image.
        path: PathBuf,
    },
    /// Another process holds the image (a running VM or another vmux command).
    #[error(
        "{} is in use by another process (a running VM or another vmux command); stop that first",
        path.display()
    )]
    InUse {
        /// The file.
        path: PathBuf,
    },
    /// imago could not open the qcow2 image.
    #[error("cannot open {} as qcow2", path.display())]
    Qcow2 {
        /// The file.
        path: PathBuf,
        /// Cause (imago's message).
        #[source]
        source: io::Error,
    },
    /// Too little free space for what was asked.
    #[error(
        "not enough free space in {}: {} needed, {} available; free some space or leave out --preallocate",
        dir.display(), crate::config::format_size(*needed), crate::config::format_size(*available)
    )]
    NoSpace {
        /// The directory the image would go in.
        dir: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes available to this user.
        available: u64,
    },
    /// An I/O operation (read, write, flush) on an opened image failed.
    #[error("cannot {op} {} at offset {offset}", path.display())]
    Transfer {
        /// The image.
        path: PathBuf,
        /// "read", "write", "flush", ...
        op: &'static str,
        /// Guest offset in bytes.
        offset: u64,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// The operation was cancelled through its progress handle; what it had made is removed,
    /// as after a failure.
    #[error("cancelled")]
    Cancelled(#[from] crate::progress::Cancelled),
}

impl ImageError {
    /// An open failure.
    pub fn open(path: &Path, source: io::Error) -> ImageError {
        ImageError::Open {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A file system failure during `op`.
    pub fn io(path: &Path, op: &'static str, source: io::Error) -> ImageError {
        ImageError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }

    /// An I/O failure on an opened image.
    pub fn transfer(path: &Path, op: &'static str, offset: u64, source: io::Error) -> ImageError {
        ImageError::Transfer {
            path: path.to_path_buf(),
            op,
            offset,
            source,
        }
    }

    /// A header problem of `path`.
    pub fn header(path: &Path, problem: HeaderProblem) -> ImageError {
        let path = path.to_path_buf();
        match problem {
            HeaderProblem::NotQcow2 => ImageError::NotQcow2 {
                path,
                origin: FormatOrigin::Record,
            },
            HeaderProblem::Corrupt(reason) => ImageError::Corrupt { path, reason },
            HeaderProblem::Unsupported(feature) => ImageError::Unsupported { path, feature },
            HeaderProblem::Dirty => ImageError::Dirty { path },
        }
    }
}

/// What a range of an image holds (see [`BlockImage::extent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// Data stored in this image (possibly zeroes written as data).
    Data,
    /// Reads as zeroes, from this image (a hole, or a qcow2 zero cluster).
    Zero,
    /// Not stored in this image: reads come from the backing file.
    Backing,
}

/// I/O on one opened disk image.
///
/// Offsets and lengths are bytes of the virtual disk. Every method may block on the host file
/// system. An image is `Send + Sync`: the engine gives each disk to one worker thread, storage
/// operations use it from the calling thread. Out-of-range requests fail with
/// `io::ErrorKind::InvalidInput` and change nothing.
pub trait BlockImage: Send + Sync {
    /// The image file.
    fn path(&self) -> &Path;
    /// Its format.
    fn format(&self) -> ImageFormat;
    /// Virtual disk size in bytes.
    fn capacity(&self) -> u64;
    /// Whether writes are refused (opened read-only).
    fn read_only(&self) -> bool;
    /// Fills `buf` from `offset` (through backing files; unallocated ranges read as zeroes).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes `buf` at `offset`.
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes every completed write durable (metadata written back, then fsync).
    fn flush(&self) -> io::Result<()>;
    /// Whether [`BlockImage::discard`] can free space (false: it fails with `Unsupported`).
    fn supports_discard(&self) -> bool;
    /// Makes `len` bytes at `offset` read as zeroes, without writing data where the format can
    /// (holes, qcow2 zero clusters).
    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Frees the range; it reads as zeroes afterwards. Needs `&mut` because imago may drop
    /// mappings that concurrent requests on the same image could still hold.
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()>;
    /// What the range starting at `offset` holds, and for how many bytes (at most `max_len`,
    /// at least 1 when `offset` is below the capacity).
    fn extent(&self, offset: u64, max_len: u64) -> io::Result<(Extent, u64)>;
    /// Changes the virtual size. Growing reads as zeroes; shrinking drops data beyond the new
    /// end (callers check first that none is there).
    fn resize(&mut self, new_capacity: u64) -> io::Result<()>;
    /// Grows the virtual size to `new_capacity` (not below the current one) with the new range
    /// allocated on the host now, reading as zeroes (`vol-resize --preallocate`). Formats or
    /// images that cannot fail with `Unsupported`, naming why.
    fn grow_allocated(&mut self, new_capacity: u64) -> io::Result<()> {
        let _ = new_capacity;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{} images cannot be grown with preallocation",
                self.format()
            ),
        ))
    }
}

/// Fails with `InvalidInput` unless `offset..offset + len` lies within `capacity`.
pub(crate) fn check_range(offset: u64, len: u64, capacity: u64) -> io::Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= capacity => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("request of {len} bytes at offset {offset} is beyond the disk size {capacity}"),
        )),
    }
}

/// Fails with `PermissionDenied` when `read_only`.
pub(crate) fn check_writable(read_only: bool) -> io::Result<()> {
    if read_only {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the image is open read-only",
        ))
    } else {
        Ok(())
    }
}

/// How to open an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// Refuse writes; take a shared lock.
    pub read_only: bool,
    /// How the top image's format is known.
    pub detect: Detect,
    /// Which backing files the chain may use.
    pub trust: BackingTrust,
}

impl OpenOptions {
    /// Writable, format from the name, no backing file trusted.
    pub fn writable() -> OpenOptions {
        OpenOptions {
            read_only: false,
            detect: Detect::ByName,
            trust: BackingTrust::none(),
        }
    }

    /// Read-only, format from the name, no backing file trusted.
    pub fn read_only() -> OpenOptions {
        OpenOptions {
            read_only: true,
            ..OpenOptions::writable()
        }
    }

    /// The same options with another format rule.
    pub fn detect(self, detect: Detect) -> OpenOptions {
        OpenOptions { detect, ..self }
    }

    /// The same options trusting `trust`'s backing files.
    pub fn trust(self, trust: BackingTrust) -> OpenOptions {
        OpenOptions { trust, ..self }
    }
}

/// Opens `path` for I/O: checks the whole backing chain (formats, trusted backing files,
/// unsupported features, missing files, loops), locks every file in it, then opens it.
pub fn open_image(path: &Path, options: &OpenOptions) -> Result<Box<dyn BlockImage>, ImageError> {
    let layers = chain(path, options.detect, &options.trust)?;
    let top = &layers[0];
    match top.format {
        ImageFormat::Raw => Ok(Box::new(super::raw::RawImage::open(
            path,
            options.read_only,
        )?)),
        ImageFormat::Qcow2 => Ok(Box::new(super::qcow2::Qcow2Image::open(
            &layers,
            options.read_only,
        )?)),
    }
}

/// The chain of `path`, top first (re-exported for callers that only inspect).
pub fn image_chain(
    path: &Path,
    detect: Detect,
    trust: &BackingTrust,
) -> Result<Vec<ImageInfo>, ImageError> {
    chain(path, detect, trust)
}

/// A held `flock` on one file (released on drop).
#[derive(Debug)]
pub struct ImageLock {
    _lock: Flock<File>,
}

impl ImageLock {
    /// Locks `path`, exclusive or shared, without waiting; a conflict is
    /// [`ImageError::InUse`].
    pub fn acquire(path: &Path, exclusive: bool) -> Result<ImageLock, ImageError> {
        let file = open_image_file(path, false)?;
        let arg = if exclusive {
            FlockArg::LockExclusiveNonblock
        } else {
            FlockArg::LockSharedNonblock
        };
        match Flock::lock(file, arg) {
            Ok(lock) => Ok(ImageLock { _lock: lock }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(ImageError::InUse {
                path: path.to_path_buf(),
            }),
            Err((_, errno)) => Err(ImageError::io(path, "lock", errno.into())),
        }
    }
}

/// Locks a chain: the top exclusive unless `read_only`, every backing file shared.
pub(crate) fn lock_chain(
    layers: &[ImageInfo],
    read_only: bool,
) -> Result<Vec<ImageLock>, ImageError> {
    layers
        .iter()
        .enumerate()
        .map(|(i, layer)| ImageLock::acquire(&layer.path, i == 0 && !read_only))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_past_the_end_are_invalid() {
        assert!(check_range(0, 512, 512).is_ok());
        assert!(check_range(1, 512, 512).is_err());
        assert!(check_range(u64::MAX, 2, 512).is_err());
    }

    #[test]
    fn a_second_writer_is_refused_while_readers_share() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.raw");
        std::fs::write(&path, [0u8; 512]).expect("write");
        let writer = ImageLock::acquire(&path, true).expect("first writer");
        let err = ImageLock::acquire(&path, true).expect_err("second writer");
        assert!(err.to_string().contains("in use"), "{err}");
        drop(writer);
        let _r1 = ImageLock::acquire(&path, false).expect("reader 1");
        let _r2 = ImageLock::acquire(&path, false).expect("reader 2");
        assert!(ImageLock::acquire(&path, true).is_err());
    }
}
