//! External disk snapshots of a VM (virsh `snapshot-create --disk-only` semantics): taking a
//! snapshot freezes each writable disk's current image and puts a new, empty qcow2 overlay on
//! top of it, which the VM writes from then on. The snapshots of one VM form a line: the oldest
//! one's frozen image is the original volume, each later one's is the overlay of the one
//! before, the newest overlay is the VM's disk.
//!
//! - create: VM stopped (a running VM needs the engine to switch disks:
//!   [`SnapshotManager::prepare`] and [`SnapshotManager::complete`] are the storage side).
//! - revert: a fresh overlay on the snapshot's frozen images becomes the VM's disk; everything
//!   above them (later snapshots and the changes since) is discarded. The snapshot stays, so
//!   one can revert to it again.
//! - delete: the overlay above the snapshot's frozen image is committed (merged down) into it
//!   and removed; the next snapshot (or the VM) then uses the frozen image directly.
//!
//! Metadata: one TOML file per snapshot in `<config>/snapshots/<vm>/`, written atomically, with
//! a state that makes every step restartable: `creating` (overlays being made; rolled forward
//! or back by the next snapshot command), `ready`, `deleting` (a merge in progress; the next
//! `snapshot-delete` repairs the qcow2 refcounts of the image merged into, then finishes it;
//! other snapshot commands refuse until then). The VM
//! definition's disk list is the truth about which image is current; it is always switched in
//! one atomic write.

use super::StorageError;
use super::copy::commit;
use super::create::{NewImage, create_image};
use super::format::{BackingTrust, Detect, ImageFormat, canonical, inspect, rewrite_backing};
use super::image::{BlockImage, ImageError, OpenOptions, open_image};
use super::pool::StorageManager;
use super::qcow2::Qcow2Image;
use super::qcow2_repair::repair_image;
use super::staging::{StagedFile, sync_dir};
use super::usage::vm_is_running;
use crate::config::{
    ConfigError, DiskConfig, DiskSource, Paths, Store, StoreLock, VmConfig, assign_targets,
    validate_name, validate_volume_name, write_atomic,
};
use crate::progress::Progress;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Errors specific to snapshots (the rest are [`StorageError`]s).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A running VM's disks can only be switched by its vmd (`vmux snapshot-create` asks it).
    #[error(
        "VM '{0}' is running: its vmd must switch its disks, which `vmux snapshot-create {0} <name>` does; or shut it down first (`vmux shutdown {0}`)"
    )]
    Running(String),
    /// Revert/delete need a stopped VM.
    #[error("VM '{0}' is running; shut it down first (`vmux shutdown {0}`) to {1} a snapshot")]
    RunningFor(String, &'static str),
    /// The name is taken.
    #[error(
        "VM '{vm}' already has a snapshot '{name}'; pick another name or delete it with `vmux snapshot-delete {vm} {name}`"
    )]
    Exists {
        /// VM.
        vm: String,
        /// Snapshot.
        name: String,
    },
    /// No such snapshot.
    #[error("VM '{vm}' has no snapshot '{name}'; `vmux snapshot-list {vm}` shows its snapshots")]
    Unknown {
        /// VM.
        vm: String,
        /// Snapshot.
        name: String,
    },
    /// Nothing to snapshot.
    #[error(
        "VM '{0}' has no writable disks to snapshot; add one with --disk (read-only disks never change)"
    )]
    NoDisks(String),
    /// A deletion was interrupted.
    #[error(
        "snapshot '{name}' of VM '{vm}' was being deleted when vmux stopped; finish that first with `vmux snapshot-delete {vm} {name}`"
    )]
    Interrupted {
        /// VM.
        vm: String,
        /// Snapshot.
        name: String,
    },
    /// The disks no longer look like the snapshot says.
    #[error("snapshot '{name}' of VM '{vm}' does not match its disks: {detail}")]
    Mismatch {
        /// VM.
        vm: String,
        /// Snapshot.
        name: String,
        /// What differs, and what to do.
        detail: String,
    },
    /// A metadata file cannot be used.
    #[error("snapshot metadata {} is unusable: {reason}; move it away to continue", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Where a snapshot is in its life (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotState {
    /// Overlays are being made; not yet the VM's disks.
    Creating,
    /// Usable.
    Ready,
    /// Being merged away.
    Deleting,
}

