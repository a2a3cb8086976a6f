//! qcow2 images through imago (synchronous build). The backing chain is checked and opened
//! here layer by layer, bottom first, each backing layer read-only and passed to the layer above
//! explicitly, so imago never follows a file name on its own (no implicit opens: the chain
//! vmux checked is the chain imago reads).
//!
//! Shrinking does not use imago's `resize_shrink`, which discards the cut range cluster by
//! cluster and allocates an L2 table for every L1 slot it passes, even empty ones (a 1 TiB image
//! cut to 2 GiB grew from 196 KiB to 128 MiB): [`Qcow2Image::shrink`] discards only what the cut
//! range maps, then writes the new size into the header itself.
//!
//! Metadata cache: imago 0.2.6 keeps 128 L2 tables per image (not configurable). One L2 table
//! maps `cluster_size / 8` clusters, so the cache covers `128 * cluster_size² / 8` bytes of disk:
//! 64 GiB with the default 64 KiB clusters that vmux creates, which keeps random I/O on disks up
//! to that size free of L2 reloads (QEMU's `qcow2-cache.txt` sizing rule). Images with smaller
//! clusters are covered less ([`l2_cache_coverage`]); vmux reads them correctly, just slower.

use super::format::{ImageFormat, ImageInfo};
use super::image::{
    BlockImage, Extent, ImageError, ImageLock, check_range, check_writable, lock_chain,
};
use super::qcow2_header::SIZE_OFFSET;
use imago::file::File;
use imago::format::PreallocateMode;
use imago::qcow2::Qcow2;
use imago::raw::Raw;
use imago::{
    DenyImplicitOpenGate, FormatAccess, FormatDriverBuilder, ShallowMapping, StorageOpenOptions,
};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// L2 tables imago caches per image (`MetadataCaches::new(.., 128, ..)` in imago 0.2.6).
pub const L2_CACHE_TABLES: u64 = 128;

/// Bytes of virtual disk whose mappings fit in imago's L2 cache at `cluster_size`.
pub fn l2_cache_coverage(cluster_size: u64) -> u64 {
    L2_CACHE_TABLES * (cluster_size / 8) * cluster_size
}

/// An opened qcow2 image (with its backing chain).
pub struct Qcow2Image {
    path: PathBuf,
    access: FormatAccess<File>,
    read_only: bool,
    has_backing: bool,
    /// Opened without its backing file: unallocated ranges are [`Extent::Backing`].
    shallow: bool,
    /// The checked chain, top first, to open the image again after a shrink.
    layers: Vec<ImageInfo>,
    _locks: Vec<ImageLock>,
}

impl std::fmt::Debug for Qcow2Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qcow2Image")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl Qcow2Image {
    /// Opens a checked chain (`layers[0]` is this image, qcow2) and locks every file in it.
    pub fn open(layers: &[ImageInfo], read_only: bool) -> Result<Qcow2Image, ImageError> {
        let locks = lock_chain(layers, read_only)?;
        let access = open_chain(layers, read_only)?;
        Ok(Qcow2Image {
            path: layers[0].path.clone(),
            access,
            read_only,
            has_backing: layers.len() > 1,
            shallow: false,
            layers: layers.to_vec(),
            _locks: locks,
        })
    }

    /// Opens `path` read-only *without* its backing file, to see what this layer alone holds:
    /// unallocated ranges show as [`Extent::Backing`] and read as zeroes. Only this file is
    /// locked (shared), so the image below can be opened for writing at the same time (commit).
    pub fn open_shallow(path: &Path) -> Result<Qcow2Image, ImageError> {
        let layer = super::format::inspect(path, super::format::Detect::Known(ImageFormat::Qcow2))?;
        let lock = ImageLock::acquire(path, false)?;
        let access = open_layer(&layer, None, false)?;
        Ok(Qcow2Image {
            path: path.to_path_buf(),
            access,
            read_only: true,
            has_backing: false,
            shallow: true,
            layers: vec![layer],
            _locks: vec![lock],
        })
    }

    /// Cuts the virtual disk to `new_capacity` (below the current size; the caller checked that
    /// nothing but zeroes lies beyond it): discards the clusters the cut range maps, flushes,
    /// writes the new size into the header, and opens the image again so imago sees it. Nothing
    /// is allocated: empty stretches of the cut range are skipped, not discarded cluster by
    /// cluster (see the module docs).
    fn shrink(&mut self, new_capacity: u64) -> io::Result<()> {
        let capacity = self.capacity();
        let mut offset = new_capacity;
        while offset < capacity {
            let (mapping, len) = self.access.get_shallow_mapping(offset, capacity - offset)?;
            let len = len.clamp(1, capacity - offset);
            let stored = matches!(
                mapping,
                ShallowMapping::Raw { .. }
                    | ShallowMapping::Special { .. }
                    | ShallowMapping::Zero { explicit: true, .. }
            );
            if stored {
                // imago discards whole clusters only; a partial first cluster keeps its (zero)
                // bytes past the new end, which stay zero if the disk grows again.
                self.access.discard_to_backing(offset, len)?;
            }
            offset += len;
        }
        self.access.flush()?;
        self.access.sync()?;
        let file = super::nofollow::open_image_file(&self.path, true)
            .map_err(|e| io::Error::other(e.to_string()))?;
        file.write_all_at(&new_capacity.to_be_bytes(), SIZE_OFFSET)?;
        file.sync_all()?;
        let reopened = open_chain(&self.layers, self.read_only)
            .map_err(|e| io::Error::other(e.to_string()))?;
        // The old instance has nothing left to flush; dropping it writes nothing.
        self.access = reopened;
        Ok(())
    }
}

