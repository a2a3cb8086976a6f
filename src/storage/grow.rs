//! Growing a volume with its new space allocated now (`vol-resize --preallocate`, virsh's
//! `vol-resize --allocate`): the grown range is allocated on the host (`fallocate` for raw,
//! allocated data clusters for qcow2), so the guest cannot run out of host space there later.
//!
//! Allocating many GiB can take minutes where the file system has to write zeroes, so the growth
//! happens in steps of [`GROW_STEP`], each reported on the caller's [`Progress`] handle. A cancel
//! or a failure between steps shrinks the volume back to its old size (nothing but the new,
//! empty range is cut), so the volume ends as it was.

use super::StorageError;
use super::format::{ImageFormat, inspect};
use super::image::{BlockImage, ImageError, open_image};
use super::in_place::{self, InPlaceWrite};
use super::pool::StorageManager;
use super::volume::{VolumeInfo, sectors};
use crate::config::format_size;
use crate::progress::Progress;

/// Bytes of virtual disk allocated per step (one progress update and cancel check each).
pub const GROW_STEP: u64 = 64 << 20;

impl StorageManager {
    /// Grows volume `volume` of `pool` to `capacity` bytes (rounded up to whole sectors) with
    /// the new range allocated, reporting the bytes allocated of the bytes to allocate on
    /// `progress`. Refused for a smaller size (preallocation only applies to growth) and for a
    /// qcow2 volume with a backing file. On a cancel or failure the volume keeps its old size.
    pub fn vol_grow_allocated(
        &self,
        pool: &str,
        volume: &str,
        capacity: u64,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        let (path, detect) = self.volume_image(pool, volume)?;
        let label = format!("{pool}/{volume}");
        self.guard_write(&label, &path)?;
        let capacity = sectors(capacity)?;
        let info = inspect(&path, detect)?;
        if info.format == ImageFormat::Qcow2 && info.backing.is_some() {
            return Err(StorageError::Invalid(format!(
                "{label} is a qcow2 overlay on a backing file, which cannot be preallocated (its unallocated clusters read from the backing file); grow it without --preallocate"
            )));
        }
        let mut image = open_image(&path, &self.volume_options(detect, false))?;
        let old = image.capacity();
        if capacity < old {
            return Err(StorageError::Invalid(format!(
                "--preallocate allocates the space a volume grows by, and {} is smaller than {label} ({}); to shrink, leave out --preallocate and pass --shrink",
                format_size(capacity),
                format_size(old)
            )));
        }
        progress.begin(capacity - old)?;
        let marker = InPlaceWrite::begin_for(&path, info.format)?;
        let grown = grow_or_restore(image.as_mut(), capacity, progress);
        let ended = in_place::end(marker, image.as_ref());
        grown.and(ended)?;
        progress.finish();
        drop(image);
        self.vol_info(pool, volume)
    }
}

/// Grows `image` to `capacity` with [`grow_in_steps`]; on a cancel (also one right after the
/// last step) or a failure, shrinks it back to its old size (only the new, empty range is cut)
/// and returns the error.
fn grow_or_restore(
    image: &mut dyn BlockImage,
    capacity: u64,
    progress: &Progress,
) -> Result<(), ImageError> {
    let old = image.capacity();
    let grown = grow_in_steps(image, capacity, progress)
        .and_then(|()| progress.check().map_err(ImageError::from));
    if let Err(error) = grown {
        image
            .resize(old)
            .and_then(|()| image.flush())
            .map_err(|e| ImageError::transfer(image.path(), "shrink back", old, e))?;
        return Err(error);
    }
    Ok(())
}

