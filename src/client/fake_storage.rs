//! In-memory [`StorageHost`] for tests, benchmarks and screenshots: pools and volumes live in
//! maps, operations are instant, and they follow the real rules that the front ends must
//! explain (names unique and valid, a volume a VM uses cannot be deleted, shrinking needs
//! consent).
//!
//! Test hooks (`add_pool`, `add_volume`, `set_users`, `fail_next`, ...) let a test set the
//! scene or play the host misbehaving. The long operations report on their progress handle as
//! the real ones do (all at once), and a handle cancelled before they run makes them fail as
//! cancelled, changing nothing. tests/backend_contract.rs runs the same contracts against this
//! fake and the real [`super::LocalStorage`].

use super::fake_snapshots::FakeSnapshots;
use super::storage_api::StorageHost;
use super::storage_views::{
    ImageSource, ImportedVolume, PoolList, PoolView, StorageSnapshot, VolumeProblem, VolumeView,
};
use crate::bootimg::{BootFile, BootPlan, EntryKind};
use crate::config::{
    ConfigError, DiskConfig, DiskSource, format_size, validate_name, validate_volume_name,
};
use crate::progress::Progress;
use crate::storage::format::BackingInfo;
use crate::storage::qcow2_repair::CheckReport;
use crate::storage::snapshot::RevertReport;
use crate::storage::{
    ImageError, ImageFormat, PoolInfo, PoolStatus, SnapshotInfo, StorageError, VolumeInfo,
    VolumeSpec,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// What a fresh qcow2 image occupies (header, tables).
const QCOW2_EMPTY: u64 = 196 << 10;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct FakePool {
    path: PathBuf,
    active: bool,
    autostart: bool,
    capacity: u64,
    available: u64,
    volumes: BTreeMap<String, Result<VolumeInfo, VolumeProblem>>,
}

#[derive(Default)]
struct StorageState {
    pools: BTreeMap<String, FakePool>,
    broken: Vec<String>,
    failures: HashMap<&'static str, String>,
    snapshots: FakeSnapshots,
    /// Why no image boots, when a test says so.
    unbootable: Option<String>,
}

/// Pools, volumes and snapshots in memory. Starts with the `default` pool (active,
/// autostart, empty). Clones share the same state.
#[derive(Clone)]
pub struct FakeStorage {
    state: Arc<Mutex<StorageState>>,
}

impl Default for FakeStorage {
    fn default() -> FakeStorage {
        FakeStorage::new()
    }
}

/// Walks `bytes` on `progress` at once, as a long operation would chunk by chunk; fails as
/// cancelled (before the caller changes anything) when the handle is cancelled.
fn walk(progress: &Progress, bytes: u64) -> Result<(), StorageError> {
    progress.begin(bytes)?;
    progress.advance(bytes)?;
    Ok(())
}

fn invalid(message: impl Into<String>) -> StorageError {
    StorageError::Invalid(message.into())
}

impl FakeStorage {
    /// The `default` pool at `/var/lib/vmux/images` on a 100G file system with 60G free.
    pub fn new() -> FakeStorage {
        let storage = FakeStorage {
            state: Arc::new(Mutex::new(StorageState::default())),
        };
        storage.add_pool("default", "/var/lib/vmux/images", true);
        lock(&storage.state)
            .pools
            .entry("default".into())
            .and_modify(|p| p.autostart = true);
        storage
    }

    /// Adds pool `name` on `path` (a 100G file system with 60G free), active or not.
    pub fn add_pool(&self, name: &str, path: &str, active: bool) {
        lock(&self.state).pools.insert(
            name.to_string(),
            FakePool {
                path: PathBuf::from(path),
                active,
                autostart: false,
                capacity: 100 << 30,
                available: 60 << 30,
                volumes: BTreeMap::new(),
            },
        );
    }

    /// Adds volume `name` to `pool`; the format comes from the name (qcow2 when it says none).
    pub fn add_volume(&self, pool: &str, name: &str, capacity: u64, allocation: u64) {
        let mut state = lock(&self.state);
        let Some(p) = state.pools.get_mut(pool) else {
            return;
        };
        let format = ImageFormat::from_name(Path::new(name)).unwrap_or(ImageFormat::Qcow2);
        let info = new_info(pool, name, &p.path, format, capacity, allocation);
        p.volumes.insert(name.to_string(), Ok(info));
    }

    /// Adds a file vmux cannot read to `pool`, with the reason.
    pub fn add_unreadable(&self, pool: &str, name: &str, reason: &str) {
        if let Some(p) = lock(&self.state).pools.get_mut(pool) {
            p.volumes.insert(
                name.to_string(),
                Err(VolumeProblem::Unreadable(reason.to_string())),
            );
        }
    }

    /// Records VMs using a volume, and which of them run.
    pub fn set_users(&self, pool: &str, name: &str, used_by: &[&str], running: &[&str]) {
        self.with_volume(pool, name, |v| {
            v.used_by = used_by.iter().map(|s| s.to_string()).collect();
            v.running = running.iter().map(|s| s.to_string()).collect();
        });
    }

    /// Makes `name` a qcow2 overlay of `backing` (in the same pool).
    pub fn set_backing(&self, pool: &str, name: &str, backing: &str) {
        let mut state = lock(&self.state);
        let Some(p) = state.pools.get_mut(pool) else {
            return;
        };
        let path = p.path.join(backing);
        let overlay = p.path.join(name);
        if let Some(Ok(v)) = p.volumes.get_mut(name) {
            v.backing = Some(BackingInfo {
                name: backing.to_string(),
                path,
                format: ImageFormat::from_name(Path::new(backing)),
            });
        }
        if let Some(Ok(b)) = p.volumes.get_mut(backing) {
            b.backing_of.push(overlay);
        }
    }

    /// Defines VM `vm` with writable disks `targets` (`vda`, ...), so snapshots of it can be
    /// taken.
    pub fn add_vm(&self, vm: &str, targets: &[&str]) {
        lock(&self.state).snapshots.add_vm(vm, targets);
    }

    /// Marks VM `vm` running or not (a running VM's snapshot switches its disks live).
    pub fn set_running(&self, vm: &str, running: bool) {
        lock(&self.state).snapshots.set_running(vm, running);
    }

    /// With `Some(reason)` no image can be booted, for that reason; `None` undoes it.
    pub fn set_unbootable(&self, reason: Option<&str>) {
        lock(&self.state).unbootable = reason.map(str::to_string);
    }

    /// Adds a broken pool definition, shown as an error row.
    pub fn add_broken(&self, message: &str) {
        lock(&self.state).broken.push(message.to_string());
    }

    /// The next call of operation `op` (`"create"`, `"clone"`, `"delete"`, ...) fails with
    /// `message`.
    pub fn fail_next(&self, op: &'static str, message: &str) {
        lock(&self.state).failures.insert(op, message.to_string());
    }

    /// The volume, when it exists and is readable.
    pub fn volume(&self, pool: &str, name: &str) -> Option<VolumeInfo> {
        lock(&self.state)
            .pools
            .get(pool)?
            .volumes
            .get(name)?
            .clone()
            .ok()
    }

    fn with_volume(&self, pool: &str, name: &str, f: impl FnOnce(&mut VolumeInfo)) {
        if let Some(Ok(v)) = lock(&self.state)
            .pools
            .get_mut(pool)
            .and_then(|p| p.volumes.get_mut(name))
        {
            f(v);
        }
    }

    fn failure(&self, op: &'static str) -> Result<(), StorageError> {
        match lock(&self.state).failures.remove(op) {
            Some(message) => Err(invalid(message)),
            None => Ok(()),
        }
    }

    /// Runs `f` on active pool `pool`.
    fn in_pool<T>(
        &self,
        op: &'static str,
        pool: &str,
        f: impl FnOnce(&mut FakePool) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.failure(op)?;
        let mut state = lock(&self.state);
        let p = state
            .pools
            .get_mut(pool)
            .ok_or_else(|| unknown_pool(pool))?;
        if !p.active {
            return Err(StorageError::PoolInactive(pool.to_string()));
        }
        f(p)
    }
}

fn new_info(
    pool: &str,
    name: &str,
    dir: &Path,
    format: ImageFormat,
    capacity: u64,
    allocation: u64,
) -> VolumeInfo {
    VolumeInfo {
        pool: pool.to_string(),
        name: name.to_string(),
        path: dir.join(name),
        format,
        capacity,
        allocation,
        backing: None,
        backing_refused: None,
        cluster_size: (format == ImageFormat::Qcow2).then_some(64 << 10),
        internal_snapshots: 0,
        used_by: Vec::new(),
        running: Vec::new(),
        backing_of: Vec::new(),
    }
}

fn existing<'a>(
    p: &'a mut FakePool,
    pool: &str,
    name: &str,
) -> Result<&'a mut VolumeInfo, StorageError> {
    match p.volumes.get_mut(name) {
        Some(Ok(v)) => Ok(v),
        Some(Err(problem)) => Err(invalid(problem.to_string())),
        None => Err(StorageError::UnknownVolume {
            pool: pool.to_string(),
            volume: name.to_string(),
        }),
    }
}

