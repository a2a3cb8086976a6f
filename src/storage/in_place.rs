//! Writes into an existing qcow2 volume outside vmd (`vol-resize`, `vol-resize --preallocate`,
//! `vol-wipe`), made safe against a kill: imago points the L1 table (or the header) at newly
//! allocated metadata before that metadata's refcount leaves its cache, so a process killed
//! mid-write leaves a referenced cluster with refcount 0, which the next writer would hand out
//! a second time (see `qcow2_repair`).
//!
//! The writer puts a marker `.<volume>.vmux-writing.<pid>` beside the volume (synced) before
//! its first write, and removes it once the image is flushed ([`end`]), whether the write
//! succeeded, failed or was cancelled. A marker whose process is gone means that write was cut
//! short: [`settle`], run by every command that uses the pool (`StorageManager::active_dir`,
//! which a VM start also passes through), repairs the volume's refcounts before anything opens
//! it, then removes the marker. A marker of a live process is left alone (its write may still
//! be running).

use super::format::ImageFormat;
use super::image::{BlockImage, ImageError};
use super::qcow2_repair::{RepairError, repair_image};
use super::staging::sync_dir;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Marker inside marker file names.
const MARK: &str = ".vmux-writing.";

/// This process is writing into an existing qcow2 volume; see the module docs. Dropping it
/// without [`InPlaceWrite::finish`] (the flush failed) leaves the marker, so the volume is
/// checked once this process is gone.
#[derive(Debug)]
#[must_use = "end() removes the marker once the image is flushed"]
pub struct InPlaceWrite {
    marker: PathBuf,
}

impl InPlaceWrite {
    /// Marks `image` as being written by this process: creates and syncs its marker.
    pub fn begin(image: &Path) -> Result<InPlaceWrite, ImageError> {
        let marker = marker_of(image, std::process::id());
        File::create(&marker)
            .and_then(|file| file.sync_all())
            .map_err(|source| ImageError::io(&marker, "create", source))?;
        sync_dir(&marker)?;
        Ok(InPlaceWrite { marker })
    }

    /// [`InPlaceWrite::begin`] for a qcow2 image; `None` for a raw one (no metadata to go
    /// stale).
    pub fn begin_for(image: &Path, format: ImageFormat) -> Result<Option<Self>, ImageError> {
        match format {
            ImageFormat::Qcow2 => InPlaceWrite::begin(image).map(Some),
            ImageFormat::Raw => Ok(None),
        }
    }

    /// The image was flushed: removes the marker.
    pub fn finish(self) -> Result<(), ImageError> {
        match fs::remove_file(&self.marker) {
            Ok(()) => sync_dir(&self.marker),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ImageError::io(&self.marker, "remove", source)),
        }
    }
}

/// Ends a write into `image` (marked by [`InPlaceWrite::begin_for`], or not) however it went:
/// flushes the image, so every refcount imago still caches is on disk, and then removes the
/// marker. When the flush fails the marker stays, for the repair once this process is gone.
pub fn end(write: Option<InPlaceWrite>, image: &dyn BlockImage) -> Result<(), ImageError> {
    let Some(write) = write else {
        return Ok(());
    };
    image
        .flush()
        .map_err(|e| ImageError::transfer(image.path(), "flush", 0, e))?;
    write.finish()
}

/// `<dir>/.<name>.vmux-writing.<pid>` for image `<dir>/<name>`.
fn marker_of(image: &Path, pid: u32) -> PathBuf {
    let dir = image.parent().unwrap_or(Path::new("."));
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{name}{MARK}{pid}"))
}

/// Repairs the volumes in `dir` whose in-place write was cut short (their marker's process is
/// gone), then removes those markers. A volume another process has open, or one a read or
/// write failed on, keeps its marker for the next try; one the repair refuses (damage it cannot
/// fix, a structure it does not handle) is logged with what to do, and its marker removed.
/// Returns one sentence per volume repaired or not repairable.
pub fn settle(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((image, pid)) = name
            .strip_prefix('.')
            .and_then(|rest| rest.rsplit_once(MARK))
        else {
            continue;
        };
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if alive || image.is_empty() {
            continue;
        }
        let path = dir.join(image);
        let done = if !path.is_file() {
            true
        } else {
            match repair_image(&path) {
                Ok(report) => {
                    if report.repaired {
                        notes.push(format!(
                            "repaired the qcow2 refcounts of {} after an interrupted write ({})",
                            path.display(),
                            report.summary()
                        ));
                    }
                    true
                }
                Err(RepairError::Image(ImageError::InUse { .. })) | Err(RepairError::Io { .. }) => {
                    false
                }
                Err(e) => {
                    notes.push(format!(
                        "{} was being written when vmux stopped and cannot be repaired: {e}",
                        path.display()
                    ));
                    true
                }
            }
        };
        if done {
            let _ = fs::remove_file(entry.path());
            let _ = sync_dir(&entry.path());
        }
    }
    for note in &notes {
        log::warn!("{note}");
    }
    notes
}

/// Whether `image` has a marker of any process.
#[cfg(test)]
fn has_marker(image: &Path) -> bool {
    let dir = image.parent().unwrap_or(Path::new("."));
    let prefix = format!(
        ".{}{MARK}",
        image.file_name().unwrap_or_default().to_string_lossy()
    );
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::qcow2_repair::check_image;
    use crate::storage::qcow2_repair::fixtures::qcow2_with_lost_refcounts;

    /// A qcow2 image with data whose refcount block was dropped (every refcount lost).
    fn image_with_lost_refcounts(dir: &Path) -> PathBuf {
        let image = dir.join("disk.qcow2");
        qcow2_with_lost_refcounts(&image);
        image
    }

    #[test]
    fn a_finished_write_leaves_no_marker() {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = dir.path().join("disk.qcow2");
        fs::write(&image, b"x").expect("write");

        let write = InPlaceWrite::begin(&image).expect("begin");
        assert!(has_marker(&image));
        write.finish().expect("finish");

        assert!(!has_marker(&image));
    }

    #[test]
    fn a_write_cut_short_is_repaired_by_the_next_settle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = image_with_lost_refcounts(dir.path());
        assert!(check_image(&image).expect("check").errors > 0);
        // A pid that cannot run (above the kernel's pid limit).
        fs::write(marker_of(&image, i32::MAX as u32), b"").expect("marker");

        let notes = settle(dir.path());

        assert!(check_image(&image).expect("check").is_clean());
        assert!(!has_marker(&image));
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with("repaired the qcow2 refcounts of"),
            "{notes:?}"
        );
    }

    #[test]
    fn a_running_writer_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = image_with_lost_refcounts(dir.path());
        let write = InPlaceWrite::begin(&image).expect("begin");

        let notes = settle(dir.path());

        assert!(notes.is_empty());
        assert!(
            check_image(&image).expect("check").errors > 0,
            "not touched"
        );
        assert!(has_marker(&image));
        write.finish().expect("finish");
    }

    #[test]
    fn the_marker_of_a_deleted_volume_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = dir.path().join("gone.qcow2");
        fs::write(marker_of(&gone, i32::MAX as u32), b"").expect("marker");

        assert!(settle(dir.path()).is_empty());

        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0);
    }
}
