//! Volume operations (the `vol-*` verbs) on [`StorageManager`]: list, info, create, resize,
//! clone (full or linked), upload, download, convert, wipe, delete; and resolving VM disks to
//! image files for vmd.
//!
//! Every new image is built under a temporary name and renamed into place
//! ([`super::staging`]); every operation that writes or deletes an existing volume first checks
//! who uses it ([`super::usage`]) and takes its lock, so a running VM's disk or a backing file
//! other images read through is refused with their names.
//!
//! Every volume operation stays inside its pool: a volume name is one path component, a
//! symbolic link in the pool is refused naming where it points ([`StorageError::SymlinkVolume`]),
//! and the files are opened with `O_NOFOLLOW` ([`super::nofollow`]), so a link swapped in
//! between the check and the open fails too. Formats come from the pool's volume records
//! ([`super::records`]), written whenever vmux creates a volume, else from the name; image
//! chains follow backing files only in pool directories or where the user allowed them
//! ([`StorageManager::allowing_backing`]).
//!
//! The long operations (full clone, convert, upload, download, wipe) report through the
//! [`Progress`] handle their caller passes in: they begin it with the bytes of virtual disk to
//! walk, advance it per chunk, and finish it once the result has its name. A cancel stops them
//! at the next chunk and they unwind as on a failure: the staged file goes, the source and any
//! existing volume stay as they were (a wipe, which overwrites in place, stays partly done).

use super::StorageError;
use super::copy::copy_image;
use super::create::{DEFAULT_CLUSTER_SIZE, NewImage, create_image};
use super::format::{BackingInfo, BackingTrust, Detect, ImageFormat, ImageInfo, chain, inspect};
use super::image::{BlockImage, Extent, ImageError, ImageLock, OpenOptions, open_image};
use super::in_place::{self, InPlaceWrite};
use super::nofollow::is_symlink;
use super::pool::{EntryKind, StorageManager};
use super::records::VolumeRecords;
use super::staging::{StagedFile, sync_dir};
use super::usage::Usage;
use crate::config::{DiskConfig, DiskSource, VmConfig, assign_targets, validate_volume_name};
use crate::progress::Progress;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Disk sizes are whole 512-byte sectors (virtio-blk's unit); sizes are rounded up to this.
pub const SECTOR: u64 = 512;

/// What `vol-create-as` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// Virtual size in bytes (rounded up to whole sectors).
    pub capacity: u64,
    /// Format; `None` takes it from the name (`.qcow2`, `.raw`), qcow2 when the name says
    /// nothing.
    pub format: Option<ImageFormat>,
    /// Allocate all space now (after checking there is enough).
    pub preallocate: bool,
}

/// What `vol-info` and `vol-list` show about a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// Pool name.
    pub pool: String,
    /// Volume (file) name.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// raw or qcow2.
    pub format: ImageFormat,
    /// Virtual size in bytes.
    pub capacity: u64,
    /// Bytes used on the host file system.
    pub allocation: u64,
    /// The backing file, for qcow2 overlays (linked clones, snapshot overlays).
    pub backing: Option<BackingInfo>,
    /// Why vmux would not follow that backing file (its format is not recorded, or it lies
    /// outside every pool and is not allowed); `None` when it would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_refused: Option<String>,
    /// qcow2 cluster size in bytes.
    pub cluster_size: Option<u64>,
    /// Internal qcow2 snapshots (made by QEMU; kept, not managed).
    pub internal_snapshots: u32,
    /// VMs whose disks reach this volume (directly or as a backing file), sorted.
    pub used_by: Vec<String>,
    /// Running VMs among them.
    pub running: Vec<String>,
    /// Images whose backing file this volume is.
    pub backing_of: Vec<PathBuf>,
}

/// One file of a pool as `vol-list` sees it: its name, and what it is or why it cannot be read.
pub type VolumeEntry = (String, Result<VolumeInfo, StorageError>);

/// One VM disk resolved to its image, as vmd opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDisk {
    /// Guest device name (`vda`, ...).
    pub target: String,
    /// The top image file.
    pub path: PathBuf,
    /// Its format.
    pub format: ImageFormat,
    /// Open read-only and tell the guest so.
    pub readonly: bool,
    /// Serial number for the guest.
    pub serial: Option<String>,
    /// The backing files its chain may use (pools, and the disk's `allow_backing`).
    pub trust: BackingTrust,
}

impl StorageManager {
    /// Where volume `volume` of pool `pool` is (whether or not it exists); the pool must be
    /// defined but need not be active.
    pub fn volume_location(&self, pool: &str, volume: &str) -> Result<PathBuf, StorageError> {
        validate_volume_name(volume).map_err(StorageError::Invalid)?;
        Ok(self.pool(pool)?.path.join(volume))
    }

