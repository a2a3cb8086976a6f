//! [`StorageDisk`]: a vmux storage image (raw or qcow2, backing chain included) as a
//! [`ReadAt`], opened read-only through the storage layer's [`open_image`], so the boot
//! files are read exactly as the guest will see its disk, with a shared lock that lets a
//! running VM keep using the image only if it too opened it read-only.

use super::source::ReadAt;
use crate::storage::format::Detect;
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
    /// Opens `path` read-only. `detect` is how its format is decided: VM disks and pool
    /// volumes use [`Detect::ByName`] (never probed from content: the guest can write it);
    /// the definition's recorded format is [`Detect::Known`].
    pub fn open(path: &Path, detect: Detect) -> Result<StorageDisk, ImageError> {
        let image = open_image(path, OpenOptions::read_only().detect(detect))?;
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