fn free_name(p: &FakePool, pool: &str, name: &str) -> Result<(), StorageError> {
    validate_volume_name(name).map_err(invalid)?;
    if p.volumes.contains_key(name) {
        return Err(StorageError::VolumeExists {
            pool: pool.to_string(),
            volume: name.to_string(),
        });
    }
    Ok(())
}

fn format_of(
    name: &str,
    asked: Option<ImageFormat>,
    fallback: ImageFormat,
) -> Result<ImageFormat, StorageError> {
    match (ImageFormat::from_name(Path::new(name)), asked) {
        (Some(by_name), Some(asked)) if by_name != asked => Err(invalid(format!(
            "'{name}' names a {by_name} file but the format asked for is {asked}; rename it or change the format"
        ))),
        (Some(by_name), _) => Ok(by_name),
        (None, Some(asked)) => Ok(asked),
        (None, None) => Ok(fallback),
    }
}

fn not_running(v: &VolumeInfo) -> Result<(), StorageError> {
    match v.running.first() {
        Some(vm) => Err(invalid(format!(
            "volume {}/{} is in use by running VM '{vm}'; shut it down first with `vmux shutdown {vm}`",
            v.pool, v.name
        ))),
        None => Ok(()),
    }
}

fn pool_status(name: &str, p: &FakePool) -> PoolStatus {
    PoolStatus {
        name: name.to_string(),
        path: p.path.clone(),
        active: p.active,
        autostart: p.autostart,
    }
}

