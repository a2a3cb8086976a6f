//! A VM's disks, from definition to engine: resolve each `[[disks]]` entry through the storage
//! layer (pool volume or path; format as recorded, never probed; backing chain checked and
//! followed only into pools or allowed paths), open it there (qcow2 through imago, raw through
//! plain files; `flock`ed while open) and hand the open image to the engine's virtio-blk as a
//! [`DiskBackend`].
//!
//! The images stay open for the whole life of vmd, across reboots, and close when vmd exits
//! (or, for a disk hot-removed with `detach_disk`, when the guest has ejected it).

use crate::config::{ImageFormat, Paths, VmConfig};
use crate::engine::{DiskBackend, DiskSpec};
use crate::storage::{BackingTrust, Detect, StorageError};
use crate::storage::{BlockImage, OpenOptions, StorageManager, open_image};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

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

/// One opened disk.
#[derive(Debug)]
pub struct OpenDisk {
    /// Guest device name (`vda`, ...), used to name the disk in stats.
    pub target: String,
    /// What the engine gets.
    pub spec: DiskSpec,
    /// The top image's format, as decided when it was opened.
    pub format: ImageFormat,
}

impl OpenDisk {
    /// Whether a crash while it is open can leave stale qcow2 refcounts (see
    /// [`super::open_images`]).
    pub fn writable_qcow2(&self) -> bool {
        !self.spec.read_only && self.format == ImageFormat::Qcow2
    }
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
            detect: Detect::Known(disk.format),
            trust: disk.trust.clone(),
        };
        let image = open_image(&disk.path, &options).map_err(|source| DiskError::Open {
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
                backend: Some(Arc::new(ImageDisk::new(image, disk.trust))),
            },
            format: disk.format,
        });
    }
    Ok(specs)
}

/// How to open a hot-added disk's image: its recorded format (`None` only from a client that
/// records none: then the name must say it) and the backing files its chain may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachImage {
    /// The format the client recorded.
    pub format: Option<ImageFormat>,
    /// Pool directories, plus the disk's allowed backing files.
    pub trust: BackingTrust,
    /// The disk's allowed backing files alone (a save records them to reopen the image).
    pub allow_backing: Vec<PathBuf>,
}

impl AttachImage {
    /// `format` with the pools' `trust` and the disk's `allow_backing` files.
    pub fn new(
        format: Option<ImageFormat>,
        trust: &BackingTrust,
        allow_backing: &[PathBuf],
    ) -> Self {
        AttachImage {
            format,
            trust: trust.clone().with_files(allow_backing.iter().cloned()),
            allow_backing: allow_backing.to_vec(),
        }
    }
}

/// Opens the image at `path` for a disk hot-added as `target` (`attach_disk`); the serial
/// defaults to `vmux-<target>` as for boot disks.
pub fn open_disk(
    path: &Path,
    target: &str,
    read_only: bool,
    serial: Option<String>,
    how: AttachImage,
) -> Result<OpenDisk, DiskError> {
    let options = OpenOptions {
        read_only,
        detect: how.format.map_or(Detect::ByName, Detect::Known),
        trust: how.trust.clone(),
    };
    let image = open_image(path, &options).map_err(|source| DiskError::Open {
        target: target.to_string(),
        path: path.display().to_string(),
        source,
    })?;
    let format = image.format();
    Ok(OpenDisk {
        target: target.to_string(),
        spec: DiskSpec {
            path: path.to_path_buf(),
            read_only,
            serial: serial.unwrap_or_else(|| format!("vmux-{target}")),
            backend: Some(Arc::new(ImageDisk::new(image, how.trust))),
        },
        format,
    })
}

/// Whether the image at `path` opens as qcow2 when its format is not recorded (a live
/// snapshot's new overlay, which [`ImageDisk::switch_image`] opens by its name): listed as
/// open before the switch.
pub fn is_qcow2(path: &Path) -> bool {
    ImageFormat::from_name(path) == Some(ImageFormat::Qcow2)
}