/// One disk in a snapshot record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotDisk {
    /// Guest device name at snapshot time.
    target: String,
    /// The VM's disk entry that pointed at the frozen image.
    disk: DiskConfig,
    /// The frozen image.
    path: PathBuf,
    /// Its format.
    format: ImageFormat,
    /// `creating`: the overlay being made on top.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    overlay: Option<PathBuf>,
    /// `deleting`: the image being merged into the frozen one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    merge_child: Option<PathBuf>,
}

/// One snapshot's metadata file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotRecord {
    name: String,
    /// Creation time, seconds since the Unix epoch.
    created: u64,
    /// Order among this VM's snapshots (creation order).
    seq: u64,
    state: SnapshotState,
    disks: Vec<SnapshotDisk>,
}

/// What `snapshot-list` shows about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Snapshot name.
    pub name: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// `ready`, or `creating`/`deleting` when interrupted.
    pub state: SnapshotState,
    /// The newest snapshot: the VM's disks are its overlays (plus later changes).
    pub current: bool,
    /// (target, frozen image) per disk.
    pub disks: Vec<(String, PathBuf)>,
}

/// Overlays made for a snapshot but not yet the VM's disks (the storage half of a live
/// snapshot: the engine switches each disk to `overlays[i].1`, then calls
/// [`SnapshotManager::complete`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedSnapshot {
    /// VM name.
    pub vm: String,
    /// Snapshot name.
    pub name: String,
    /// (target, new overlay) per snapshotted disk.
    pub overlays: Vec<(String, PathBuf)>,
}

/// What a revert did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertReport {
    /// The snapshot reverted to.
    pub snapshot: String,
    /// Later snapshots removed with the discarded overlays.
    pub removed_snapshots: Vec<String>,
    /// Image files deleted.
    pub removed_images: Vec<PathBuf>,
}

/// Snapshots of VMs' disks.
#[derive(Debug, Clone)]
pub struct SnapshotManager {
    storage: StorageManager,
    store: Store,
}

impl SnapshotManager {
    /// A manager over `paths`.
    pub fn new(paths: Paths) -> SnapshotManager {
        SnapshotManager {
            storage: StorageManager::new(paths.clone()),
            store: Store::new(paths),
        }
    }

    /// Takes snapshot `name` of stopped VM `vm`.
    pub fn create(&self, vm: &str, name: &str) -> Result<SnapshotInfo, StorageError> {
        if vm_is_running(self.store.paths(), vm) {
            return Err(SnapshotError::Running(vm.to_string()).into());
        }
        let prepared = self.prepare(vm, name)?;
        self.complete(&prepared)
    }

    /// Makes the overlays of a new snapshot and records it as `creating`; the VM's disks are
    /// not switched yet. For a stopped VM [`SnapshotManager::create`] does both halves.
    pub fn prepare(&self, vm: &str, name: &str) -> Result<PreparedSnapshot, StorageError> {
        validate_name(name).map_err(StorageError::Invalid)?;
        let cfg = self.store.load(vm)?;
        let records = self.reconcile(&cfg)?;
        self.refuse_interrupted(vm, &records, None)?;
        if records.iter().any(|r| r.name == name) {
            return Err(SnapshotError::Exists {
                vm: vm.to_string(),
                name: name.to_string(),
            }
            .into());
        }
        let targets = assign_targets(&cfg.disks).map_err(StorageError::Invalid)?;
        let mut disks = Vec::new();
        for (disk, target) in cfg.disks.iter().zip(&targets) {
            if disk.readonly {
                continue;
            }
            let path = self.storage.resolve_disk(disk)?;
            let top = self.storage.disk_chain(disk)?.remove(0);
            let base = first_frozen(&records, target).unwrap_or_else(|| path.clone());
            let overlay = free_overlay_name(&base, name)?;
            disks.push(SnapshotDisk {
                target: target.clone(),
                disk: disk.clone(),
                path,
                format: top.format,
                overlay: Some(overlay),
                merge_child: None,
            });
        }
        if disks.is_empty() {
            return Err(SnapshotError::NoDisks(vm.to_string()).into());
        }
        let record = SnapshotRecord {
            name: name.to_string(),
            created: now(),
            seq: records.iter().map(|r| r.seq + 1).max().unwrap_or(0),
            state: SnapshotState::Creating,
            disks,
        };
        // Recorded before any file exists, so a crash leaves nothing untracked.
        self.write_record(vm, &record)?;
        for disk in &record.disks {
            let overlay = disk
                .overlay
                .as_ref()
                .expect("creating records name their overlays");
            if let Err(e) = make_overlay(overlay, &disk.path, disk.format) {
                self.roll_back_creating(vm, &record);
                return Err(e);
            }
        }
        Ok(PreparedSnapshot {
            vm: vm.to_string(),
            name: name.to_string(),
            overlays: record
                .disks
                .iter()
                .map(|d| (d.target.clone(), d.overlay.clone().unwrap_or_default()))
                .collect(),
        })
    }

