//! Storage: pools (directories of images), volumes (raw and qcow2 image files in them), VM disk
//! snapshots (qcow2 overlay chains), and the image layer under all of it.
//!
//! Layers, bottom up:
//! - [`image`]: [`BlockImage`], I/O on one opened image ([`raw`] via pread/pwrite, [`qcow2`] via
//!   imago), with `flock` so two writers never share a file. The engine's virtio-blk uses this.
//! - [`format`]: what a file is (format as recorded or named, checked against its content and
//!   never guessed from it; size; backing chain, followed only into pools or where the user
//!   allowed it), checked before anything opens it; [`nofollow`] opens image files without
//!   following symbolic links; [`create`], [`copy`] and [`staging`] make new images
//!   crash-safely (temporary file, sync, rename).
//! - [`records`]: each pool's volume records (`.vmux-volumes.toml`: the format of every volume
//!   vmux created or the user recorded).
//! - [`StorageManager`] ([`pool`], [`volume`], [`import`]): virsh-like pool and volume
//!   operations over the pool definitions in `config`, refusing to touch volumes that running
//!   VMs or other images depend on ([`usage`]); downloaded images brought into a pool, as
//!   copies or as read-only bases under qcow2 overlays ([`import`]).
//! - [`snapshot`]: external disk snapshots of stopped VMs, with metadata under
//!   `<config>/snapshots/<vm>/`.
//! - `qcow2_reftable`: the refcount-table check before imago may write to an image.
//! - [`qcow2_repair`]: the qcow2 refcount check and repair (`vol-check`, and after a vmd was
//!   killed).
//! - [`in_place`]: markers around writes into an existing qcow2 volume outside vmd, so the
//!   volume of a write cut short is repaired before it is used again.
//!
//! Long operations (full clone, convert, upload, download, wipe, preallocated growth, the merge
//! of a snapshot deletion) take a [`crate::progress::Progress`] handle from their caller, report
//! bytes done of bytes to do on it, and stop with [`ImageError::Cancelled`] when it is cancelled,
//! cleaning up as after a failure.
//!
//! Everything here is safe Rust; see docs/storage.md for the user-facing semantics.

pub mod copy;
pub mod create;
pub mod format;
pub mod grow;
pub mod image;
pub mod import;
pub mod in_place;
pub mod nofollow;
pub mod pool;
pub mod qcow2;
pub(crate) mod qcow2_header;
mod qcow2_reftable;
pub mod qcow2_repair;
pub mod raw;
pub mod records;
pub mod snapshot;
pub mod staging;
pub mod usage;
mod vol_check;
pub mod volume;

pub use format::{BackingTrust, Detect, ImageFormat, ImageInfo};
pub use image::{BlockImage, Extent, ImageError, OpenOptions, open_image};
pub use pool::{EntryKind, PoolInfo, PoolStatus, StorageManager};
pub use snapshot::{SnapshotInfo, SnapshotManager};
pub use volume::{VolumeInfo, VolumeSpec};

use crate::config::{ConfigError, DefinitionError};
use std::path::PathBuf;