    /// The file of an existing volume in an active pool; a symbolic link is refused.
    pub fn volume_path(&self, pool: &str, volume: &str) -> Result<PathBuf, StorageError> {
        validate_volume_name(volume).map_err(StorageError::Invalid)?;
        let path = self.active_dir(pool)?.join(volume);
        if is_symlink(&path) {
            return Err(StorageError::SymlinkVolume {
                pool: pool.to_string(),
                volume: volume.to_string(),
                target: std::fs::read_link(&path).ok(),
            });
        }
        if !path.is_file() {
            return Err(StorageError::UnknownVolume {
                pool: pool.to_string(),
                volume: volume.to_string(),
            });
        }
        Ok(path)
    }

    /// A volume's file and how its format is known.
    pub(super) fn volume_image(
        &self,
        pool: &str,
        volume: &str,
    ) -> Result<(PathBuf, Detect), StorageError> {
        let path = self.volume_path(pool, volume)?;
        let detect = self.volume_detect(self.pool(pool)?.path.as_path(), volume)?;
        Ok((path, detect))
    }

    /// Open options for a volume: its format rule and the trusted backing files.
    pub(super) fn volume_options(&self, detect: Detect, read_only: bool) -> OpenOptions {
        let base = if read_only {
            OpenOptions::read_only()
        } else {
            OpenOptions::writable()
        };
        base.detect(detect).trust(self.trust(&[]))
    }

    /// The image file of a VM disk (pool volume or absolute path); it must exist and not be a
    /// symbolic link.
    pub fn resolve_disk(&self, disk: &DiskConfig) -> Result<PathBuf, StorageError> {
        match &disk.source {
            DiskSource::Volume { pool, volume } => self.volume_path(pool, volume),
            DiskSource::Path(path) => {
                if is_symlink(path) {
                    return Err(ImageError::Symlink {
                        path: path.clone(),
                        target: std::fs::read_link(path).ok(),
                    }
                    .into());
                }
                if !path.is_file() {
                    return Err(ImageError::open(
                        path,
                        std::io::Error::from(std::io::ErrorKind::NotFound),
                    )
                    .into());
                }
                Ok(path.clone())
            }
        }
    }

    /// How the format of `disk`'s image is known: the definition's `format`, the record of the
    /// pool the image lives in, else its name. A definition and a pool record that disagree are
    /// refused, naming both.
    pub fn disk_detect(&self, disk: &DiskConfig) -> Result<Detect, StorageError> {
        let recorded = match &disk.source {
            DiskSource::Volume { pool, volume } => {
                VolumeRecords::load(&self.pool(pool)?.path)?.format(volume)
            }
            DiskSource::Path(path) => {
                let pool = path.parent().and_then(|dir| self.pool_of_dir(dir));
                match (pool, path.file_name().and_then(|n| n.to_str())) {
                    (Some(pool), Some(name)) => VolumeRecords::load(&pool.path)?.format(name),
                    _ => None,
                }
            }
        };
        match (disk.format, recorded) {
            (Some(defined), Some(pool)) if defined != pool => Err(StorageError::FormatConflict {
                disk: disk.source.to_string(),
                defined,
                pool,
            }),
            (Some(format), _) | (None, Some(format)) => Ok(Detect::Known(format)),
            (None, None) => Ok(Detect::ByName),
        }
    }

    /// The checked image chain of `disk`, top first.
    pub fn disk_chain(&self, disk: &DiskConfig) -> Result<Vec<ImageInfo>, StorageError> {
        let path = self.resolve_disk(disk)?;
        let detect = self.disk_detect(disk)?;
        Ok(chain(&path, detect, &self.trust(&disk.allow_backing))?)
    }

    /// Fills in the `format` of every disk of `vm` that has none and whose image exists (from
    /// the pool's record, else the file name, checked against the content); returns whether
    /// anything changed. An image whose format cannot be decided fails with the way to record
    /// it. This is how definitions written before vmux recorded formats are migrated.
    pub fn record_disk_formats(&self, vm: &mut VmConfig) -> Result<bool, StorageError> {
        self.record_disk_formats_of(&mut vm.disks)
    }

    /// [`StorageManager::record_disk_formats`] for a list of disks. Every disk whose image
    /// exists is looked at (so a symbolic link is refused here, when the disk is defined); a
    /// disk whose pool is unknown, inactive or read-only, or whose image does not exist yet, is
    /// left for the start to judge.
    pub fn record_disk_formats_of(&self, disks: &mut [DiskConfig]) -> Result<bool, StorageError> {
        let mut changed = false;
        for disk in disks.iter_mut() {
            let path = match &disk.source {
                DiskSource::Volume { pool, volume } => match self.volume_location(pool, volume) {
                    Ok(path) => path,
                    Err(_) => continue,
                },
                DiskSource::Path(path) => path.clone(),
            };
            if is_symlink(&path) {
                let target = std::fs::read_link(&path).ok();
                return Err(match &disk.source {
                    DiskSource::Volume { pool, volume } => StorageError::SymlinkVolume {
                        pool: pool.clone(),
                        volume: volume.clone(),
                        target,
                    },
                    DiskSource::Path(_) => ImageError::Symlink { path, target }.into(),
                });
            }
            if disk.format.is_some() || !path.is_file() {
                continue;
            }
            let detect = self.disk_detect(disk)?;
            disk.format = Some(inspect(&path, detect)?.format);
            changed = true;
        }
        Ok(changed)
    }