    /// Gives up a prepared snapshot whose disks were not switched (a live switch failed):
    /// removes its overlays and its record.
    pub fn abort(&self, prepared: &PreparedSnapshot) -> Result<(), StorageError> {
        let record = self.read_record(&prepared.vm, &prepared.name)?;
        self.roll_back_creating(&prepared.vm, &record);
        Ok(())
    }

    /// Switches the VM definition's disks to a prepared snapshot's overlays (one atomic write)
    /// and marks the snapshot ready.
    pub fn complete(&self, prepared: &PreparedSnapshot) -> Result<SnapshotInfo, StorageError> {
        // Held from the read to the write: a concurrent change of the definition is kept.
        let definitions = self.store.lock()?;
        let mut cfg = definitions.load(&prepared.vm)?;
        let mut record = self.read_record(&prepared.vm, &prepared.name)?;
        let targets = assign_targets(&cfg.disks).map_err(StorageError::Invalid)?;
        for snap_disk in &record.disks {
            let overlay = snap_disk.overlay.as_ref().ok_or_else(|| {
                mismatch(
                    &prepared.vm,
                    &prepared.name,
                    "it has no overlays to switch to",
                )
            })?;
            let index = targets
                .iter()
                .position(|t| *t == snap_disk.target)
                .ok_or_else(|| {
                    mismatch(
                        &prepared.vm,
                        &prepared.name,
                        &format!("disk {} was removed", snap_disk.target),
                    )
                })?;
            cfg.disks[index] = disk_for(&snap_disk.disk, overlay);
        }
        definitions.save(&cfg)?;
        for disk in &mut record.disks {
            disk.overlay = None;
        }
        record.state = SnapshotState::Ready;
        self.write_record(&prepared.vm, &record)?;
        let records = self.records(&prepared.vm)?;
        Ok(info_of(&record, &records))
    }

    /// The snapshots of `vm`, oldest first.
    pub fn list(&self, vm: &str) -> Result<Vec<SnapshotInfo>, StorageError> {
        let cfg = self.store.load(vm)?;
        let records = if vm_is_running(self.store.paths(), vm) {
            self.records(vm)?
        } else {
            self.reconcile(&cfg)?
        };
        Ok(records.iter().map(|r| info_of(r, &records)).collect())
    }

    /// Reverts stopped VM `vm` to snapshot `name` (see the module docs); later snapshots and
    /// all changes since `name` are discarded.
    pub fn revert(&self, vm: &str, name: &str) -> Result<RevertReport, StorageError> {
        if vm_is_running(self.store.paths(), vm) {
            return Err(SnapshotError::RunningFor(vm.to_string(), "revert to").into());
        }
        let definitions = self.store.lock()?;
        let mut cfg = definitions.load(vm)?;
        let records = self.reconcile(&cfg)?;
        self.refuse_interrupted(vm, &records, None)?;
        let snap = find(&records, vm, name)?.clone();
        let targets = assign_targets(&cfg.disks).map_err(StorageError::Invalid)?;
        let usage = self.storage.usage();
        let mut discard: Vec<PathBuf> = Vec::new();
        let mut staged = Vec::new();
        for snap_disk in &snap.disks {
            let index = targets
                .iter()
                .position(|t| *t == snap_disk.target)
                .ok_or_else(|| {
                    mismatch(
                        vm,
                        name,
                        &format!("disk {} was removed from the VM", snap_disk.target),
                    )
                })?;
            let layers = disk_chain(&self.storage, &cfg.disks[index])?;
            let frozen = canonical(&snap_disk.path);
            let position = layers.iter().position(|p| *p == frozen).ok_or_else(|| {
                mismatch(
                    vm,
                    name,
                    &format!(
                        "{} is no longer below disk {}",
                        snap_disk.path.display(),
                        snap_disk.target
                    ),
                )
            })?;
            // Images above the frozen one that nothing else uses go; others are kept.
            for image in &layers[..position] {
                let other_vms = usage.vms_using(image).iter().any(|u| u.vm != vm);
                if !other_vms {
                    discard.push(image.clone());
                }
            }
            let base = first_frozen(&records, &snap_disk.target).unwrap_or(frozen.clone());
            let overlay = free_overlay_name(&base, name)?;
            let file = StagedFile::new(&overlay);
            make_overlay(file.path(), &snap_disk.path, snap_disk.format)?;
            staged.push((index, file, snap_disk.disk.clone()));
        }
        for (index, file, frozen_disk) in staged {
            let overlay = file.target().to_path_buf();
            file.commit(false)?;
            cfg.disks[index] = disk_for(&frozen_disk, &overlay);
        }
        // The switch: from here on the VM uses the fresh overlays.
        definitions.save(&cfg)?;
        let mut removed_snapshots = Vec::new();
        for later in records.iter().filter(|r| r.seq > snap.seq).rev() {
            self.remove_record(vm, &later.name)?;
            removed_snapshots.push(later.name.clone());
        }
        let removed_images = remove_images(&discard);
        Ok(RevertReport {
            snapshot: name.to_string(),
            removed_snapshots,
            removed_images,
        })
    }