/// Errors of pool, volume and snapshot operations. Messages name the pool, volume or file, the
/// problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An error raised on a remote host (its words and causes, as they read there).
    #[error(transparent)]
    Remote(Box<crate::remote::WireError>),
    /// The connection to a remote host failed or dropped.
    #[error(transparent)]
    Link(#[from] crate::remote::LinkError),
    /// Definition store problems (unknown pool or VM, I/O).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A definition file that cannot be used.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// Image-level problems (format, header, backing chain, locks, I/O).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The pool is defined but not started.
    #[error("storage pool '{0}' is not active; start it with `vmux pool-start {0}`")]
    PoolInactive(String),
    /// `pool-undefine` of an active pool.
    #[error("storage pool '{0}' is active; stop it first with `vmux pool-destroy {0}`")]
    PoolActive(String),
    /// The default pool is always there.
    #[error("the default pool cannot be undefined; vmux keeps it at {}", .0.display())]
    UndefineDefault(PathBuf),
    /// The pool's directory is missing.
    #[error(
        "the directory {} of storage pool '{pool}' does not exist; create it with `mkdir -p {}` (or define the pool with --build)",
        path.display(), path.display()
    )]
    PoolDirMissing {
        /// Pool name.
        pool: String,
        /// Its directory.
        path: PathBuf,
    },
    /// The pool's directory cannot be written.
    #[error(
        "the directory {} of storage pool '{pool}' is not a writable directory for this user; fix its owner or mode, or define the pool elsewhere",
        path.display()
    )]
    PoolDirNotWritable {
        /// Pool name.
        pool: String,
        /// Its directory.
        path: PathBuf,
    },
    /// Two pools on one directory would list the same volumes twice.
    #[error(
        "{} is already the directory of storage pool '{other}'; use that pool or another directory",
        path.display()
    )]
    PoolPathTaken {
        /// The directory.
        path: PathBuf,
        /// The pool that has it.
        other: String,
    },
    /// A directory operation for a pool failed.
    #[error("cannot {op} {}", path.display())]
    PoolIo {
        /// "create", "list", ...
        op: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// No such volume.
    #[error(
        "no volume '{volume}' in storage pool '{pool}'; `vmux vol-list {pool}` shows its volumes"
    )]
    UnknownVolume {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
    },
    /// The volume is a symbolic link (listed, never used).
    #[error(
        "'{volume}' in storage pool '{pool}' is a symbolic link{}, not a volume: vmux never follows links in pools (a link could point anywhere on the host); move the image itself into the pool{}",
        target.as_ref().map(|t| format!(" to {}", t.display())).unwrap_or_default(),
        target.as_ref().map(|t| format!(", or use it as a disk by path (--disk {})", t.display())).unwrap_or_default()
    )]
    SymlinkVolume {
        /// Pool name.
        pool: String,
        /// The link's name.
        volume: String,
        /// Where it points, when readable.
        target: Option<PathBuf>,
    },
    /// A VM definition and the pool record disagree about a disk's format.
    #[error(
        "disk {disk} is recorded as {defined} in the VM definition but as {pool} in its pool; vmux does not guess which is right: fix the disk's format with `vmux edit`, or the pool's record with `vmux vol-set-format`"
    )]
    FormatConflict {
        /// The disk (pool/volume or path).
        disk: String,
        /// The definition's format.
        defined: crate::config::ImageFormat,
        /// The pool's record.
        pool: crate::config::ImageFormat,
    },
    /// The volume name is taken.
    #[error(
        "volume '{volume}' already exists in storage pool '{pool}'; pick another name or delete it with `vmux vol-delete {pool} {volume}`"
    )]
    VolumeExists {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
    },
    /// Name, argument or option that makes no sense (the text says which and how to fix it).
    #[error("{0}")]
    Invalid(String),
    /// Shrinking would cut written data.
    #[error(
        "cannot shrink {volume} to {}: it holds data up to {}; shrink to at least that (after shrinking the guest's file system and partitions)",
        crate::config::format_size(*requested), crate::config::format_size(*data_end)
    )]
    ShrinkCutsData {
        /// Pool/volume.
        volume: String,
        /// Requested size in bytes.
        requested: u64,
        /// End of the last non-zero data in bytes.
        data_end: u64,
    },
    /// The volume belongs to VM definitions (delete refused).
    #[error(
        "volume {volume} is used by VM {}; remove the disk from {} or undefine {} first",
        vms.join(", "), if vms.len() == 1 { "its definition" } else { "their definitions" },
        if vms.len() == 1 { "it" } else { "them" }
    )]
    UsedByVm {
        /// Pool/volume.
        volume: String,
        /// The VMs.
        vms: Vec<String>,
    },
    /// A running VM has the volume open.
    #[error(
        "volume {volume} is in use by running VM '{vm}'; shut it down first with `vmux shutdown {vm}`"
    )]
    InUseByRunningVm {
        /// Pool/volume.
        volume: String,
        /// The VM.
        vm: String,
    },
    /// Other images read through this one.
    #[error(
        "volume {volume} is the backing file of {}; changing or deleting it would corrupt {}; work on the top image instead, or flatten {} with `vmux vol-convert` first",
        list_paths(overlays), if overlays.len() == 1 { "that image" } else { "those images" },
        if overlays.len() == 1 { "it" } else { "them" }
    )]
    BackingOf {
        /// Pool/volume.
        volume: String,
        /// The overlays.
        overlays: Vec<PathBuf>,
    },
    /// A download target exists.
    #[error("{} already exists; pass --force to replace it", .0.display())]
    DestinationExists(PathBuf),
    /// Snapshot problems.
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    /// Refcount check or repair problems.
    #[error(transparent)]
    Repair(#[from] qcow2_repair::RepairError),
}

impl From<crate::progress::Cancelled> for StorageError {
    fn from(cancelled: crate::progress::Cancelled) -> StorageError {
        StorageError::Image(ImageError::Cancelled(cancelled))
    }
}

impl StorageError {
    /// Whether the operation stopped because its progress handle was cancelled (it cleaned up
    /// as after a failure; front ends say what was left as it was instead of an error).
    pub fn is_cancelled(&self) -> bool {
        matches!(self, StorageError::Image(ImageError::Cancelled(_)))
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