    /// Every disk of `vm` resolved and checked for a start: the images exist in active pools,
    /// their formats are recorded or named and agree with their content, their backing chains
    /// are whole, supported and trusted, and no writable disk is the backing file of another
    /// image (writing it would corrupt that image).
    pub fn resolve_vm_disks(&self, vm: &VmConfig) -> Result<Vec<ResolvedDisk>, StorageError> {
        let targets = assign_targets(&vm.disks).map_err(StorageError::Invalid)?;
        let usage = self.usage();
        let mut resolved = Vec::new();
        for (disk, target) in vm.disks.iter().zip(targets) {
            let path = self.resolve_disk(disk)?;
            let layers = self.disk_chain(disk)?;
            if !disk.readonly {
                let overlays = usage.overlays_of(&path);
                if !overlays.is_empty() {
                    return Err(StorageError::BackingOf {
                        volume: disk.source.to_string(),
                        overlays,
                    });
                }
            }
            resolved.push(ResolvedDisk {
                target,
                path,
                format: layers[0].format,
                readonly: disk.readonly,
                serial: disk.serial.clone(),
                trust: self.trust(&disk.allow_backing),
            });
        }
        Ok(resolved)
    }

    /// Who uses which image right now: every VM definition's disk chains (as far as they
    /// can be followed), and the backing references of every pool volume and chain layer
    /// (their recorded formats only: a raw disk's content is never read as a header).
    pub fn usage(&self) -> Usage {
        let paths = self.paths();
        let mut vm_images = Vec::new();
        let mut candidates: Vec<(PathBuf, Detect)> = self.all_volumes();
        for vm in crate::config::Store::new(paths.clone())
            .list()
            .into_iter()
            .flatten()
        {
            let running = super::usage::vm_is_running(paths, &vm.name);
            for disk in &vm.disks {
                let location = match &disk.source {
                    DiskSource::Volume { pool, volume } => self.volume_location(pool, volume).ok(),
                    DiskSource::Path(path) => Some(path.clone()),
                };
                let Some(path) = location else { continue };
                match self.disk_chain(disk) {
                    Ok(layers) => {
                        for layer in layers {
                            candidates.push((layer.path.clone(), Detect::Known(layer.format)));
                            vm_images.push((layer.path, vm.name.clone(), running));
                        }
                    }
                    // A broken chain still uses its top image.
                    Err(_) => vm_images.push((path, vm.name.clone(), running)),
                }
            }
        }
        let mut backing_edges = Vec::new();
        for (image, detect) in candidates {
            if let Ok(ImageInfo {
                backing: Some(backing),
                ..
            }) = inspect(&image, detect)
            {
                backing_edges.push((backing.path, image));
            }
        }
        Usage::new(vm_images, backing_edges)
    }

    /// Every entry of active pool `pool`, sorted by name: each volume with what it is, or why
    /// vmux cannot read it (symbolic links are listed this way, never used).
    pub fn vol_list(&self, pool: &str) -> Result<Vec<VolumeEntry>, StorageError> {
        let entries = self.pool_entries(pool)?;
        let usage = self.usage();
        let dir = self.active_dir(pool)?;
        let records = VolumeRecords::load(&dir)?;
        let trust = self.trust(&[]);
        Ok(entries
            .into_iter()
            .map(|(name, kind)| {
                let path = dir.join(&name);
                let info = match kind {
                    EntryKind::Symlink => Err(StorageError::SymlinkVolume {
                        pool: pool.to_string(),
                        volume: name.clone(),
                        target: std::fs::read_link(&path).ok(),
                    }),
                    EntryKind::File => {
                        let detect = records.format(&name).map_or(Detect::ByName, Detect::Known);
                        inspect(&path, detect)
                            .map(|image| volume_info(pool, &name, image, &usage, &trust))
                            .map_err(StorageError::from)
                    }
                };
                (name, info)
            })
            .collect())
    }

    /// One volume: format, sizes, backing file, users.
    pub fn vol_info(&self, pool: &str, volume: &str) -> Result<VolumeInfo, StorageError> {
        let (path, detect) = self.volume_image(pool, volume)?;
        let image = inspect(&path, detect)?;
        Ok(volume_info(
            pool,
            volume,
            image,
            &self.usage(),
            &self.trust(&[]),
        ))
    }