/// Opens a checked chain with imago, bottom first, every layer but a writable top read-only.
fn open_chain(layers: &[ImageInfo], read_only: bool) -> Result<FormatAccess<File>, ImageError> {
    let mut backing: Option<FormatAccess<File>> = None;
    for (i, layer) in layers.iter().enumerate().rev() {
        let writable = i == 0 && !read_only;
        backing = Some(open_layer(layer, backing.take(), writable)?);
    }
    Ok(backing.expect("a chain has at least one layer"))
}

/// Opens one layer with imago, on top of an already opened `backing`.
fn open_layer(
    layer: &ImageInfo,
    backing: Option<FormatAccess<File>>,
    writable: bool,
) -> Result<FormatAccess<File>, ImageError> {
    let path = &layer.path;
    let opened = super::nofollow::open_image_file(path, writable)?;
    if writable && layer.format == ImageFormat::Qcow2 {
        super::qcow2_reftable::check(&opened, path)?;
    }
    let file = File::from_open_file(
        opened,
        StorageOpenOptions::new().filename(path).write(writable),
    )
    .map_err(|source| ImageError::open(path, source))?;
    match layer.format {
        ImageFormat::Raw => {
            let raw = Raw::builder(file)
                .write(writable)
                .open(DenyImplicitOpenGate::default())
                .map_err(|source| ImageError::open(path, source))?;
            Ok(FormatAccess::new(raw))
        }
        ImageFormat::Qcow2 => {
            let qcow2 = Qcow2::<File>::builder(file)
                .backing(backing)
                .write(writable)
                .open(DenyImplicitOpenGate::default())
                .map_err(|source| ImageError::Qcow2 {
                    path: path.clone(),
                    source,
                })?;
            Ok(FormatAccess::new(qcow2))
        }
    }
}