    /// Deletes snapshot `name` of stopped VM `vm`, merging the overlay above its frozen images
    /// down into them. Also finishes a deletion that was interrupted.
    ///
    /// The merge reports on `progress` (the bytes of virtual disk of every overlay merged). A
    /// cancel or failure during the merge is an interruption like a crash: the snapshot stays
    /// `deleting`, the VM's disks read exactly as before, and running the deletion again
    /// finishes it (reverting to the snapshot is no longer possible once its merge began).
    pub fn delete(&self, vm: &str, name: &str, progress: &Progress) -> Result<(), StorageError> {
        if vm_is_running(self.store.paths(), vm) {
            return Err(SnapshotError::RunningFor(vm.to_string(), "delete").into());
        }
        let definitions = self.store.lock()?;
        let cfg = definitions.load(vm)?;
        let records = self.reconcile(&cfg)?;
        self.refuse_interrupted(vm, &records, Some(name))?;
        let mut snap = find(&records, vm, name)?.clone();
        let targets = assign_targets(&cfg.disks).map_err(StorageError::Invalid)?;
        if snap.state == SnapshotState::Ready {
            let usage = self.storage.usage();
            for snap_disk in &mut snap.disks {
                let index = targets
                    .iter()
                    .position(|t| *t == snap_disk.target)
                    .ok_or_else(|| {
                        mismatch(
                            vm,
                            name,
                            &format!("disk {} was removed from the VM", snap_disk.target),
                        )
                    })?;
                let layers = disk_chain(&self.storage, &cfg.disks[index])?;
                let frozen = canonical(&snap_disk.path);
                let position = layers
                    .iter()
                    .position(|p| *p == frozen)
                    .filter(|p| *p > 0)
                    .ok_or_else(|| {
                        mismatch(
                            vm,
                            name,
                            &format!("{} has no overlay above it", snap_disk.path.display()),
                        )
                    })?;
                let child = layers[position - 1].clone();
                let others: Vec<PathBuf> = usage
                    .overlays_of(&frozen)
                    .into_iter()
                    .filter(|o| *o != child)
                    .collect();
                if !others.is_empty() {
                    return Err(StorageError::BackingOf {
                        volume: snap_disk.path.display().to_string(),
                        overlays: others,
                    });
                }
                snap_disk.merge_child = Some(child);
            }
        }
        // Measured, and a cancel honoured, before anything changes.
        progress.begin(self.merge_bytes(&cfg, &targets, &snap)?)?;
        // A record already `deleting` means a merge was interrupted (killed, cancelled, failed).
        let resumed = snap.state == SnapshotState::Deleting;
        if !resumed {
            snap.state = SnapshotState::Deleting;
            self.write_record(vm, &snap)?;
        }
        self.finish_delete(&definitions, cfg, &records, snap, resumed, progress)
    }

