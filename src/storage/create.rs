//! Creating image files: raw (sparse, or fully allocated with `fallocate`) and qcow2 (imago's
//! creator: v3, 64 KiB clusters, 16-bit refcounts, optionally over a backing file). Callers
//! create at a [`super::staging::StagedFile`] path and commit it, so a new image appears whole
//! or not at all.

use super::format::ImageFormat;
use super::image::ImageError;
use imago::file::File as ImagoFile;
use imago::format::PreallocateMode;
use imago::qcow2::Qcow2;
use imago::{FormatCreateBuilder, StorageOpenOptions};
use nix::errno::Errno;
use nix::fcntl::{FallocateFlags, fallocate};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Cluster size of qcow2 images vmux creates (QEMU's default).
pub const DEFAULT_CLUSTER_SIZE: u64 = 64 << 10;

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImage {
    /// Raw or qcow2.
    pub format: ImageFormat,
    /// Virtual size in bytes (a multiple of 512).
    pub capacity: u64,
    /// Allocate all space now (`fallocate`) instead of on first write.
    pub preallocate: bool,
    /// qcow2 only: backing file name as it is to be written in the header (relative to the new
    /// image's directory, or absolute) and its format.
    pub backing: Option<(String, ImageFormat)>,
    /// qcow2 only: cluster size in bytes (power of two, 512..=2 MiB).
    pub cluster_size: u64,
}

impl NewImage {
    /// A sparse image without backing file.
    pub fn new(format: ImageFormat, capacity: u64) -> NewImage {
        NewImage {
            format,
            capacity,
            preallocate: false,
            backing: None,
            cluster_size: DEFAULT_CLUSTER_SIZE,
        }
    }

    /// Bytes the new file needs on disk at most (data plus qcow2 metadata, generously).
    pub fn space_needed(&self) -> u64 {
        if !self.preallocate {
            return 0;
        }
        match self.format {
            ImageFormat::Raw => self.capacity,
            // One 8-byte L2 entry and a 2-byte refcount per cluster, plus the fixed clusters.
            ImageFormat::Qcow2 => {
                let clusters = self.capacity.div_ceil(self.cluster_size);
                self.capacity + clusters * 10 + 8 * self.cluster_size
            }
        }
    }
}

/// Bytes available to this user in the file system holding `dir`.
pub fn available_space(dir: &Path) -> Result<u64, ImageError> {
    let stat = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| ImageError::io(dir, "query free space of", e.into()))?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

/// Creates `path` (which must not exist) as described by `spec`. Checks free space first
/// when preallocating. On failure the partial file is removed.
pub fn create_image(path: &Path, spec: &NewImage) -> Result<(), ImageError> {
    let needed = spec.space_needed();
    if needed > 0 {
        let dir = path.parent().unwrap_or(Path::new("."));
        let available = available_space(dir)?;
        if available < needed {
            return Err(ImageError::NoSpace {
                dir: dir.to_path_buf(),
                needed,
                available,
            });
        }
    }
    let file = super::nofollow::create_new_file(path)
        .map_err(|source| ImageError::io(path, "create", source))?;
    let result = match spec.format {
        ImageFormat::Raw => create_raw(&file, spec),
        ImageFormat::Qcow2 => create_qcow2(path, file, spec),
    };
    result.map_err(|source| {
        let _ = std::fs::remove_file(path);
        ImageError::io(path, "create", source)
    })
}

fn create_raw(file: &File, spec: &NewImage) -> io::Result<()> {
    file.set_len(spec.capacity)?;
    if spec.preallocate && spec.capacity > 0 {
        allocate(file, 0, spec.capacity)?;
    }
    file.sync_all()
}

/// Allocates blocks for `offset..offset + len` (reads stay zero), writing zeroes where the file
/// system cannot allocate without writing.
pub(crate) fn allocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let off = i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let n = i64::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    match fallocate(file, FallocateFlags::empty(), off, n) {
        Ok(()) => Ok(()),
        Err(Errno::EOPNOTSUPP) => {
            let zeroes = vec![0u8; 1 << 20];
            let mut at = offset;
            while at < offset + len {
                let chunk = (offset + len - at).min(zeroes.len() as u64) as usize;
                file.write_all_at(&zeroes[..chunk], at)?;
                at += chunk as u64;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn create_qcow2(path: &Path, file: File, spec: &NewImage) -> io::Result<()> {
    let storage =
        ImagoFile::from_open_file(file, StorageOpenOptions::new().filename(path).write(true))?;
    let mut builder = Qcow2::<ImagoFile>::create_builder(storage)
        .size(spec.capacity)
        .cluster_size(spec.cluster_size as usize)
        .preallocate(if spec.preallocate {
            PreallocateMode::FullAllocate
        } else {
            PreallocateMode::None
        });
    if let Some((name, format)) = &spec.backing {
        builder = builder.backing(name.clone(), format.as_str().to_string());
    }
    builder.create()?;
    File::open(path)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::format::{Detect, inspect};

    #[test]
    fn a_sparse_raw_image_takes_no_space() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.raw");
        create_image(&path, &NewImage::new(ImageFormat::Raw, 1 << 30)).expect("create");
        let info = inspect(&path, Detect::ByName).expect("inspect");
        assert_eq!(info.capacity, 1 << 30);
        assert!(info.allocation < 1 << 20, "{}", info.allocation);
    }

    #[test]
    fn a_preallocated_raw_image_is_allocated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.raw");
        let spec = NewImage {
            preallocate: true,
            ..NewImage::new(ImageFormat::Raw, 8 << 20)
        };
        create_image(&path, &spec).expect("create");
        let info = inspect(&path, Detect::ByName).expect("inspect");
        assert!(info.allocation >= 8 << 20, "{}", info.allocation);
    }

    #[test]
    fn a_qcow2_image_has_the_asked_size_and_clusters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.qcow2");
        create_image(&path, &NewImage::new(ImageFormat::Qcow2, 20 << 30)).expect("create");
        let info = inspect(&path, Detect::ByName).expect("inspect");
        assert_eq!(info.format, ImageFormat::Qcow2);
        assert_eq!(info.capacity, 20 << 30);
        assert_eq!(info.cluster_size, Some(DEFAULT_CLUSTER_SIZE));
        assert!(info.file_size < 1 << 20, "{}", info.file_size);
    }

    #[test]
    fn preallocating_more_than_the_disk_holds_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("huge.raw");
        let spec = NewImage {
            preallocate: true,
            ..NewImage::new(ImageFormat::Raw, 1 << 60)
        };
        let err = create_image(&path, &spec).expect_err("must fail");
        assert!(err.to_string().contains("not enough free space"), "{err}");
        assert!(!path.exists());
    }
}
