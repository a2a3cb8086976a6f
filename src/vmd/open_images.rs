//! `open-images.json`: the writable qcow2 images a vmd holds open, so that whoever finds the
//! vmd dead can repair them.
//!
//! imago writes a new L2 table and the L1 entry naming it at once but the refcount of that
//! cluster only at the next flush, so a vmd killed in between leaves an image whose refcounts
//! are stale (see `storage::qcow2_repair`). vmd therefore keeps this list (in its state
//! directory, written atomically) of every writable qcow2 image it has open: the definition's
//! disks before the first boot, a hot-added disk before the guest sees it, a live snapshot's
//! overlays before the switch; an image leaves the list once vmd has flushed and closed it.
//! When the VM ends vmd writes back and closes every disk and, if all were written back,
//! removes the file.
//!
//! A list left behind means its vmd died with those images possibly stale. The next client
//! that finds the vmd dead (`LocalHost`, under the pid-file probe's lock) and vmd's own start
//! repair each listed image that nobody else has open, with [`repair_leftover`], and drop
//! the list.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use super::supervisor::Supervisor;
use crate::config::{Paths, write_atomic};
use crate::storage::qcow2_repair::{RepairError, repair_image};
use crate::storage::{ImageError, StorageManager};

/// The file's name in the VM's state directory.
pub const OPEN_IMAGES_FILE: &str = crate::config::VmdFiles::OPEN_IMAGES;

/// The contents of `open-images.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenImagesFile {
    /// The vmd that wrote it.
    pub pid: u32,
    /// Absolute paths of the writable qcow2 images it has open.
    pub images: Vec<PathBuf>,
}

impl OpenImagesFile {
    /// Writes `path` atomically.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let mut text = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        text.push(b'\n');
        write_atomic(path, &text)
    }

    /// Reads `path`; `None` when there is no file.
    pub fn read(path: &Path) -> io::Result<Option<OpenImagesFile>> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// vmd's copy of the list, written through to the file on every change. Owned by the
/// supervisor (behind its mutex).
#[derive(Debug)]
pub struct OpenImages {
    /// `None`: kept in memory only (tests, `vmux run`).
    file: Option<PathBuf>,
    pid: u32,
    images: BTreeSet<PathBuf>,
}

impl OpenImages {
    /// A list that is never written.
    pub fn in_memory() -> OpenImages {
        OpenImages {
            file: None,
            pid: std::process::id(),
            images: BTreeSet::new(),
        }
    }

    /// A list kept in `file` for vmd `pid`.
    pub fn at(file: PathBuf, pid: u32) -> OpenImages {
        OpenImages {
            file: Some(file),
            pid,
            images: BTreeSet::new(),
        }
    }

    /// The images listed now.
    pub fn images(&self) -> Vec<PathBuf> {
        self.images.iter().cloned().collect()
    }

    /// Adds `images` and writes the file (even when nothing changed: the first call creates
    /// it). Call before anything can write them.
    pub fn add(&mut self, images: impl IntoIterator<Item = PathBuf>) -> io::Result<()> {
        self.images.extend(images);
        self.save()
    }

    /// Keeps only the listed images in `open` (those vmd still has open); writes the file when
    /// that removed any. Call after the others were flushed and closed.
    pub fn retain(&mut self, open: &[PathBuf]) -> io::Result<()> {
        let before = self.images.len();
        self.images.retain(|image| open.contains(image));
        if self.images.len() == before {
            return Ok(());
        }
        self.save()
    }

    /// Removes the file: every image was flushed and closed.
    pub fn remove(&mut self) {
        self.images.clear();
        if let Some(file) = &self.file
            && let Err(e) = std::fs::remove_file(file)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("cannot remove {}: {e}", file.display());
        }
    }

    fn save(&self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        OpenImagesFile {
            pid: self.pid,
            images: self.images(),
        }
        .write(file)
    }
}

/// What [`repair_leftover`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftoverRepair {
    /// The vmd that left the list.
    pub pid: u32,
    /// One sentence per image that was repaired or could not be ("repaired the qcow2
    /// refcounts of default/disk.qcow2 (1 refcount error)").
    pub notes: Vec<String>,
}