    /// The merge itself, restartable: commits each child that is still in use, re-points the
    /// image above it (or the VM), fixes later records, removes the record and the children.
    /// `resumed`: an earlier merge of `snap` was interrupted, so each qcow2 image merged into
    /// has its refcounts repaired before anything is written to it (see
    /// [`repair_interrupted_merge`]). `progress` has begun with
    /// [`SnapshotManager::merge_bytes`].
    fn finish_delete(
        &self,
        definitions: &StoreLock<'_>,
        mut cfg: VmConfig,
        records: &[SnapshotRecord],
        snap: SnapshotRecord,
        resumed: bool,
        progress: &Progress,
    ) -> Result<(), StorageError> {
        let targets = assign_targets(&cfg.disks).map_err(StorageError::Invalid)?;
        let mut vm_changed = false;
        let mut children = Vec::new();
        for snap_disk in &snap.disks {
            let Some(child) = snap_disk.merge_child.clone() else {
                continue;
            };
            let Some(index) = targets.iter().position(|t| *t == snap_disk.target) else {
                continue;
            };
            let layers = disk_chain(&self.storage, &cfg.disks[index])?;
            if let Some(position) = layers.iter().position(|p| *p == child) {
                if resumed && snap_disk.format == ImageFormat::Qcow2 {
                    repair_interrupted_merge(&snap_disk.path)?;
                }
                let trust = self.storage.trust(&snap_disk.disk.allow_backing);
                merge(&child, &snap_disk.path, snap_disk.format, &trust, progress)?;
                if position == 0 {
                    cfg.disks[index] = snap_disk.disk.clone();
                    vm_changed = true;
                } else {
                    let above = &layers[position - 1];
                    rewrite_backing(
                        above,
                        Some((&backing_name(above, &snap_disk.path), snap_disk.format)),
                    )?;
                }
            }
            children.push((snap_disk.target.clone(), child, snap_disk.clone()));
        }
        if vm_changed {
            definitions.save(&cfg)?;
        }
        // The next snapshot's frozen image was the child; it is now the merged-into image.
        for later in records.iter().filter(|r| r.seq > snap.seq) {
            let mut later = later.clone();
            let mut changed = false;
            for disk in &mut later.disks {
                if let Some((_, _, merged)) = children
                    .iter()
                    .find(|(t, c, _)| *t == disk.target && canonical(&disk.path) == *c)
                {
                    disk.path = merged.path.clone();
                    disk.disk = merged.disk.clone();
                    disk.format = merged.format;
                    changed = true;
                }
            }
            if changed {
                self.write_record(&cfg.name, &later)?;
            }
        }
        self.remove_record(&cfg.name, &snap.name)?;
        let files: Vec<PathBuf> = children.into_iter().map(|(_, c, _)| c).collect();
        remove_images(&files);
        progress.finish();
        Ok(())
    }

    /// Bytes of virtual disk the merges of `snap` walk: the capacity of every child still in
    /// its disk's chain (what [`SnapshotManager::finish_delete`] merges).
    fn merge_bytes(
        &self,
        cfg: &VmConfig,
        targets: &[String],
        snap: &SnapshotRecord,
    ) -> Result<u64, StorageError> {
        let mut total = 0u64;
        for snap_disk in &snap.disks {
            let Some(child) = &snap_disk.merge_child else {
                continue;
            };
            let Some(index) = targets.iter().position(|t| *t == snap_disk.target) else {
                continue;
            };
            if disk_chain(&self.storage, &cfg.disks[index])?.contains(child) {
                let capacity = inspect(child, Detect::Known(ImageFormat::Qcow2))?.capacity;
                total = total.saturating_add(capacity);
            }
        }
        Ok(total)
    }

    /// Reads the records and settles interrupted creations: a `creating` snapshot whose
    /// overlays the VM already uses is marked ready, any other is rolled back.
    fn reconcile(&self, cfg: &VmConfig) -> Result<Vec<SnapshotRecord>, StorageError> {
        let mut records = self.records(&cfg.name)?;
        let in_use: Vec<PathBuf> = cfg
            .disks
            .iter()
            .filter_map(|d| self.storage.resolve_disk(d).ok())
            .map(|p| canonical(&p))
            .collect();
        for record in records
            .iter_mut()
            .filter(|r| r.state == SnapshotState::Creating)
        {
            let switched = record.disks.iter().all(|d| {
                d.overlay
                    .as_ref()
                    .is_some_and(|o| in_use.contains(&canonical(o)))
            });
            if switched {
                for disk in &mut record.disks {
                    disk.overlay = None;
                }
                record.state = SnapshotState::Ready;
                self.write_record(&cfg.name, record)?;
            } else {
                self.roll_back_creating(&cfg.name, record);
            }
        }
        records.retain(|r| r.state != SnapshotState::Creating);
        Ok(records)
    }