fn pool_info(name: &str, p: &FakePool) -> PoolInfo {
    PoolInfo {
        status: pool_status(name, p),
        capacity: if p.active { p.capacity } else { 0 },
        allocation: if p.active {
            p.capacity - p.available
        } else {
            0
        },
        available: if p.active { p.available } else { 0 },
        volumes: if p.active { p.volumes.len() } else { 0 },
    }
}

fn volume_views(p: &FakePool) -> Vec<VolumeView> {
    p.volumes
        .iter()
        .map(|(name, info)| VolumeView {
            name: name.clone(),
            info: info.clone(),
        })
        .collect()
}

fn unknown_pool(pool: &str) -> StorageError {
    StorageError::Config(ConfigError::UnknownPool(pool.to_string()))
}

impl StorageHost for FakeStorage {
    fn snapshot(&self) -> Result<StorageSnapshot, StorageError> {
        self.failure("snapshot")?;
        let state = lock(&self.state);
        let pools = state
            .pools
            .iter()
            .map(|(name, p)| PoolView {
                info: pool_info(name, p),
                volumes: if p.active {
                    volume_views(p)
                } else {
                    Vec::new()
                },
                error: None,
            })
            .collect();
        Ok(StorageSnapshot {
            pools,
            broken: state.broken.clone(),
        })
    }

    fn allowing_backing(&self, _files: &[PathBuf]) -> Arc<dyn StorageHost> {
        // The fake follows no backing files, so there is nothing more to allow.
        Arc::new(self.clone())
    }

    fn list_pools(&self) -> Result<PoolList, StorageError> {
        self.failure("pool-list")?;
        let state = lock(&self.state);
        Ok(PoolList {
            pools: state
                .pools
                .iter()
                .map(|(name, p)| pool_status(name, p))
                .collect(),
            broken: state.broken.clone(),
        })
    }

    fn define_pool(
        &self,
        pool: &str,
        target: &Path,
        build: bool,
    ) -> Result<PoolStatus, StorageError> {
        self.failure("pool-define")?;
        validate_name(pool).map_err(StorageError::Invalid)?;
        if !target.is_absolute() {
            return Err(invalid(format!(
                "the pool directory {} must be an absolute path",
                target.display()
            )));
        }
        let mut state = lock(&self.state);
        if state.pools.contains_key(pool) {
            return Err(ConfigError::PoolExists(pool.to_string()).into());
        }
        if let Some((other, _)) = state.pools.iter().find(|(_, p)| p.path == target) {
            return Err(StorageError::PoolPathTaken {
                path: target.to_path_buf(),
                other: other.clone(),
            });
        }
        // The fake's directories all exist; `build` has nothing to create.
        let _ = build;
        let p = FakePool {
            path: target.to_path_buf(),
            active: false,
            autostart: false,
            capacity: 100 << 30,
            available: 60 << 30,
            volumes: BTreeMap::new(),
        };
        let status = pool_status(pool, &p);
        state.pools.insert(pool.to_string(), p);
        Ok(status)
    }