    /// Records the format of an existing volume (`vol-set-format`): how a volume vmux did not
    /// create (copied into the pool by hand, or made before vmux recorded formats) gets one. A
    /// qcow2 record needs a usable qcow2 header; a raw record accepts any content. Refused
    /// while a running VM uses the volume.
    pub fn vol_set_format(
        &self,
        pool: &str,
        volume: &str,
        format: ImageFormat,
    ) -> Result<VolumeInfo, StorageError> {
        let path = self.volume_path(pool, volume)?;
        let usage = self.usage();
        if let Some(user) = usage.vms_using(&path).into_iter().find(|u| u.running) {
            return Err(StorageError::InUseByRunningVm {
                volume: format!("{pool}/{volume}"),
                vm: user.vm,
            });
        }
        inspect(&path, Detect::Known(format))?;
        VolumeRecords::record(&self.pool(pool)?.path, volume, format)?;
        self.vol_info(pool, volume)
    }

    /// Creates a new volume (`vol-create-as`): sparse unless `spec.preallocate`, in which case
    /// free space is checked first.
    pub fn vol_create(
        &self,
        pool: &str,
        volume: &str,
        spec: VolumeSpec,
    ) -> Result<VolumeInfo, StorageError> {
        let target = self.new_volume_path(pool, volume)?;
        let format = format_for(volume, spec.format, ImageFormat::Qcow2)?;
        let capacity = sectors(spec.capacity)?;
        let staged = StagedFile::new(&target);
        let new = NewImage {
            preallocate: spec.preallocate,
            ..NewImage::new(format, capacity)
        };
        create_image(staged.path(), &new)?;
        self.commit_new(staged, pool, volume, format)?;
        self.vol_info(pool, volume)
    }

    /// Changes a volume's size (`vol-resize`). Growing always works; shrinking needs
    /// `allow_shrink` and is refused when it would cut non-zero data.
    pub fn vol_resize(
        &self,
        pool: &str,
        volume: &str,
        capacity: u64,
        allow_shrink: bool,
    ) -> Result<VolumeInfo, StorageError> {
        let (path, detect) = self.volume_image(pool, volume)?;
        let label = format!("{pool}/{volume}");
        self.guard_write(&label, &path)?;
        let capacity = sectors(capacity)?;
        let format = inspect(&path, detect)?.format;
        let mut image = open_image(&path, &self.volume_options(detect, false))?;
        let current = image.capacity();
        if capacity < current {
            if !allow_shrink {
                return Err(StorageError::Invalid(format!(
                    "{label} is {} and {} is smaller; shrinking cuts the end of the disk, so shrink the guest's file system and partitions first and pass --shrink",
                    crate::config::format_size(current),
                    crate::config::format_size(capacity)
                )));
            }
            let data_end = data_end(image.as_ref(), capacity)?;
            if data_end > capacity {
                return Err(StorageError::ShrinkCutsData {
                    volume: label,
                    requested: capacity,
                    data_end,
                });
            }
        }
        let marker = InPlaceWrite::begin_for(&path, format)?;
        let resized = image
            .resize(capacity)
            .and_then(|()| image.flush())
            .map_err(|e| ImageError::transfer(&path, "resize", capacity, e));
        let ended = in_place::end(marker, image.as_ref());
        resized.and(ended)?;
        drop(image);
        self.vol_info(pool, volume)
    }

    /// Copies a volume within its pool (`vol-clone`). A full clone is a standalone image with
    /// the same content (backing files flattened in); a linked clone is a qcow2 overlay whose
    /// backing file is the source, which must then stay unchanged (vmux refuses writes to it).
    /// A full clone reports on `progress` (the source's capacity); a linked one only finishes it.
    pub fn vol_clone(
        &self,
        pool: &str,
        source: &str,
        clone: &str,
        linked: bool,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        let (src_path, detect) = self.volume_image(pool, source)?;
        let target = self.new_volume_path(pool, clone)?;
        let src_info = inspect(&src_path, detect)?;
        let staged = StagedFile::new(&target);
        let format = if linked {
            format_for(clone, Some(ImageFormat::Qcow2), ImageFormat::Qcow2).map_err(|_| {
                StorageError::Invalid(format!(
                    "a linked clone is a qcow2 overlay; name it with .qcow2 (like {})",
                    suggest_name(clone, ImageFormat::Qcow2)
                ))
            })?;
            self.guard_linked_source(pool, source, &src_path)?;
            // Hold the source read-locked while the overlay is made, so no writer slips in.
            let _lock = ImageLock::acquire(&src_path, false)?;
            progress.begin(0)?;
            let new = NewImage {
                backing: Some((source.to_string(), src_info.format)),
                ..NewImage::new(ImageFormat::Qcow2, src_info.capacity)
            };
            create_image(staged.path(), &new)?;
            ImageFormat::Qcow2
        } else {
            let format = format_for(clone, None, src_info.format)?;
            let src = open_image(&src_path, &self.volume_options(detect, true))?;
            progress.begin(src.capacity())?;
            let new = NewImage {
                cluster_size: src_info.cluster_size.unwrap_or(DEFAULT_CLUSTER_SIZE),
                ..NewImage::new(format, src.capacity())
            };
            build_copy(src.as_ref(), &staged, &new, progress)?;
            format
        };
        progress.check()?;
        self.commit_new(staged, pool, clone, format)?;
        progress.finish();
        self.vol_info(pool, clone)
    }