    /// Removes a `creating` snapshot's overlays (those that exist) and its record.
    fn roll_back_creating(&self, vm: &str, record: &SnapshotRecord) {
        let overlays: Vec<PathBuf> = record
            .disks
            .iter()
            .filter_map(|d| d.overlay.clone())
            .collect();
        remove_images(&overlays);
        let _ = self.remove_record(vm, &record.name);
    }

    fn refuse_interrupted(
        &self,
        vm: &str,
        records: &[SnapshotRecord],
        allowed: Option<&str>,
    ) -> Result<(), StorageError> {
        match records
            .iter()
            .find(|r| r.state == SnapshotState::Deleting && Some(r.name.as_str()) != allowed)
        {
            Some(r) => Err(SnapshotError::Interrupted {
                vm: vm.to_string(),
                name: r.name.clone(),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// The names of `vm`'s snapshots as their metadata files say (in any state, sorted by name),
    /// without reading the files: an unusable file still names a snapshot the user has to
    /// decide about. Empty when the VM has no metadata folder.
    pub fn names(&self, vm: &str) -> Result<Vec<String>, StorageError> {
        let dir = self.dir(vm);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(ConfigError::Read { path: dir, source }.into()),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let stem = name.strip_suffix(".toml")?;
                (!stem.is_empty() && !stem.starts_with('.')).then(|| stem.to_string())
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Deletes `vm`'s snapshot metadata folder (`<config>/snapshots/<vm>/`), and with it every
    /// snapshot record; the images stay where they are (the frozen ones and the overlays are
    /// ordinary volumes then). For `undefine`; a VM without the folder is fine.
    pub fn remove_metadata(&self, vm: &str) -> Result<(), StorageError> {
        let dir = self.dir(vm);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {
                sync_dir(&dir)?;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ConfigError::Write { path: dir, source }.into()),
        }
    }

    fn dir(&self, vm: &str) -> PathBuf {
        self.store.paths().config.join("snapshots").join(vm)
    }

    fn records(&self, vm: &str) -> Result<Vec<SnapshotRecord>, StorageError> {
        let dir = self.dir(vm);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            records.push(read_record_file(&path)?);
        }
        records.sort_by_key(|r| r.seq);
        Ok(records)
    }

    fn read_record(&self, vm: &str, name: &str) -> Result<SnapshotRecord, StorageError> {
        let path = self.dir(vm).join(format!("{name}.toml"));
        if !path.exists() {
            return Err(SnapshotError::Unknown {
                vm: vm.to_string(),
                name: name.to_string(),
            }
            .into());
        }
        read_record_file(&path)
    }

    fn write_record(&self, vm: &str, record: &SnapshotRecord) -> Result<(), StorageError> {
        let dir = self.dir(vm);
        fs::create_dir_all(&dir).map_err(|source| ConfigError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(format!("{}.toml", record.name));
        let text = toml::to_string(record).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        write_atomic(&path, text.as_bytes())
            .map_err(|source| ConfigError::Write { path, source })?;
        Ok(())
    }

    fn remove_record(&self, vm: &str, name: &str) -> Result<(), StorageError> {
        let path = self.dir(vm).join(format!("{name}.toml"));
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&path)?;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ConfigError::Write { path, source }.into()),
        }
    }
}

fn read_record_file(path: &Path) -> Result<SnapshotRecord, StorageError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| {
        SnapshotError::Metadata {
            path: path.to_path_buf(),
            reason: e.message().trim().to_string(),
        }
        .into()
    })
}

fn mismatch(vm: &str, snapshot: &str, detail: &str) -> StorageError {
    SnapshotError::Mismatch {
        vm: vm.to_string(),
        name: snapshot.to_string(),
        detail: format!("{detail}; revert to an older snapshot or delete this one"),
    }
    .into()
}

