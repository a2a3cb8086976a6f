//! The storage half of the host API: pools, volumes and disk snapshots ([`StorageHost`]). The
//! CLI and the TUI reach storage only through this trait; [`super::LocalStorage`] is the real
//! one, [`super::FakeStorage`] the in-memory one, and a remote host implements it over its
//! connection, so every argument and result is plain data (`super::storage_views`). Paths
//! name files on the host that runs the operation.
//!
//! Every method blocks (file system, image headers, copies): call them on worker threads in
//! the TUI, never from `update` or `draw`. The long operations report on `progress` and stop
//! when it is cancelled, as after a failure (`StorageError::is_cancelled`).

use super::storage_views::{ImageSource, ImportedVolume, PoolList, StorageSnapshot, VolumeView};
use crate::bootimg::BootPlan;
use crate::config::DiskConfig;
use crate::progress::Progress;
use crate::storage::qcow2_repair::CheckReport;
use crate::storage::snapshot::RevertReport;
use crate::storage::{
    ImageFormat, PoolInfo, PoolStatus, SnapshotInfo, StorageError, VolumeInfo, VolumeSpec,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Pools, volumes and disk snapshots of one host. Blocking; see the module docs.
pub trait StorageHost: Send + Sync {
    /// Every pool with its figures and volumes.
    fn snapshot(&self) -> Result<StorageSnapshot, StorageError>;
    /// The same storage, also following the backing files `files` (absolute paths outside
    /// the pools that the user allowed, `--allow-backing`) in every image chain it opens.
    fn allowing_backing(&self, files: &[PathBuf]) -> Arc<dyn StorageHost>;

    /// The pools (the `default` pool is defined on first use), and the unusable definitions.
    fn list_pools(&self) -> Result<PoolList, StorageError>;
    /// Defines a directory pool at `target` (inactive); `build` creates the directory.
    fn define_pool(
        &self,
        pool: &str,
        target: &Path,
        build: bool,
    ) -> Result<PoolStatus, StorageError>;
    /// A pool's state and space.
    fn pool_info(&self, pool: &str) -> Result<PoolInfo, StorageError>;
    /// Starts (activates) a pool.
    fn start_pool(&self, pool: &str) -> Result<(), StorageError>;
    /// Stops (deactivates) a pool; nothing is deleted.
    fn stop_pool(&self, pool: &str) -> Result<(), StorageError>;
    /// Sets or clears a pool's autostart flag.
    fn set_pool_autostart(&self, pool: &str, enabled: bool) -> Result<(), StorageError>;
    /// Removes an inactive pool's definition (its directory stays).
    fn undefine_pool(&self, pool: &str) -> Result<(), StorageError>;

    /// The files of an active pool, sorted by name, each a volume or why it is none.
    fn list_volumes(&self, pool: &str) -> Result<Vec<VolumeView>, StorageError>;
    /// One volume: format, sizes, backing file, users.
    fn volume_info(&self, pool: &str, volume: &str) -> Result<VolumeInfo, StorageError>;
    /// Creates a volume (`vol-create-as`).
    fn create_volume(
        &self,
        pool: &str,
        volume: &str,
        spec: VolumeSpec,
    ) -> Result<VolumeInfo, StorageError>;
    /// Changes a volume's size; shrinking needs `allow_shrink` and never cuts data.
    fn resize_volume(
        &self,
        pool: &str,
        volume: &str,
        capacity: u64,
        allow_shrink: bool,
    ) -> Result<VolumeInfo, StorageError>;
    /// Grows a volume to `capacity`, allocating the new space now; a cancel keeps the old
    /// size.
    fn grow_volume_allocated(
        &self,
        pool: &str,
        volume: &str,
        capacity: u64,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError>;
    /// Copies a volume within its pool: a full copy, or a linked qcow2 overlay.
    fn clone_volume(
        &self,
        pool: &str,
        source: &str,
        clone: &str,
        linked: bool,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError>;
    /// Writes a volume into a new volume of another format.
    fn convert_volume(
        &self,
        pool: &str,
        source: &str,
        dest: &str,
        format: Option<ImageFormat>,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError>;
    /// Replaces a volume's content with image file `source`'s (its format `format`, else
    /// what its name says).
    fn upload_volume(
        &self,
        pool: &str,
        volume: &str,
        source: &Path,
        format: Option<ImageFormat>,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError>;
    /// Writes a volume's content to file `dest` (in `format`, else what its name says, else
    /// the volume's); `force` replaces an existing file. Returns the format written.
    fn download_volume(
        &self,
        pool: &str,
        volume: &str,
        dest: &Path,
        format: Option<ImageFormat>,
        force: bool,
        progress: &Progress,
    ) -> Result<ImageFormat, StorageError>;
    /// Overwrites a volume's data with zeroes.
    fn wipe_volume(
        &self,
        pool: &str,
        volume: &str,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError>;
    /// Records a volume's format (for files vmux did not create).
    fn set_volume_format(
        &self,
        pool: &str,
        volume: &str,
        format: ImageFormat,
    ) -> Result<VolumeInfo, StorageError>;
    /// Checks a qcow2 volume's refcounts; `repair` rebuilds them when anything is wrong.
    fn check_volume(
        &self,
        pool: &str,
        volume: &str,
        repair: bool,
    ) -> Result<CheckReport, StorageError>;
    /// Deletes a volume (refused while VMs or other images use it).
    fn delete_volume(&self, pool: &str, volume: &str) -> Result<(), StorageError>;
    /// The running VMs that hold volume `pool/volume` open now (a disk attached live is in no
    /// definition), each with the disk's guest name: what a refusal for a volume in use names.
    fn volume_holders(&self, pool: &str, volume: &str) -> Vec<(String, String)>;
    /// Brings disk image `source` into `pool` as the new volume `volume`: a qcow2 overlay on
    /// it (`linked`; `source` stays unchanged and is shared; a file is first imported once as
    /// a read-only base volume) or a copy (files only). `format` is the file's format when its
    /// name does not say it. A cancel leaves no volume.
    fn import_image(
        &self,
        pool: &str,
        volume: &str,
        source: &ImageSource,
        format: Option<ImageFormat>,
        linked: bool,
        progress: &Progress,
    ) -> Result<ImportedVolume, StorageError>;
    /// What disk `disk`'s own /boot boots (read with its recorded format, following only the
    /// pools' and its own allowed backing files). An image that cannot be booted is
    /// `StorageError::Invalid`, naming the image and why.
    fn boot_plan(&self, disk: &DiskConfig) -> Result<BootPlan, StorageError>;
    /// The image file disk `disk` names on this host.
    fn disk_path(&self, disk: &DiskConfig) -> Result<PathBuf, StorageError>;
    /// The format of image file `file` on this host, to use it in place as a writable disk:
    /// what its name says, checked against its content (never guessed from content alone).
    fn image_file_format(&self, file: &Path) -> Result<ImageFormat, StorageError>;
    /// VM `vm`'s cloud-init seed image and the instance-id it was built with (none before
    /// the VM's first start).
    fn cloud_init_seed(&self, vm: &str) -> (PathBuf, Option<String>);
    /// What volume `pool/volume`'s own /boot boots
    /// (`/boot/vmlinuz-6.1.0-28-amd64 (grub entry 'Debian GNU/Linux')`), or why it cannot.
    fn boot_entry(&self, pool: &str, volume: &str) -> Result<String, String>;

    /// Takes an external disk snapshot of VM `vm`, running or not (a running VM's vCPUs pause
    /// while its disks switch to the new overlays).
    fn create_snapshot(&self, vm: &str, name: &str) -> Result<SnapshotInfo, StorageError>;
    /// VM `vm`'s snapshots, oldest first.
    fn list_snapshots(&self, vm: &str) -> Result<Vec<SnapshotInfo>, StorageError>;
    /// Reverts a stopped VM's disks to snapshot `name` (later changes and snapshots are
    /// discarded).
    fn revert_snapshot(&self, vm: &str, name: &str) -> Result<RevertReport, StorageError>;
    /// Deletes snapshot `name`, merging its overlay down; a cancel during the merge leaves it
    /// marked `deleting`, the disks reading as before.
    fn delete_snapshot(
        &self,
        vm: &str,
        name: &str,
        progress: &Progress,
    ) -> Result<(), StorageError>;
}