/// An open storage image seen as an engine disk. Reads and writes share the lock; `discard`
/// and a live snapshot's switch to a new overlay (the calls that need the image alone) take it
/// exclusively.
pub struct ImageDisk {
    /// `None` only inside [`ImageDisk::switch_image`], under the write lock.
    image: RwLock<Option<Box<dyn BlockImage>>>,
    /// What a switch may open: the trusted backing files and the images this disk had.
    known: Mutex<KnownImages>,
}

/// The backing files an [`ImageDisk`]'s chain may use, and the format of every image it has
/// had: a live snapshot's switch trusts the image it leaves (the new overlay's backing file),
/// and a switch back reopens that image in its own format, never a guessed one.
struct KnownImages {
    trust: BackingTrust,
    formats: Vec<(PathBuf, ImageFormat)>,
}

impl ImageDisk {
    /// Wraps an image opened with `trust`.
    pub fn new(image: Box<dyn BlockImage>, trust: BackingTrust) -> ImageDisk {
        let formats = vec![(image.path().to_path_buf(), image.format())];
        ImageDisk {
            image: RwLock::new(Some(image)),
            known: Mutex::new(KnownImages { trust, formats }),
        }
    }

    fn with<T>(&self, op: impl FnOnce(&dyn BlockImage) -> io::Result<T>) -> io::Result<T> {
        match self
            .image
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
        {
            Some(image) => op(image),
            None => Err(io::Error::other("the disk's image could not be reopened")),
        }
    }
}

impl DiskBackend for ImageDisk {
    fn capacity(&self) -> u64 {
        self.with(|i| Ok(i.capacity())).unwrap_or(0)
    }

    fn read_only(&self) -> bool {
        self.with(|i| Ok(i.read_only())).unwrap_or(true)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.with(|i| i.read_at(offset, buf))
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.with(|i| i.write_at(offset, buf))
    }

    fn flush(&self) -> io::Result<()> {
        self.with(|i| i.flush())
    }

    fn supports_discard(&self) -> bool {
        self.with(|i| Ok(i.supports_discard())).unwrap_or(false)
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        match self
            .image
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref_mut()
        {
            Some(image) => image.discard(offset, len),
            None => Err(io::Error::other("the disk's image could not be reopened")),
        }
    }

    fn supports_write_zeroes(&self) -> bool {
        true
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.with(|i| i.write_zeroes(offset, len))
    }

    /// Flushes and closes the current image (its `flock` must go before the new chain can lock
    /// it shared), opens `path` writable; if that fails the old image is opened again.
    fn switch_image(&self, path: &Path) -> io::Result<()> {
        let mut slot = self.image.write().unwrap_or_else(PoisonError::into_inner);
        let Some(current) = slot.take() else {
            return Err(io::Error::other("the disk's image could not be reopened"));
        };
        if let Err(e) = current.flush() {
            *slot = Some(current);
            return Err(e);
        }
        let old_path = current.path().to_path_buf();
        let old_format = current.format();
        drop(current);
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        // The new overlay's backing file is the image the disk had: trusted already.
        let new_trust = known.trust.clone().with_files([old_path.clone()]);
        // An image this disk had keeps its format; a new one is a vmux overlay, which its
        // name (`.qcow2`) and header must agree on.
        let detect = known
            .formats
            .iter()
            .find(|(p, _)| p == path)
            .map_or(Detect::ByName, |(_, format)| Detect::Known(*format));
        let options = OpenOptions::writable()
            .detect(detect)
            .trust(new_trust.clone());
        match open_image(path, &options) {
            Ok(image) => {
                known.formats.push((path.to_path_buf(), image.format()));
                known.trust = new_trust;
                *slot = Some(image);
                Ok(())
            }
            Err(e) => {
                let old = OpenOptions::writable()
                    .detect(Detect::Known(old_format))
                    .trust(known.trust.clone());
                *slot = open_image(&old_path, &old).ok();
                Err(io::Error::other(e.to_string()))
            }
        }
    }
}