fn find<'a>(
    records: &'a [SnapshotRecord],
    vm: &str,
    name: &str,
) -> Result<&'a SnapshotRecord, StorageError> {
    records.iter().find(|r| r.name == name).ok_or_else(|| {
        SnapshotError::Unknown {
            vm: vm.to_string(),
            name: name.to_string(),
        }
        .into()
    })
}

fn info_of(record: &SnapshotRecord, all: &[SnapshotRecord]) -> SnapshotInfo {
    SnapshotInfo {
        name: record.name.clone(),
        created: record.created,
        state: record.state,
        current: all.iter().map(|r| r.seq).max() == Some(record.seq),
        disks: record
            .disks
            .iter()
            .map(|d| (d.target.clone(), d.path.clone()))
            .collect(),
    }
}

/// The canonical paths of a disk's chain, top first.
fn disk_chain(storage: &StorageManager, disk: &DiskConfig) -> Result<Vec<PathBuf>, StorageError> {
    Ok(storage
        .disk_chain(disk)?
        .iter()
        .map(|l| canonical(&l.path))
        .collect())
}

/// The frozen image of the oldest snapshot of disk `target`: the disk's original image, whose
/// name new overlays are named after.
fn first_frozen(records: &[SnapshotRecord], target: &str) -> Option<PathBuf> {
    records
        .iter()
        .flat_map(|r| r.disks.iter())
        .find(|d| d.target == target)
        .map(|d| d.path.clone())
}

/// `<dir>/<stem of base>.<snapshot>.qcow2`, or with `-2`, `-3`, ... when taken.
fn free_overlay_name(base: &Path, snapshot: &str) -> Result<PathBuf, StorageError> {
    let dir = base.parent().unwrap_or(Path::new("."));
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    for n in 1..1000 {
        let name = if n == 1 {
            format!("{stem}.{snapshot}.qcow2")
        } else {
            format!("{stem}.{snapshot}-{n}.qcow2")
        };
        validate_volume_name(&name).map_err(StorageError::Invalid)?;
        let path = dir.join(&name);
        if !path.exists() {
            return Ok(path);
        }
    }
    Err(StorageError::Invalid(format!(
        "no free overlay name for snapshot '{snapshot}' in {}; delete old {stem}.{snapshot}*.qcow2 files",
        dir.display()
    )))
}

/// Creates the qcow2 overlay `path` on `backing` (same size; backing named relative when in the
/// same directory, so a pool directory can move).
fn make_overlay(path: &Path, backing: &Path, format: ImageFormat) -> Result<(), StorageError> {
    let capacity = super::format::inspect(backing, Detect::Known(format))?.capacity;
    let new = NewImage {
        backing: Some((backing_name(path, backing), format)),
        ..NewImage::new(ImageFormat::Qcow2, capacity)
    };
    create_image(path, &new)?;
    Ok(())
}

/// How overlay `image` should name `backing` in its header.
fn backing_name(image: &Path, backing: &Path) -> String {
    let same_dir = image.parent().map(canonical) == backing.parent().map(canonical);
    match backing.file_name() {
        Some(name) if same_dir => name.to_string_lossy().into_owned(),
        _ => canonical(backing).to_string_lossy().into_owned(),
    }
}

/// The disk entry for the qcow2 overlay `image` on `like`'s image, keeping `like`'s options and
/// pool. A disk given by path also allows its old image as a backing file (the user named that
/// path; an overlay in a pool needs nothing, its backing file is in the pool).
fn disk_for(like: &DiskConfig, image: &Path) -> DiskConfig {
    let file = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut allow_backing = like.allow_backing.clone();
    let source = match &like.source {
        DiskSource::Volume { pool, .. } => DiskSource::Volume {
            pool: pool.clone(),
            volume: file,
        },
        DiskSource::Path(old) => {
            if !allow_backing.contains(old) {
                allow_backing.push(old.clone());
            }
            DiskSource::Path(image.to_path_buf())
        }
    };
    DiskConfig {
        source,
        format: Some(ImageFormat::Qcow2),
        allow_backing,
        ..like.clone()
    }
}

/// Commits `child` (a qcow2 overlay) into `base` (whose own chain may use `trust`'s backing
/// files), growing `base` first when the child is larger.
fn merge(
    child: &Path,
    base: &Path,
    format: ImageFormat,
    trust: &BackingTrust,
    progress: &Progress,
) -> Result<(), StorageError> {
    let top = Qcow2Image::open_shallow(child)?;
    let options = OpenOptions::writable()
        .detect(Detect::Known(format))
        .trust(trust.clone());
    let mut below = open_image(base, &options)?;
    if top.capacity() > below.capacity() {
        below
            .resize(top.capacity())
            .map_err(|e| ImageError::transfer(base, "resize", top.capacity(), e))?;
    }
    commit(&top, below.as_ref(), progress)?;
    Ok(())
}