    fn pool_info(&self, pool: &str) -> Result<PoolInfo, StorageError> {
        self.failure("pool-info")?;
        let state = lock(&self.state);
        let p = state.pools.get(pool).ok_or_else(|| unknown_pool(pool))?;
        Ok(pool_info(pool, p))
    }

    fn undefine_pool(&self, pool: &str) -> Result<(), StorageError> {
        self.failure("pool-undefine")?;
        let mut state = lock(&self.state);
        let p = state.pools.get(pool).ok_or_else(|| unknown_pool(pool))?;
        if pool == crate::config::DEFAULT_POOL {
            return Err(StorageError::UndefineDefault(p.path.clone()));
        }
        if p.active {
            return Err(StorageError::PoolActive(pool.to_string()));
        }
        state.pools.remove(pool);
        Ok(())
    }

    fn list_volumes(&self, pool: &str) -> Result<Vec<VolumeView>, StorageError> {
        self.in_pool("vol-list", pool, |p| Ok(volume_views(p)))
    }

    fn volume_info(&self, pool: &str, volume: &str) -> Result<VolumeInfo, StorageError> {
        self.in_pool("vol-info", pool, |p| existing(p, pool, volume).cloned())
    }

    fn grow_volume_allocated(
        &self,
        pool: &str,
        volume: &str,
        capacity: u64,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.in_pool("resize", pool, |p| {
            let available = p.available;
            let v = existing(p, pool, volume)?;
            not_running(v)?;
            let capacity = capacity.div_ceil(512) * 512;
            if capacity < v.capacity {
                return Err(invalid(format!(
                    "{pool}/{volume} is {} and {} is smaller; --preallocate only grows a volume",
                    format_size(v.capacity),
                    format_size(capacity)
                )));
            }
            let grown = capacity - v.capacity;
            if grown > available {
                return Err(invalid(format!(
                    "preallocating {} needs that much free space; the pool has {}",
                    format_size(grown),
                    format_size(available)
                )));
            }
            walk(progress, grown)?;
            v.capacity = capacity;
            v.allocation += grown;
            let info = v.clone();
            p.available -= grown;
            progress.finish();
            Ok(info)
        })
    }

    fn download_volume(
        &self,
        pool: &str,
        volume: &str,
        dest: &Path,
        format: Option<ImageFormat>,
        force: bool,
        progress: &Progress,
    ) -> Result<ImageFormat, StorageError> {
        self.in_pool("download", pool, |p| {
            let v = existing(p, pool, volume)?;
            let name = dest.file_name().map(|n| n.to_string_lossy().into_owned());
            let format = format_of(name.as_deref().unwrap_or(""), format, v.format)?;
            if !force && dest.exists() {
                return Err(StorageError::DestinationExists(dest.to_path_buf()));
            }
            // The fake holds no data, so there is nothing to write to `dest`.
            walk(progress, v.capacity)?;
            progress.finish();
            Ok(format)
        })
    }

    fn set_volume_format(
        &self,
        pool: &str,
        volume: &str,
        format: ImageFormat,
    ) -> Result<VolumeInfo, StorageError> {
        self.in_pool("set-format", pool, |p| {
            let v = existing(p, pool, volume)?;
            v.format = format;
            v.cluster_size = (format == ImageFormat::Qcow2).then_some(64 << 10);
            Ok(v.clone())
        })
    }

    fn check_volume(
        &self,
        pool: &str,
        volume: &str,
        repair: bool,
    ) -> Result<CheckReport, StorageError> {
        self.in_pool("check", pool, |p| {
            let v = existing(p, pool, volume)?;
            if repair && let Some(vm) = v.running.first() {
                return Err(StorageError::InUseByRunningVm {
                    volume: format!("{pool}/{volume}"),
                    vm: vm.clone(),
                });
            }
            if v.format == ImageFormat::Raw {
                return Err(invalid(format!(
                    "{pool}/{volume} is a raw image: it has no metadata to check (vol-check checks qcow2 volumes)"
                )));
            }
            let cluster = v.cluster_size.unwrap_or(64 << 10);
            Ok(CheckReport {
                path: v.path.clone(),
                allocated_clusters: v.allocation.div_ceil(cluster),
                file_clusters: v.allocation.div_ceil(cluster),
                ..CheckReport::default()
            })
        })
    }