    /// Replaces a volume's content with an image file's (`vol-upload`). The source's format is
    /// `source_format`, else what its name says (checked against its content, never guessed
    /// from it); the volume keeps its own format and name, and its size becomes the larger of
    /// the two. A qcow2 volume that had a backing file becomes standalone. Reports on
    /// `progress`; until the new content replaces the old at the very end, a cancel or failure
    /// leaves the volume as it was.
    pub fn vol_upload(
        &self,
        pool: &str,
        volume: &str,
        source: &Path,
        source_format: Option<ImageFormat>,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        let (path, volume_detect) = self.volume_image(pool, volume)?;
        self.guard_write(&format!("{pool}/{volume}"), &path)?;
        let _lock = ImageLock::acquire(&path, true)?;
        let old = inspect(&path, volume_detect)?;
        let detect = source_format.map_or(Detect::ByName, Detect::Known);
        let src = open_image(source, &self.volume_options(detect, true))?;
        progress.begin(src.capacity())?;
        let new = NewImage {
            cluster_size: old.cluster_size.unwrap_or(DEFAULT_CLUSTER_SIZE),
            ..NewImage::new(old.format, sectors(src.capacity().max(old.capacity))?)
        };
        let staged = StagedFile::new(&path);
        build_copy(src.as_ref(), &staged, &new, progress)?;
        progress.check()?;
        staged.commit(true)?;
        progress.finish();
        VolumeRecords::record(&self.pool(pool)?.path, volume, old.format)?;
        self.vol_info(pool, volume)
    }

    /// Writes a volume's content to `dest` (`vol-download`), as `format`, else the format
    /// `dest`'s name says, else the volume's own; backing files are flattened in. An existing
    /// `dest` is replaced only with `force`. Reports on `progress`; a cancel or failure leaves
    /// `dest` as it was (absent, or its old content).
    pub fn vol_download(
        &self,
        pool: &str,
        volume: &str,
        dest: &Path,
        format: Option<ImageFormat>,
        force: bool,
        progress: &Progress,
    ) -> Result<ImageInfo, StorageError> {
        let (path, detect) = self.volume_image(pool, volume)?;
        let info = inspect(&path, detect)?;
        let dest_name = dest.file_name().map(|n| n.to_string_lossy().into_owned());
        let format = format_for(&dest_name.unwrap_or_default(), format, info.format)?;
        if dest.is_dir() {
            return Err(StorageError::Invalid(format!(
                "{} is a directory; give the file to write, like {}",
                dest.display(),
                dest.join(volume).display()
            )));
        }
        if dest.exists() && !force {
            return Err(StorageError::DestinationExists(dest.to_path_buf()));
        }
        let src = open_image(&path, &self.volume_options(detect, true))?;
        progress.begin(src.capacity())?;
        let staged = StagedFile::new(dest);
        build_copy(
            src.as_ref(),
            &staged,
            &NewImage::new(format, src.capacity()),
            progress,
        )?;
        progress.check()?;
        staged.commit(force)?;
        progress.finish();
        Ok(inspect(dest, Detect::Known(format))?)
    }

    /// Writes a volume's content into a new volume of another format (`vol-convert`); backing
    /// files are flattened in. Reports on `progress`; a cancel or failure creates nothing.
    pub fn vol_convert(
        &self,
        pool: &str,
        source: &str,
        dest: &str,
        format: Option<ImageFormat>,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        let (src_path, detect) = self.volume_image(pool, source)?;
        let target = self.new_volume_path(pool, dest)?;
        let src_info = inspect(&src_path, detect)?;
        let format = format_for(dest, format, src_info.format)?;
        let src = open_image(&src_path, &self.volume_options(detect, true))?;
        progress.begin(src.capacity())?;
        let staged = StagedFile::new(&target);
        build_copy(
            src.as_ref(),
            &staged,
            &NewImage::new(format, src.capacity()),
            progress,
        )?;
        progress.check()?;
        self.commit_new(staged, pool, dest, format)?;
        progress.finish();
        self.vol_info(pool, dest)
    }