/// Repairs the images of a list left in `dir` by a vmd that died, and removes the list (or
/// keeps the images that could not be checked now, e.g. because another process has one open).
/// `None` when there is no list. The caller holds the VM's pid file (lock or probe), so no
/// vmd of this VM writes the list meanwhile.
pub fn repair_leftover(paths: &Paths, dir: &Path) -> Option<LeftoverRepair> {
    let file = dir.join(OPEN_IMAGES_FILE);
    let list = match OpenImagesFile::read(&file) {
        Ok(list) => list?,
        Err(e) => {
            log::warn!("ignoring unreadable {}: {e}", file.display());
            let _ = std::fs::remove_file(&file);
            return None;
        }
    };
    let mut notes = Vec::new();
    let mut retry = Vec::new();
    for image in &list.images {
        match repair_image(image) {
            Ok(report) if report.repaired => notes.push(format!(
                "repaired the qcow2 refcounts of {} ({})",
                image_label(paths, image),
                report.summary()
            )),
            Ok(_) => {}
            Err(RepairError::Image(ImageError::InUse { .. })) => {
                log::warn!(
                    "{} is in use by another process; its refcounts are checked when it is free",
                    image.display()
                );
                retry.push(image.clone());
            }
            Err(RepairError::Image(ImageError::Open { source, .. }))
                if source.kind() == io::ErrorKind::NotFound => {}
            Err(e @ RepairError::Io { .. }) => {
                log::warn!("{}", crate::vmd::error_chain(&e));
                retry.push(image.clone());
            }
            Err(e) => notes.push(format!(
                "could not repair {}: {}",
                image_label(paths, image),
                crate::vmd::error_chain(&e)
            )),
        }
    }
    let kept = if retry.is_empty() {
        std::fs::remove_file(&file).or_else(|e| match e.kind() {
            io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        })
    } else {
        OpenImagesFile {
            pid: list.pid,
            images: retry,
        }
        .write(&file)
    };
    if let Err(e) = kept {
        log::warn!("cannot update {}: {e}", file.display());
    }
    Some(LeftoverRepair {
        pid: list.pid,
        notes,
    })
}

/// `pool/volume` for an image in a pool's directory, else the path.
pub fn image_label(paths: &Paths, image: &Path) -> String {
    let (Some(dir), Some(name)) = (image.parent(), image.file_name()) else {
        return image.display().to_string();
    };
    StorageManager::new(paths.clone())
        .pool_of_dir(dir)
        .map_or_else(
            || image.display().to_string(),
            |pool| format!("{}/{}", pool.name, name.to_string_lossy()),
        )
}

impl Supervisor {
    fn lock_open_images(&self) -> MutexGuard<'_, OpenImages> {
        self.open_images
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists `images` (writable qcow2 images about to be written) before anything writes them.
    pub(super) fn list_open_images(&self, images: impl IntoIterator<Item = PathBuf>) {
        if let Err(e) = self.lock_open_images().add(images) {
            log::warn!("cannot record the VM's open images in {OPEN_IMAGES_FILE}: {e}");
        }
    }

    /// Drops from the list the images vmd no longer has open (each flushed and closed).
    pub(super) fn sync_open_images(&self) {
        let open: Vec<PathBuf> = self
            .disk_infos()
            .into_iter()
            .filter(|d| !d.read_only)
            .map(|d| d.path)
            .collect();
        if let Err(e) = self.lock_open_images().retain(&open) {
            log::warn!("cannot update {OPEN_IMAGES_FILE}: {e}");
        }
    }

    /// The VM is over and every image was written back and closed
    /// ([`Supervisor::close_disks`]): the list goes.
    pub fn forget_open_images(&self) {
        self.lock_open_images().remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_round_trips_and_goes_on_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(OPEN_IMAGES_FILE);
        let mut list = OpenImages::at(file.clone(), 42);
        list.add([PathBuf::from("/p/a.qcow2"), PathBuf::from("/p/b.qcow2")])
            .expect("add");
        list.retain(&[PathBuf::from("/p/b.qcow2")]).expect("retain");
        assert_eq!(
            OpenImagesFile::read(&file).expect("read"),
            Some(OpenImagesFile {
                pid: 42,
                images: vec![PathBuf::from("/p/b.qcow2")],
            })
        );
        list.remove();
        assert!(!file.exists());
    }

    #[test]
    fn no_list_means_nothing_to_repair() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths::under(dir.path());
        assert_eq!(repair_leftover(&paths, dir.path()), None);
    }

    #[test]
    fn a_listed_image_that_is_gone_is_dropped_with_the_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths::under(dir.path());
        let file = dir.path().join(OPEN_IMAGES_FILE);
        OpenImagesFile {
            pid: 7,
            images: vec![dir.path().join("gone.qcow2")],
        }
        .write(&file)
        .expect("write");
        let done = repair_leftover(&paths, dir.path()).expect("a list");
        assert_eq!((done.pid, done.notes.len()), (7, 0));
        assert!(!file.exists());
    }
}