    fn volume_holders(&self, pool: &str, volume: &str) -> Vec<(String, String)> {
        // The fake knows which VMs run with a volume, not as which disk: it names it vda.
        self.volume(pool, volume)
            .map(|v| {
                v.running
                    .iter()
                    .map(|vm| (vm.clone(), "vda".to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn create_snapshot(&self, vm: &str, name: &str) -> Result<SnapshotInfo, StorageError> {
        self.failure("snapshot-create")?;
        lock(&self.state).snapshots.create(vm, name)
    }

    fn list_snapshots(&self, vm: &str) -> Result<Vec<SnapshotInfo>, StorageError> {
        self.failure("snapshot-list")?;
        lock(&self.state).snapshots.list(vm)
    }

    fn revert_snapshot(&self, vm: &str, name: &str) -> Result<RevertReport, StorageError> {
        self.failure("snapshot-revert")?;
        lock(&self.state).snapshots.revert(vm, name)
    }

    fn delete_snapshot(
        &self,
        vm: &str,
        name: &str,
        progress: &Progress,
    ) -> Result<(), StorageError> {
        self.failure("snapshot-delete")?;
        walk(progress, 0)?;
        lock(&self.state).snapshots.delete(vm, name)?;
        progress.finish();
        Ok(())
    }

    fn create_volume(
        &self,
        pool: &str,
        volume: &str,
        spec: VolumeSpec,
    ) -> Result<VolumeInfo, StorageError> {
        self.in_pool("create", pool, |p| {
            free_name(p, pool, volume)?;
            let format = format_of(volume, spec.format, ImageFormat::Qcow2)?;
            let capacity = spec.capacity.div_ceil(512) * 512;
            if capacity == 0 {
                return Err(invalid("a volume needs a size above zero, like 10G"));
            }
            if spec.preallocate && capacity > p.available {
                return Err(invalid(format!(
                    "preallocating {} needs that much free space; the pool has {}",
                    format_size(capacity),
                    format_size(p.available)
                )));
            }
            let allocation = match (spec.preallocate, format) {
                (true, _) => capacity,
                (false, ImageFormat::Qcow2) => QCOW2_EMPTY,
                (false, ImageFormat::Raw) => 0,
            };
            p.available = p.available.saturating_sub(allocation);
            let info = new_info(pool, volume, &p.path, format, capacity, allocation);
            p.volumes.insert(volume.to_string(), Ok(info.clone()));
            Ok(info)
        })
    }

    fn resize_volume(
        &self,
        pool: &str,
        volume: &str,
        capacity: u64,
        allow_shrink: bool,
    ) -> Result<VolumeInfo, StorageError> {
        self.in_pool("resize", pool, |p| {
            let v = existing(p, pool, volume)?;
            not_running(v)?;
            let capacity = capacity.div_ceil(512) * 512;
            if capacity < v.capacity && !allow_shrink {
                return Err(invalid(format!(
                    "{pool}/{volume} is {} and {} is smaller; shrinking cuts the end of the disk, so shrink the guest's file system and partitions first and pass --shrink",
                    format_size(v.capacity),
                    format_size(capacity)
                )));
            }
            if capacity < v.allocation.min(v.capacity) {
                return Err(StorageError::ShrinkCutsData {
                    volume: format!("{pool}/{volume}"),
                    requested: capacity,
                    data_end: v.allocation,
                });
            }
            v.capacity = capacity;
            Ok(v.clone())
        })
    }

    fn clone_volume(
        &self,
        pool: &str,
        source: &str,
        clone: &str,
        linked: bool,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.in_pool("clone", pool, |p| {
            let src = existing(p, pool, source)?.clone();
            free_name(p, pool, clone)?;
            walk(progress, if linked { 0 } else { src.capacity })?;
            let mut info = if linked {
                if ImageFormat::from_name(Path::new(clone)) != Some(ImageFormat::Qcow2) {
                    return Err(invalid(
                        "a linked clone is a qcow2 overlay; name it with .qcow2",
                    ));
                }
                let mut info = new_info(
                    pool,
                    clone,
                    &p.path,
                    ImageFormat::Qcow2,
                    src.capacity,
                    QCOW2_EMPTY,
                );
                info.backing = Some(BackingInfo {
                    name: source.to_string(),
                    path: src.path.clone(),
                    format: Some(src.format),
                });
                info
            } else {
                let format = format_of(clone, None, src.format)?;
                new_info(pool, clone, &p.path, format, src.capacity, src.allocation)
            };
            if linked {
                existing(p, pool, source)?
                    .backing_of
                    .push(info.path.clone());
            }
            info.used_by.clear();
            p.volumes.insert(clone.to_string(), Ok(info.clone()));
            progress.finish();
            Ok(info)
        })
    }

    fn convert_volume(
        &self,
        pool: &str,
        source: &str,
        dest: &str,
        format: Option<ImageFormat>,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.in_pool("convert", pool, |p| {
            let src = existing(p, pool, source)?.clone();
            free_name(p, pool, dest)?;
            let format = format_of(dest, format, src.format)?;
            walk(progress, src.capacity)?;
            let info = new_info(pool, dest, &p.path, format, src.capacity, src.allocation);
            p.volumes.insert(dest.to_string(), Ok(info.clone()));
            progress.finish();
            Ok(info)
        })
    }

    fn import_image(
        &self,
        pool: &str,
        volume: &str,
        source: &ImageSource,
        format: Option<ImageFormat>,
        linked: bool,
        progress: &Progress,
    ) -> Result<ImportedVolume, StorageError> {
        if let (ImageSource::Volume { .. }, false) = (source, linked) {
            return Err(invalid(
                "a pool volume is used as it is or linked; there is nothing to copy",
            ));
        }
        let base = match source {
            ImageSource::Volume {
                pool: from,
                volume: base,
            } => {
                let mut state = lock(&self.state);
                let p = state
                    .pools
                    .get_mut(from)
                    .ok_or_else(|| invalid(format!("no pool {from}")))?;
                existing(p, from, base)?.clone()
            }
            ImageSource::File(file) => new_info(
                pool,
                "download",
                file.parent().unwrap_or(Path::new("/")),
                format
                    .or_else(|| ImageFormat::from_name(file))
                    .unwrap_or(ImageFormat::Qcow2),
                2 << 30,
                400 << 20,
            ),
        };
        // A linked file import names its base volume after the file, with the format's
        // extension when the name does not say it.
        let base_name = match source {
            ImageSource::File(file) if linked => file.file_name().map(|name| {
                let name = Path::new(name);
                match ImageFormat::from_name(name) {
                    Some(said) if said == base.format => name.to_string_lossy().into_owned(),
                    _ => format!(
                        "{}.{}",
                        name.file_stem().unwrap_or_default().to_string_lossy(),
                        base.format
                    ),
                }
            }),
            _ => None,
        };
        self.in_pool("import", pool, |p| {
            free_name(p, pool, volume)?;
            let format = if linked {
                ImageFormat::Qcow2
            } else {
                ImageFormat::from_name(Path::new(volume)).unwrap_or(base.format)
            };
            // A file is copied, as a linked one's base volume too (the fake keeps no base).
            let copied = !linked || matches!(source, ImageSource::File(_));
            walk(progress, if copied { base.capacity } else { 0 })?;
            let allocation = if linked { QCOW2_EMPTY } else { base.allocation };
            let mut info = new_info(pool, volume, &p.path, format, base.capacity, allocation);
            if linked {
                info.backing = Some(BackingInfo {
                    name: base.path.display().to_string(),
                    path: base.path.clone(),
                    format: Some(base.format),
                });
            }
            p.volumes.insert(volume.to_string(), Ok(info.clone()));
            progress.finish();
            Ok(ImportedVolume {
                volume: info,
                base: base_name,
                reused_base: false,
            })
        })
    }

    fn boot_plan(&self, disk: &DiskConfig) -> Result<BootPlan, StorageError> {
        self.disk_path(disk)?;
        match &lock(&self.state).unbootable {
            Some(reason) => Err(invalid(reason.clone())),
            None => Ok(debian_plan()),
        }
    }

    fn disk_path(&self, disk: &DiskConfig) -> Result<PathBuf, StorageError> {
        match &disk.source {
            DiskSource::Volume { pool, volume } => self.in_pool("disk-path", pool, |p| {
                Ok(existing(p, pool, volume)?.path.clone())
            }),
            DiskSource::Path(path) => Ok(path.clone()),
        }
    }

    fn image_file_format(&self, file: &Path) -> Result<ImageFormat, StorageError> {
        ImageFormat::from_name(file).ok_or_else(|| {
            StorageError::Image(ImageError::FormatUnknown {
                path: file.to_path_buf(),
            })
        })
    }

    fn cloud_init_seed(&self, vm: &str) -> (PathBuf, Option<String>) {
        (PathBuf::from(format!("/state/{vm}/cidata.img")), None)
    }

    fn boot_entry(&self, pool: &str, volume: &str) -> Result<String, String> {
        match self.volume(pool, volume) {
            Some(_) => self
                .boot_plan(&DiskConfig::volume(pool, volume))
                .map(|plan| plan.describe())
                .map_err(|e| e.to_string()),
            None => Err(format!("no volume {pool}/{volume}")),
        }
    }

    fn upload_volume(
        &self,
        pool: &str,
        volume: &str,
        source: &Path,
        format: Option<ImageFormat>,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.in_pool("upload", pool, |p| {
            // The fake holds no data: the volume keeps its format, whatever the file's is.
            let _ = format;
            if !source.is_absolute() {
                return Err(invalid(format!(
                    "{} must be an absolute path",
                    source.display()
                )));
            }
            let v = existing(p, pool, volume)?;
            not_running(v)?;
            walk(progress, v.capacity)?;
            v.backing = None;
            progress.finish();
            Ok(v.clone())
        })
    }

    fn wipe_volume(
        &self,
        pool: &str,
        volume: &str,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        self.in_pool("wipe", pool, |p| {
            let v = existing(p, pool, volume)?;
            not_running(v)?;
            walk(progress, v.capacity)?;
            v.allocation = match v.format {
                ImageFormat::Qcow2 => QCOW2_EMPTY,
                ImageFormat::Raw => v.allocation,
            };
            v.backing = None;
            progress.finish();
            Ok(v.clone())
        })
    }

    fn delete_volume(&self, pool: &str, volume: &str) -> Result<(), StorageError> {
        self.in_pool("delete", pool, |p| {
            let v = existing(p, pool, volume)?;
            if !v.used_by.is_empty() {
                return Err(StorageError::UsedByVm {
                    volume: format!("{pool}/{volume}"),
                    vms: v.used_by.clone(),
                });
            }
            if !v.backing_of.is_empty() {
                return Err(StorageError::BackingOf {
                    volume: format!("{pool}/{volume}"),
                    overlays: v.backing_of.clone(),
                });
            }
            let freed = v.allocation;
            p.available += freed;
            p.volumes.remove(volume);
            Ok(())
        })
    }

    fn start_pool(&self, pool: &str) -> Result<(), StorageError> {
        self.failure("pool-start")?;
        let mut state = lock(&self.state);
        let p = state
            .pools
            .get_mut(pool)
            .ok_or_else(|| unknown_pool(pool))?;
        p.active = true;
        Ok(())
    }

    fn stop_pool(&self, pool: &str) -> Result<(), StorageError> {
        self.failure("pool-stop")?;
        let mut state = lock(&self.state);
        let p = state
            .pools
            .get_mut(pool)
            .ok_or_else(|| unknown_pool(pool))?;
        p.active = false;
        Ok(())
    }

    fn set_pool_autostart(&self, pool: &str, enabled: bool) -> Result<(), StorageError> {
        self.failure("pool-autostart")?;
        let mut state = lock(&self.state);
        let p = state
            .pools
            .get_mut(pool)
            .ok_or_else(|| unknown_pool(pool))?;
        p.autostart = enabled;
        Ok(())
    }
}

/// The boot plan every fake image has: Debian's grub entry.
pub fn debian_plan() -> BootPlan {
    BootPlan {
        kind: EntryKind::Grub,
        title: "Debian GNU/Linux".into(),
        entry_id: None,
        kernel: BootFile {
            partition: 1,
            path: "/boot/vmlinuz-6.1.0-28-amd64".into(),
            resolved: "/boot/vmlinuz-6.1.0-28-amd64".into(),
            size: 8 << 20,
        },
        initrds: Vec::new(),
        cmdline: "root=UUID=1 ro console=ttyS0".into(),
        volumes: Vec::new(),
        notes: Vec::new(),
    }
}