    /// Overwrites every byte of a volume the file holds with zeroes (`vol-wipe`), so the old
    /// data is gone from the host disk, not just unlinked. The volume keeps its name, format
    /// and size and reads as zeroes; a qcow2 volume is then replaced by a fresh empty image
    /// (dropping any backing file), which gives the space back.
    ///
    /// Reports on `progress` (the volume's capacity). The overwrite happens in place, so a
    /// cancel or failure leaves the volume partly wiped: same name, format and size, the first
    /// `done` bytes of what it stored zeroed; running the wipe again finishes it.
    pub fn vol_wipe(
        &self,
        pool: &str,
        volume: &str,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        let (path, detect) = self.volume_image(pool, volume)?;
        self.guard_write(&format!("{pool}/{volume}"), &path)?;
        let info = inspect(&path, detect)?;
        let image = open_image(&path, &self.volume_options(detect, false))?;
        progress.begin(image.capacity())?;
        let marker = InPlaceWrite::begin_for(&path, info.format)?;
        let wiped = overwrite_with_zeroes(image.as_ref(), progress);
        let ended = in_place::end(marker, image.as_ref());
        wiped.and(ended)?;
        progress.check()?;
        if info.format == ImageFormat::Qcow2 {
            let staged = StagedFile::new(&path);
            let new = NewImage {
                cluster_size: info.cluster_size.unwrap_or(DEFAULT_CLUSTER_SIZE),
                ..NewImage::new(ImageFormat::Qcow2, info.capacity)
            };
            create_image(staged.path(), &new)?;
            // Replaced while still locked: nobody opens the old file in between.
            staged.commit(true)?;
        }
        progress.finish();
        drop(image);
        self.vol_info(pool, volume)
    }

    /// Deletes a volume (`vol-delete`). Refused while a running VM uses it (naming it, with
    /// how to stop it), while any VM definition uses it (naming them), while other images use
    /// it as their backing file, or while another process has it open.
    pub fn vol_delete(&self, pool: &str, volume: &str) -> Result<(), StorageError> {
        let path = self.volume_path(pool, volume)?;
        let label = format!("{pool}/{volume}");
        let usage = self.usage();
        let vms = usage.vms_using(&path);
        if let Some(user) = vms.iter().find(|u| u.running) {
            return Err(StorageError::InUseByRunningVm {
                volume: label,
                vm: user.vm.clone(),
            });
        }
        if !vms.is_empty() {
            return Err(StorageError::UsedByVm {
                volume: label,
                vms: vms.into_iter().map(|u| u.vm).collect(),
            });
        }
        let overlays = usage.overlays_of(&path);
        if !overlays.is_empty() {
            return Err(StorageError::BackingOf {
                volume: label,
                overlays,
            });
        }
        let _lock = ImageLock::acquire(&path, true)?;
        std::fs::remove_file(&path).map_err(|source| ImageError::io(&path, "delete", source))?;
        sync_dir(&path)?;
        VolumeRecords::forget(&self.pool(pool)?.path, volume)?;
        Ok(())
    }

    /// Refuses writing `path` while a running VM uses it or other images read through it.
    pub(super) fn guard_write(&self, label: &str, path: &Path) -> Result<(), StorageError> {
        let usage = self.usage();
        if let Some(user) = usage.vms_using(path).into_iter().find(|u| u.running) {
            return Err(StorageError::InUseByRunningVm {
                volume: label.to_string(),
                vm: user.vm,
            });
        }
        let overlays = usage.overlays_of(path);
        if !overlays.is_empty() {
            return Err(StorageError::BackingOf {
                volume: label.to_string(),
                overlays,
            });
        }
        Ok(())
    }

    /// Refuses a linked clone of an image some VM writes (the clone would change under it).
    fn guard_linked_source(
        &self,
        pool: &str,
        source: &str,
        path: &Path,
    ) -> Result<(), StorageError> {
        self.guard_base(&format!("{pool}/{source}"), path)
    }