/// Grows `image` to `capacity` in steps of [`GROW_STEP`], advancing `progress` per step, then
/// flushes it.
fn grow_in_steps(
    image: &mut dyn BlockImage,
    capacity: u64,
    progress: &Progress,
) -> Result<(), ImageError> {
    while image.capacity() < capacity {
        let from = image.capacity();
        let to = capacity.min(from.saturating_add(GROW_STEP));
        image
            .grow_allocated(to)
            .map_err(|e| ImageError::transfer(image.path(), "allocate", from, e))?;
        progress.advance(to - from)?;
    }
    image
        .flush()
        .map_err(|e| ImageError::transfer(image.path(), "flush", 0, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Paths;
    use crate::storage::VolumeSpec;

    fn manager() -> (tempfile::TempDir, StorageManager) {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = StorageManager::new(Paths::under(dir.path()));
        storage.ensure_default().expect("default pool");
        (dir, storage)
    }

    fn volume(storage: &StorageManager, name: &str) -> VolumeInfo {
        storage
            .vol_create(
                "default",
                name,
                VolumeSpec {
                    capacity: 8 << 20,
                    format: None,
                    preallocate: false,
                },
            )
            .expect("create")
    }

    #[test]
    fn a_raw_volume_grows_with_its_new_range_allocated() {
        let (_dir, storage) = manager();
        volume(&storage, "a.raw");
        let progress = Progress::new();

        let info = storage
            .vol_grow_allocated("default", "a.raw", 200 << 20, &progress)
            .expect("grow");

        assert_eq!(info.capacity, 200 << 20);
        assert!(info.allocation >= 192 << 20, "{}", info.allocation);
        let end = progress.snapshot();
        assert!(end.finished && end.done == 192 << 20, "{end:?}");
    }

    #[test]
    fn a_qcow2_volume_grows_with_its_new_range_allocated() {
        let (_dir, storage) = manager();
        volume(&storage, "a.qcow2");

        let info = storage
            .vol_grow_allocated("default", "a.qcow2", 72 << 20, &Progress::new())
            .expect("grow");

        assert_eq!(info.capacity, 72 << 20);
        assert!(info.allocation >= 64 << 20, "{}", info.allocation);
    }

    fn cancelled_growth_keeps_the_old_size(name: &str) {
        let (_dir, storage) = manager();
        let before = volume(&storage, name);
        let mut image =
            open_image(&before.path, &crate::storage::OpenOptions::writable()).expect("open");
        let progress = Progress::new();
        progress.begin(192 << 20).expect("begin");
        progress.cancel();

        let err = grow_or_restore(image.as_mut(), 200 << 20, &progress).expect_err("cancel");

        assert!(matches!(err, ImageError::Cancelled(_)), "{err}");
        assert_eq!(image.capacity(), before.capacity);
        drop(image);
        let after = storage.vol_info("default", name).expect("info");
        assert_eq!(after.capacity, before.capacity);
    }

    #[test]
    fn a_cancelled_raw_growth_keeps_the_old_size() {
        cancelled_growth_keeps_the_old_size("a.raw");
    }

    #[test]
    fn a_cancelled_qcow2_growth_keeps_the_old_size() {
        cancelled_growth_keeps_the_old_size("a.qcow2");
    }

    #[test]
    fn a_growth_cancelled_before_it_began_changes_nothing() {
        let (_dir, storage) = manager();
        let before = volume(&storage, "a.raw");
        let progress = Progress::new();
        progress.cancel();

        let err = storage
            .vol_grow_allocated("default", "a.raw", 200 << 20, &progress)
            .expect_err("cancelled");

        assert!(err.is_cancelled(), "{err}");
        let after = storage.vol_info("default", "a.raw").expect("info");
        assert_eq!(after.capacity, before.capacity);
    }

    #[test]
    fn preallocating_a_smaller_size_is_refused_with_the_way_to_shrink() {
        let (_dir, storage) = manager();
        volume(&storage, "a.raw");
        let err = storage
            .vol_grow_allocated("default", "a.raw", 1 << 20, &Progress::new())
            .expect_err("smaller");
        assert!(err.to_string().contains("--shrink"), "{err}");
    }
}