impl BlockImage for Qcow2Image {
    fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self) -> ImageFormat {
        ImageFormat::Qcow2
    }

    fn capacity(&self) -> u64 {
        self.access.size()
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(offset, buf.len() as u64, self.capacity())?;
        self.access.read(buf, offset)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        check_writable(self.read_only)?;
        check_range(offset, buf.len() as u64, self.capacity())?;
        self.access.write(buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.access.flush()?;
        self.access.sync()
    }

    fn supports_discard(&self) -> bool {
        !self.read_only
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        check_writable(self.read_only)?;
        check_range(offset, len, self.capacity())?;
        self.access.write_zeroes(offset, len)
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        check_writable(self.read_only)?;
        check_range(offset, len, self.capacity())?;
        self.access.discard_to_zero(offset, len)
    }

    fn extent(&self, offset: u64, max_len: u64) -> io::Result<(Extent, u64)> {
        let capacity = self.capacity();
        check_range(offset, 0, capacity)?;
        let max_len = max_len.min(capacity - offset);
        if max_len == 0 {
            return Ok((Extent::Zero, 0));
        }
        let (mapping, len) = self.access.get_shallow_mapping(offset, max_len)?;
        let kind = match mapping {
            ShallowMapping::Raw { .. } | ShallowMapping::Special { .. } => Extent::Data,
            ShallowMapping::Indirect { .. } => Extent::Backing,
            ShallowMapping::Zero {
                explicit: false, ..
            } if self.shallow => Extent::Backing,
            ShallowMapping::Zero { .. } => Extent::Zero,
            ShallowMapping::Eof { .. } => return Ok((Extent::Zero, max_len)),
            // A mapping kind newer than this code: reading through imago is always right.
            _ => Extent::Data,
        };
        Ok((kind, len.clamp(1, max_len)))
    }

    fn resize(&mut self, new_capacity: u64) -> io::Result<()> {
        check_writable(self.read_only)?;
        if new_capacity < self.capacity() {
            return self.shrink(new_capacity);
        }
        // Without a backing file unallocated clusters already read as zeroes; with one, the
        // grown range must be zeroed explicitly so the backing file's tail does not show.
        let mode = if self.has_backing {
            PreallocateMode::Zero
        } else {
            PreallocateMode::None
        };
        self.access.resize_grow(new_capacity, mode)
    }

    fn grow_allocated(&mut self, new_capacity: u64) -> io::Result<()> {
        check_writable(self.read_only)?;
        if self.has_backing {
            // imago allocates only images that read nothing from below.
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a qcow2 image with a backing file cannot be grown with preallocation (its unallocated clusters read from the backing file); grow it without --preallocate",
            ));
        }
        if new_capacity <= self.capacity() {
            return Ok(());
        }
        self.access
            .resize_grow(new_capacity, PreallocateMode::FullAllocate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::storage::create::{NewImage, create_image};
    use crate::storage::format::{BackingTrust, Detect, chain, inspect};

    #[test]
    fn default_clusters_cover_64_gib() {
        assert_eq!(l2_cache_coverage(65536), 64 << 30);
    }

    fn open_rw(path: &Path) -> Qcow2Image {
        let layers = chain(path, Detect::ByName, &BackingTrust::none()).expect("chain");
        Qcow2Image::open(&layers, false).expect("open")
    }

    #[test]
    fn shrinking_an_empty_terabyte_image_allocates_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.qcow2");
        create_image(&path, &NewImage::new(ImageFormat::Qcow2, 1 << 40)).expect("create");
        let before = std::fs::metadata(&path).expect("stat").len();

        let mut image = open_rw(&path);
        image.resize(2 << 30).expect("shrink");
        drop(image);

        let info = inspect(&path, Detect::ByName).expect("inspect");
        assert_eq!(info.capacity, 2 << 30);
        assert!(info.file_size <= before, "{} > {before}", info.file_size);
    }

    #[test]
    fn a_shrunk_image_keeps_its_data_and_reads_zeroes_when_grown_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.qcow2");
        create_image(&path, &NewImage::new(ImageFormat::Qcow2, 64 << 20)).expect("create");
        let mut image = open_rw(&path);
        image.write_at(4096, b"kept").expect("write head");
        image
            .write_at(48 << 20, &[0u8; 65536])
            .expect("write zero data in the tail");
        image.resize(16 << 20).expect("shrink");
        image
            .write_at(8192, b"after")
            .expect("write after the shrink");
        image.resize(64 << 20).expect("grow");
        image.flush().expect("flush");

        let mut buf = [0u8; 4];
        image.read_at(4096, &mut buf).expect("read");
        assert_eq!(&buf, b"kept");
        let mut tail = vec![1u8; 65536];
        image.read_at(48 << 20, &mut tail).expect("read tail");
        assert!(tail.iter().all(|b| *b == 0));
        drop(image);
        assert_eq!(
            inspect(&path, Detect::ByName).expect("inspect").capacity,
            64 << 20
        );
    }
}
