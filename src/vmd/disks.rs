//! A VM's disks, from definition to engine: resolve each `[[disks]]` entry through the storage
//! layer (pool volume or path; backing chain checked; format from the name), open it there
//! (qcow2 through imago, raw through plain files; `flock`ed while open) and hand the open image
//! to the engine's virtio-blk as a [`DiskBackend`].
//!
//! The images stay open for the whole life of vmd, across reboots, and close when vmd exits
//! (or, for a disk hot-removed with `detach_disk`, when the guest has ejected it).

use crate::config::{Paths, VmConfig};
use crate::engine::{DiskBackend, DiskSpec};
use crate::storage::StorageError;
use crate::storage::{BlockImage, OpenOptions, StorageManager, open_image};
use std::io;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

/// Errors opening a VM's disks.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// A disk does not resolve or its image chain is unusable.
    #[error(transparent)]
    Resolve(#[from] StorageError),
    /// An image could not be opened.
    #[error("cannot open disk {target} ({path})")]
    Open {
        /// Guest device name.
        target: String,
        /// The image.
        path: String,
        /// Cause.
        #[source]
        source: crate::storage::ImageError,
    },
}

/// One opened disk of the definition.
#[derive(Debug)]
pub struct OpenDisk {
    /// Guest device name (`vda`, ...), used to name the disk in stats.
    pub target: String,
    /// What the engine gets.
    pub spec: DiskSpec,
}

/// Resolves and opens every disk of `config`, in definition order.
pub fn open_disks(paths: &Paths, config: &VmConfig) -> Result<Vec<OpenDisk>, DiskError> {
    if config.disks.is_empty() {
        return Ok(Vec::new());
    }
    let storage = StorageManager::new(paths.clone());
    let mut specs = Vec::new();
    for disk in storage.resolve_vm_disks(config)? {
        let options = OpenOptions {
            read_only: disk.readonly,
            ..OpenOptions::writable()
        };
        let image = open_image(&disk.path, options).map_err(|source| DiskError::Open {
            target: disk.target.clone(),
            path: disk.path.display().to_string(),
            source,
        })?;
        let serial = disk
            .serial
            .clone()
            .unwrap_or_else(|| format!("vmux-{}", disk.target));
        specs.push(OpenDisk {
            target: disk.target,
            spec: DiskSpec {
                path: disk.path,
                read_only: disk.readonly,
                serial,
                backend: Some(Arc::new(ImageDisk::new(image))),
            },
        });
    }
    Ok(specs)
}

/// Opens the image at `path` for a disk hot-added as `target` (`attach_disk`); the serial
/// defaults to `vmux-<target>` as for boot disks.
pub fn open_disk(
    path: &Path,
    target: &str,
    read_only: bool,
    serial: Option<String>,
) -> Result<DiskSpec, DiskError> {
    let options = OpenOptions {
        read_only,
        ..OpenOptions::writable()
    };
    let image = open_image(path, options).map_err(|source| DiskError::Open {
        target: target.to_string(),
        path: path.display().to_string(),
        source,
    })?;
    Ok(DiskSpec {
        path: path.to_path_buf(),
        read_only,
        serial: serial.unwrap_or_else(|| format!("vmux-{target}")),
        backend: Some(Arc::new(ImageDisk::new(image))),
    })
}

/// An open storage image seen as an engine disk. Reads and writes share the lock; `discard`
/// (the one call that needs the image exclusively) takes it alone.
pub struct ImageDisk {
    image: RwLock<Box<dyn BlockImage>>,
}

impl ImageDisk {
    /// Wraps an opened image.
    pub fn new(image: Box<dyn BlockImage>) -> ImageDisk {
        ImageDisk {
            image: RwLock::new(image),
        }
    }

    fn shared(&self) -> std::sync::RwLockReadGuard<'_, Box<dyn BlockImage>> {
        self.image.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DiskBackend for ImageDisk {
    fn capacity(&self) -> u64 {
        self.shared().capacity()
    }

    fn read_only(&self) -> bool {
        self.shared().read_only()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.shared().read_at(offset, buf)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.shared().write_at(offset, buf)
    }

    fn flush(&self) -> io::Result<()> {
        self.shared().flush()
    }

    fn supports_discard(&self) -> bool {
        self.shared().supports_discard()
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.image
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .discard(offset, len)
    }

    fn supports_write_zeroes(&self) -> bool {
        true
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.shared().write_zeroes(offset, len)
    }
}