/// Repairs the refcounts of qcow2 image `base`, into which a merge was interrupted, before
/// the merge starts again. Why: imago points the L1 table at a newly allocated L2 table
/// before that table's refcount leaves its cache, so a merge killed in between leaves `base`
/// with a referenced cluster whose stored refcount is 0 (and maybe leaked clusters); merging
/// again without the repair would hand that cluster out a second time. The repair rebuilds
/// the refcounts from the references (see [`super::qcow2_repair`]); a clean image is only
/// read.
fn repair_interrupted_merge(base: &Path) -> Result<(), StorageError> {
    let report = repair_image(base)?;
    if report.repaired {
        log::warn!(
            "repaired the qcow2 refcounts of {} after an interrupted snapshot merge ({})",
            base.display(),
            report.summary()
        );
    }
    Ok(())
}

/// Deletes image files (best effort: a file that cannot be removed stays, unused); returns the
/// ones removed.
fn remove_images(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for path in paths {
        if fs::remove_file(path).is_ok() {
            let _ = sync_dir(path);
            removed.push(path.clone());
        }
    }
    removed
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_utc_dates() {
        assert_eq!(format_timestamp(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_timestamp(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_timestamp(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn overlay_names_follow_the_base_and_avoid_taken_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().join("web1.qcow2");
        let first = free_overlay_name(&base, "s1").expect("name");
        assert_eq!(first, dir.path().join("web1.s1.qcow2"));
        fs::write(&first, b"x").expect("write");
        assert_eq!(
            free_overlay_name(&base, "s1").expect("name"),
            dir.path().join("web1.s1-2.qcow2")
        );
    }

    fn manager() -> (tempfile::TempDir, SnapshotManager) {
        let dir = tempfile::tempdir().expect("tempdir");
        let manager = SnapshotManager::new(Paths::under(dir.path()));
        (dir, manager)
    }

    #[test]
    fn names_come_from_the_metadata_files_and_skip_temporary_ones() {
        let (_dir, snaps) = manager();
        let folder = snaps.dir("web1");
        fs::create_dir_all(&folder).expect("mkdir");
        for file in ["s2.toml", "s1.toml", ".s3.toml.tmp.7", "notes.txt"] {
            fs::write(folder.join(file), b"not parsed").expect("write");
        }

        let names = snaps.names("web1").expect("names");

        assert_eq!(names, ["s1", "s2"]);
    }

    #[test]
    fn a_vm_without_a_metadata_folder_has_no_snapshots() {
        let (_dir, snaps) = manager();

        assert!(snaps.names("web1").expect("names").is_empty());
    }

    #[test]
    fn removing_metadata_deletes_the_folder_and_is_idempotent() {
        let (_dir, snaps) = manager();
        let folder = snaps.dir("web1");
        fs::create_dir_all(&folder).expect("mkdir");
        fs::write(folder.join("s1.toml"), b"x").expect("write");

        snaps.remove_metadata("web1").expect("remove");
        snaps.remove_metadata("web1").expect("remove again");

        assert!(!folder.exists());
    }

    #[test]
    fn a_new_disk_entry_keeps_pool_and_options() {
        let like: DiskConfig = "default/web1.qcow2,target=vdb,serial=S"
            .parse()
            .expect("disk");
        let disk = disk_for(&like, Path::new("/p/web1.s1.qcow2"));
        assert_eq!(
            disk.to_string(),
            "default/web1.s1.qcow2,target=vdb,serial=S,format=qcow2"
        );
    }

    #[test]
    fn an_overlay_on_a_disk_given_by_path_allows_its_old_image_as_backing_file() {
        let like: DiskConfig = "/srv/web1.raw,format=raw".parse().expect("disk");
        let disk = disk_for(&like, Path::new("/srv/web1.s1.qcow2"));
        assert_eq!(
            disk.to_string(),
            "/srv/web1.s1.qcow2,format=qcow2,allow-backing=/srv/web1.raw"
        );
    }
}
