//! [`StorageDisk`]: a vmux storage image (raw or qcow2, backing chain included) as a
//! [`ReadAt`], opened read-only through the storage layer's [`open_image`], so the boot
//! files are read exactly as the guest will see its disk, with a shared lock that lets a
//! running VM keep using the image only if it too opened it read-only.

use super::source::ReadAt;
use crate::storage::format::{BackingTrust, Detect};
use crate::storage::image::{BlockImage, ImageError, OpenOptions, open_image};
use std::io;
use std::path::Path;

/// A storage image opened read-only for boot-file extraction.
pub struct StorageDisk {
    image: Box<dyn BlockImage>,
}

impl std::fmt::Debug for StorageDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageDisk")
            .field("path", &self.image.path())
            .finish_non_exhaustive()
    }
}

impl StorageDisk {
    /// Opens `path` read-only. `detect` is how its format is decided: a VM disk's recorded
    /// format is [`Detect::Known`] (`StorageManager::disk_detect` gives it), an unrecorded file
    /// [`Detect::ByName`]; never probed from content, since the guest can write it. `trust`
    /// says which backing files the chain may use (`StorageManager::trust`: the pools, plus a
    /// disk's `allow_backing`).
    pub fn open(
        path: &Path,
        detect: Detect,
        trust: &BackingTrust,
    ) -> Result<StorageDisk, ImageError> {
        let options = OpenOptions::read_only().detect(detect).trust(trust.clone());
        let image = open_image(path, &options)?;
        Ok(StorageDisk { image })
    }

    /// Wraps an image the caller already opened.
    pub fn from_image(image: Box<dyn BlockImage>) -> StorageDisk {
        StorageDisk { image }
    }
}

impl ReadAt for StorageDisk {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.image.read_at(offset, buf)
    }

    fn size(&self) -> u64 {
        self.image.capacity()
    }
}