    /// Refuses making an overlay on `path` (called `label` in messages) while some VM writes
    /// it: the overlay would change under it.
    pub(super) fn guard_base(&self, label: &str, path: &Path) -> Result<(), StorageError> {
        let key = super::format::canonical(path);
        for vm in crate::config::Store::new(self.paths().clone())
            .list()
            .into_iter()
            .flatten()
        {
            for disk in vm.disks.iter().filter(|d| !d.readonly) {
                let location = match &disk.source {
                    DiskSource::Volume { pool, volume } => self.volume_location(pool, volume).ok(),
                    DiskSource::Path(p) => Some(p.clone()),
                };
                if location.is_some_and(|l| super::format::canonical(&l) == key) {
                    return Err(StorageError::Invalid(format!(
                        "{label} is the writable disk of VM '{}', so a linked clone of it would change when that VM writes; make a full clone, or snapshot '{}' first and link to the frozen image",
                        vm.name, vm.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Where a new volume goes; refuses an existing name (a symbolic link included).
    pub(super) fn new_volume_path(
        &self,
        pool: &str,
        volume: &str,
    ) -> Result<PathBuf, StorageError> {
        validate_volume_name(volume).map_err(StorageError::Invalid)?;
        let path = self.active_dir(pool)?.join(volume);
        if path.symlink_metadata().is_ok() {
            return Err(StorageError::VolumeExists {
                pool: pool.to_string(),
                volume: volume.to_string(),
            });
        }
        Ok(path)
    }

    /// Gives a staged new volume its name, refusing one that appeared meanwhile, and records
    /// its format in the pool.
    pub(super) fn commit_new(
        &self,
        staged: StagedFile,
        pool: &str,
        volume: &str,
        format: ImageFormat,
    ) -> Result<(), StorageError> {
        let target = staged.target().to_path_buf();
        staged.commit(false).map_err(|e| match e {
            ImageError::Io { ref source, .. }
                if source.kind() == std::io::ErrorKind::AlreadyExists
                    && target.symlink_metadata().is_ok() =>
            {
                StorageError::VolumeExists {
                    pool: pool.to_string(),
                    volume: volume.to_string(),
                }
            }
            other => other.into(),
        })?;
        // After the file has its name: a crash in between leaves an unrecorded volume, which
        // its name (or `vol-set-format`) decides, never a record for a file that is not there.
        VolumeRecords::record(&self.pool(pool)?.path, volume, format)
    }
}

/// Builds `new` at the staged path and copies `src` into it, advancing `progress` by `src`'s
/// capacity (the caller begins and finishes it).
pub(super) fn build_copy(
    src: &dyn BlockImage,
    staged: &StagedFile,
    new: &NewImage,
    progress: &Progress,
) -> Result<(), StorageError> {
    create_image(staged.path(), new)?;
    let dst = open_image(
        staged.path(),
        &OpenOptions::writable().detect(Detect::Known(new.format)),
    )?;
    copy_image(src, dst.as_ref(), progress)?;
    Ok(())
}

fn volume_info(
    pool: &str,
    name: &str,
    image: ImageInfo,
    usage: &Usage,
    trust: &BackingTrust,
) -> VolumeInfo {
    let users = usage.vms_using(&image.path);
    let backing_refused = image.backing.as_ref().and_then(|backing| {
        if backing.format.is_none() {
            Some("its format is not recorded in the image".to_string())
        } else if !trust.allows(&backing.path) {
            Some(format!(
                "it is outside every storage pool; allow it with --allow-backing {}",
                backing.path.display()
            ))
        } else {
            None
        }
    });
    VolumeInfo {
        backing_refused,
        pool: pool.to_string(),
        name: name.to_string(),
        format: image.format,
        capacity: image.capacity,
        allocation: image.allocation,
        cluster_size: image.cluster_size,
        internal_snapshots: image.internal_snapshots,
        used_by: users.iter().map(|u| u.vm.clone()).collect(),
        running: users
            .iter()
            .filter(|u| u.running)
            .map(|u| u.vm.clone())
            .collect(),
        backing_of: usage.overlays_of(&image.path),
        backing: image.backing,
        path: image.path,
    }
}

/// The format of a new file named `name`: what its extension says, which `requested` must
/// agree with; `requested` or `default` when the name says nothing.
pub(super) fn format_for(
    name: &str,
    requested: Option<ImageFormat>,
    default: ImageFormat,
) -> Result<ImageFormat, StorageError> {
    match (ImageFormat::from_name(Path::new(name)), requested) {
        (Some(by_name), Some(asked)) if by_name != asked => Err(StorageError::Invalid(format!(
            "'{name}' is named as {by_name} but --format {asked} was given; name it {} or drop --format",
            suggest_name(name, asked)
        ))),
        (Some(by_name), _) => Ok(by_name),
        (None, Some(asked)) => Ok(asked),
        (None, None) => Ok(default),
    }
}

/// `name` with the extension of `format`.
pub(super) fn suggest_name(name: &str, format: ImageFormat) -> String {
    let stem = Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    format!("{stem}.{format}")
}

/// `bytes` rounded up to whole sectors; zero is refused.
pub(super) fn sectors(bytes: u64) -> Result<u64, StorageError> {
    if bytes == 0 {
        return Err(StorageError::Invalid(
            "a volume needs a size above 0; write it like 20G".into(),
        ));
    }
    bytes
        .checked_next_multiple_of(SECTOR)
        .ok_or_else(|| StorageError::Invalid("that size is too large".into()))
}

/// The end of the last non-zero byte at or after `from` (0 when there is none).
fn data_end(image: &dyn BlockImage, from: u64) -> Result<u64, ImageError> {
    let capacity = image.capacity();
    let chunk = super::copy::COPY_CHUNK;
    let mut buf = vec![0u8; chunk as usize];
    let mut end = 0;
    let mut offset = from;
    while offset < capacity {
        let (kind, len) = image
            .extent(offset, chunk)
            .map_err(|e| ImageError::transfer(image.path(), "inspect", offset, e))?;
        if kind != Extent::Zero {
            let part = &mut buf[..len as usize];
            image
                .read_at(offset, part)
                .map_err(|e| ImageError::transfer(image.path(), "read", offset, e))?;
            if let Some(last) = part.iter().rposition(|b| *b != 0) {
                end = offset + last as u64 + 1;
            }
        }
        offset += len;
    }
    Ok(end)
}

/// Writes zero bytes over every range the image stores data in (not holes, not backing),
/// advancing `progress` by the image's capacity in all. The image is flushed whatever happens,
/// so a cancelled wipe's zeroes are durable too.
fn overwrite_with_zeroes(image: &dyn BlockImage, progress: &Progress) -> Result<(), ImageError> {
    let wiped = zero_data_ranges(image, progress);
    let flushed = image
        .flush()
        .map_err(|e| ImageError::transfer(image.path(), "flush", 0, e));
    wiped.and(flushed)
}

fn zero_data_ranges(image: &dyn BlockImage, progress: &Progress) -> Result<(), ImageError> {
    let capacity = image.capacity();
    let chunk = super::copy::COPY_CHUNK;
    let zeroes = vec![0u8; chunk as usize];
    let mut offset = 0;
    while offset < capacity {
        let (kind, len) = image
            .extent(offset, chunk)
            .map_err(|e| ImageError::transfer(image.path(), "inspect", offset, e))?;
        if kind == Extent::Data {
            image
                .write_at(offset, &zeroes[..len as usize])
                .map_err(|e| ImageError::transfer(image.path(), "wipe", offset, e))?;
        }
        offset += len;
        progress.advance(len)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_decides_the_format_and_must_agree_with_format() {
        assert_eq!(
            format_for("a.raw", None, ImageFormat::Qcow2).expect("ok"),
            ImageFormat::Raw
        );
        assert_eq!(
            format_for("a", Some(ImageFormat::Raw), ImageFormat::Qcow2).expect("ok"),
            ImageFormat::Raw
        );
        let err = format_for("a.qcow2", Some(ImageFormat::Raw), ImageFormat::Qcow2)
            .expect_err("must fail");
        assert!(err.to_string().contains("a.raw"), "{err}");
    }

    use crate::config::Paths;

    fn manager() -> (tempfile::TempDir, StorageManager) {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = StorageManager::new(Paths::under(dir.path()));
        storage.ensure_default().expect("default pool");
        (dir, storage)
    }

    fn spec(format: Option<ImageFormat>) -> VolumeSpec {
        VolumeSpec {
            capacity: 1 << 20,
            format,
            preallocate: false,
        }
    }

    #[test]
    fn a_disk_gets_the_format_its_pool_recorded_not_the_one_its_content_suggests() {
        let (_dir, storage) = manager();
        let info = storage
            .vol_create("default", "data", spec(Some(ImageFormat::Raw)))
            .expect("create");
        let mut header = vec![0u8; 512];
        header[..4].copy_from_slice(b"QFI\xfb");
        std::fs::write(&info.path, &header).expect("a guest's qcow2 magic");
        let mut disks = vec![DiskConfig::volume("default", "data")];

        assert!(storage.record_disk_formats_of(&mut disks).expect("record"));

        assert_eq!(disks[0].format, Some(ImageFormat::Raw));
    }

    #[test]
    fn a_definition_and_a_pool_record_that_disagree_are_refused_naming_both() {
        let (_dir, storage) = manager();
        storage
            .vol_create("default", "data", spec(Some(ImageFormat::Raw)))
            .expect("create");
        let disk = DiskConfig {
            format: Some(ImageFormat::Qcow2),
            ..DiskConfig::volume("default", "data")
        };

        let err = storage.disk_detect(&disk).expect_err("conflict");

        let text = err.to_string();
        assert!(text.contains("qcow2") && text.contains("raw"), "{text}");
        assert!(
            text.contains("vmux edit") && text.contains("vol-set-format"),
            "{text}"
        );
    }

    #[test]
    fn disks_that_cannot_be_judged_yet_are_left_for_the_start() {
        let (dir, storage) = manager();
        storage
            .define_pool("off", &dir.path().join("off"), true)
            .expect("inactive pool");
        let mut disks = vec![
            DiskConfig::volume("default", "missing.raw"),
            DiskConfig::volume("off", "a.raw"),
            DiskConfig::volume("nowhere", "a.raw"),
        ];

        assert!(
            !storage
                .record_disk_formats_of(&mut disks)
                .expect("nothing to do")
        );

        assert!(disks.iter().all(|d| d.format.is_none()));
    }

    #[test]
    fn sizes_round_up_to_sectors_and_zero_is_refused() {
        assert_eq!(sectors(1).expect("ok"), 512);
        assert_eq!(sectors(1024).expect("ok"), 1024);
        assert!(sectors(0).is_err());
    }
}
