//! Storage pools: directories of image files, defined in `<config>/pools/<name>.toml`
//! (`config::PoolStore`), with a virsh-like life cycle: define → start (active) → destroy
//! (inactive, nothing deleted) → undefine.
//!
//! Active/inactive is runtime state, kept in `<runtime>/pools/<name>.state` ("active" or
//! "inactive"). The runtime directory is emptied at host boot, and a pool without a state file is
//! active exactly when it is marked autostart, so autostart pools come up after a reboot without
//! any boot hook, and a `pool-destroy` lasts until the next boot or `pool-start`, as in virsh.
//!
//! The `default` pool (`<data>/images`, autostart) is defined on first use.

use super::StorageError;
use super::format::{BackingTrust, Detect, canonical};
use super::records::VolumeRecords;
use super::staging::{clean_stale, is_temporary};
use crate::config::{
    ConfigError, DEFAULT_POOL, DefinitionError, Paths, PoolConfig, PoolStore, default_pool_path,
    validate_name, validate_volume_name, write_atomic,
};
use serde::{Deserialize, Serialize};
use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// One pool as `pool-list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStatus {
    /// Pool name.
    pub name: String,
    /// Its directory.
    pub path: PathBuf,
    /// Whether volumes can be used and created now.
    pub active: bool,
    /// Active after host boot.
    pub autostart: bool,
}

/// One pool with its space figures, as `pool-info` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolInfo {
    /// Name, path, state, autostart.
    #[serde(flatten)]
    pub status: PoolStatus,
    /// Size of the file system holding the pool, bytes (0 when inactive or missing).
    pub capacity: u64,
    /// Bytes used on that file system.
    pub allocation: u64,
    /// Bytes still available to this user there.
    pub available: u64,
    /// Number of volumes in the pool (0 when inactive).
    pub volumes: usize,
}

/// One pool `autostart_pools` tried to start, and how that went.
pub type PoolStartResult = (String, Result<(), StorageError>);

/// What one entry of a pool directory is, as `vol-list` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    /// A regular file: a volume.
    File,
    /// A symbolic link: listed, never used.
    Symlink,
}

/// Pools and volumes on this host (volume operations are in `storage::volume`).
#[derive(Debug, Clone)]
pub struct StorageManager {
    paths: Paths,
    pools: PoolStore,
    /// Backing files outside the pools the user allowed for this manager's operations
    /// (`--allow-backing` on vol commands).
    allowed_backing: Vec<PathBuf>,
}

impl StorageManager {
    /// A manager over `paths` (nothing is created until used).
    pub fn new(paths: Paths) -> StorageManager {
        StorageManager {
            pools: PoolStore::new(paths.clone()),
            paths,
            allowed_backing: Vec::new(),
        }
    }

    /// The same manager, also following the backing files `files` (absolute paths outside the
    /// pools that the user allowed, `--allow-backing`) in every image chain it opens.
    pub fn allowing_backing(mut self, files: impl IntoIterator<Item = PathBuf>) -> StorageManager {
        self.allowed_backing.extend(files);
        self
    }

    /// The backing files an image chain may use: files directly in any defined pool's
    /// directory, the files this manager allows, and `extra` (a disk's `allow_backing`).
    pub fn trust(&self, extra: &[PathBuf]) -> BackingTrust {
        let dirs = self
            .pools
            .list()
            .into_iter()
            .flatten()
            .map(|pool| pool.path)
            .chain(std::iter::once(default_pool_path(&self.paths)));
        BackingTrust::new(dirs, self.allowed_backing.iter().chain(extra).cloned())
    }

    /// How the format of volume `volume` in pool directory `dir` is known: its record, else
    /// its name.
    pub fn volume_detect(&self, dir: &Path, volume: &str) -> Result<Detect, StorageError> {
        Ok(VolumeRecords::load(dir)?
            .format(volume)
            .map_or(Detect::ByName, Detect::Known))
    }

    /// The defined pool whose directory is `dir`, if any.
    pub fn pool_of_dir(&self, dir: &Path) -> Option<PoolConfig> {
        let wanted = canonical(dir);
        self.pools
            .list()
            .into_iter()
            .flatten()
            .find(|pool| canonical(&pool.path) == wanted)
    }

    /// The directory roots.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Defines the `default` pool (autostart, `<data>/images`, directory created) unless it is
    /// defined already.
    pub fn ensure_default(&self) -> Result<(), StorageError> {
        if self.pools.exists(DEFAULT_POOL) {
            return Ok(());
        }
        let path = default_pool_path(&self.paths);
        make_dir(&path)?;
        let pool = PoolConfig {
            name: DEFAULT_POOL.to_string(),
            path,
            autostart: true,
        };
        match self.pools.create(&pool) {
            // Another vmux defined it at the same moment: same result.
            Ok(()) | Err(ConfigError::PoolExists(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every pool, sorted by name; broken definition files appear as errors in place.
    pub fn list_pools(&self) -> Result<Vec<Result<PoolStatus, DefinitionError>>, StorageError> {
        self.ensure_default()?;
        Ok(self
            .pools
            .list()
            .into_iter()
            .map(|pool| pool.map(|p| self.status_of(p)))
            .collect())
    }

    /// Pool `name` and its state.
    pub fn pool(&self, name: &str) -> Result<PoolStatus, StorageError> {
        if name == DEFAULT_POOL {
            self.ensure_default()?;
        }
        Ok(self.status_of(self.pools.load(name)?))
    }

    /// Defines a new pool on directory `path` (absolute). With `build` the directory is created
    /// when missing. The pool starts inactive and without autostart, as in virsh.
    pub fn define_pool(
        &self,
        name: &str,
        path: &Path,
        build: bool,
    ) -> Result<PoolStatus, StorageError> {
        validate_name(name).map_err(StorageError::Invalid)?;
        self.ensure_default()?;
        let pool = PoolConfig {
            name: name.to_string(),
            path: path.to_path_buf(),
            autostart: false,
        };
        pool.validate().map_err(StorageError::Invalid)?;
        if self.pools.exists(name) {
            return Err(ConfigError::PoolExists(name.to_string()).into());
        }
        let wanted = super::format::canonical(path);
        for other in self.pools.list().into_iter().flatten() {
            if super::format::canonical(&other.path) == wanted {
                return Err(StorageError::PoolPathTaken {
                    path: path.to_path_buf(),
                    other: other.name,
                });
            }
        }
        if build {
            make_dir(path)?;
        }
        self.pools.create(&pool)?;
        self.set_active(name, false)?;
        Ok(self.status_of(pool))
    }

    /// Makes a pool active after checking its directory is there and writable.
    pub fn start_pool(&self, name: &str) -> Result<PoolStatus, StorageError> {
        let status = self.pool(name)?;
        check_dir(name, &status.path)?;
        self.set_active(name, true)?;
        Ok(PoolStatus {
            active: true,
            ..status
        })
    }

    /// Makes a pool inactive (`pool-destroy`): its volumes stay on disk, untouched, but cannot
    /// be used until `pool-start`.
    pub fn stop_pool(&self, name: &str) -> Result<PoolStatus, StorageError> {
        let status = self.pool(name)?;
        self.set_active(name, false)?;
        Ok(PoolStatus {
            active: false,
            ..status
        })
    }

    /// Sets or clears autostart.
    pub fn set_pool_autostart(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<PoolStatus, StorageError> {
        if name == DEFAULT_POOL {
            self.ensure_default()?;
        }
        let pool = self.pools.update(name, |pool| pool.autostart = enabled)?;
        Ok(self.status_of(pool))
    }

    /// Removes a pool's definition (its directory and volumes stay). Refused for an active pool
    /// and for `default`.
    pub fn undefine_pool(&self, name: &str) -> Result<(), StorageError> {
        let status = self.pool(name)?;
        if name == DEFAULT_POOL {
            return Err(StorageError::UndefineDefault(status.path));
        }
        if status.active {
            return Err(StorageError::PoolActive(name.to_string()));
        }
        self.pools.remove(name)?;
        let _ = fs::remove_file(self.state_file(name));
        Ok(())
    }

    /// Pool `name` with file system figures and its number of volumes.
    pub fn pool_info(&self, name: &str) -> Result<PoolInfo, StorageError> {
        let status = self.pool(name)?;
        let mut info = PoolInfo {
            status,
            capacity: 0,
            allocation: 0,
            available: 0,
            volumes: 0,
        };
        if info.status.active
            && let Ok(stat) = nix::sys::statvfs::statvfs(&info.status.path)
        {
            let frag = stat.fragment_size();
            info.capacity = stat.blocks() * frag;
            info.allocation = stat.blocks().saturating_sub(stat.blocks_free()) * frag;
            info.available = stat.blocks_available() * frag;
            info.volumes = self.volume_names(name)?.len();
        }
        Ok(info)
    }

    /// Starts every autostart pool that is not active (`vmux autostart-all`); one result per
    /// pool it tried.
    pub fn autostart_pools(&self) -> Result<Vec<PoolStartResult>, StorageError> {
        let mut results = Vec::new();
        for pool in self.list_pools()?.into_iter().flatten() {
            if pool.autostart && !pool.active {
                let result = self.start_pool(&pool.name).map(|_| ());
                results.push((pool.name, result));
            }
        }
        Ok(results)
    }

    /// The directory of pool `name`, which must be active, present and writable. Removes
    /// temporary files that killed vmux processes left there, and repairs the volumes whose
    /// in-place write such a process cut short ([`super::in_place::settle`]).
    pub fn active_dir(&self, name: &str) -> Result<PathBuf, StorageError> {
        let status = self.pool(name)?;
        if !status.active {
            return Err(StorageError::PoolInactive(name.to_string()));
        }
        check_dir(name, &status.path)?;
        clean_stale(&status.path);
        super::in_place::settle(&status.path);
        Ok(status.path)
    }

    /// The entries of active pool `name` with a valid volume name, sorted: regular files
    /// (volumes) and symbolic links (listed so the user sees them, never used). Hidden and
    /// temporary files, directories and special files are left out.
    pub fn pool_entries(&self, name: &str) -> Result<Vec<(String, EntryKind)>, StorageError> {
        let dir = self.active_dir(name)?;
        let entries = fs::read_dir(&dir).map_err(|source| StorageError::PoolIo {
            op: "list",
            path: dir.clone(),
            source,
        })?;
        let mut found: Vec<(String, EntryKind)> = entries
            .flatten()
            .filter_map(|e| {
                // `file_type` does not follow links.
                let kind = match e.file_type().ok()? {
                    t if t.is_file() => EntryKind::File,
                    t if t.is_symlink() => EntryKind::Symlink,
                    _ => return None,
                };
                Some((e.file_name().to_str()?.to_string(), kind))
            })
            .filter(|(n, _)| !is_temporary(n) && validate_volume_name(n).is_ok())
            .collect();
        found.sort();
        Ok(found)
    }

    /// The volume file names in active pool `name`, sorted: regular files only (symbolic links
    /// are never volumes).
    pub fn volume_names(&self, name: &str) -> Result<Vec<String>, StorageError> {
        Ok(self
            .pool_entries(name)?
            .into_iter()
            .filter(|(_, kind)| *kind == EntryKind::File)
            .map(|(name, _)| name)
            .collect())
    }

    /// Every volume in every active pool with how its format is known (for usage scans);
    /// pools that cannot be read are skipped.
    pub fn all_volumes(&self) -> Vec<(PathBuf, Detect)> {
        let Ok(pools) = self.list_pools() else {
            return Vec::new();
        };
        let mut volumes = Vec::new();
        for pool in pools.into_iter().flatten().filter(|p| p.active) {
            let records = VolumeRecords::load(&pool.path).unwrap_or_default();
            for name in self.volume_names(&pool.name).unwrap_or_default() {
                let detect = records.format(&name).map_or(Detect::ByName, Detect::Known);
                volumes.push((pool.path.join(&name), detect));
            }
        }
        volumes
    }

    fn status_of(&self, pool: PoolConfig) -> PoolStatus {
        let active = match fs::read_to_string(self.state_file(&pool.name)) {
            Ok(text) => text.trim() == "active",
            Err(_) => pool.autostart,
        };
        PoolStatus {
            name: pool.name,
            path: pool.path,
            active,
            autostart: pool.autostart,
        }
    }

    fn state_file(&self, name: &str) -> PathBuf {
        self.paths
            .runtime
            .join("pools")
            .join(format!("{name}.state"))
    }

    fn set_active(&self, name: &str, active: bool) -> Result<(), StorageError> {
        let file = self.state_file(name);
        let dir = file.parent().expect("state files live in <runtime>/pools");
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StorageError::PoolIo {
                op: "create",
                path: dir.to_path_buf(),
                source,
            })?;
        let text = if active { "active\n" } else { "inactive\n" };
        write_atomic(&file, text.as_bytes()).map_err(|source| StorageError::PoolIo {
            op: "write",
            path: file.clone(),
            source,
        })
    }
}

/// Creates `path` and its parents (mode 0755 for new directories, like `mkdir -p`).
fn make_dir(path: &Path) -> Result<(), StorageError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|source| StorageError::PoolIo {
            op: "create",
            path: path.to_path_buf(),
            source,
        })
}

/// Checks that pool `name`'s directory exists and this user can create files in it.
fn check_dir(name: &str, path: &Path) -> Result<(), StorageError> {
    match fs::metadata(path) {
        Err(_) => Err(StorageError::PoolDirMissing {
            pool: name.to_string(),
            path: path.to_path_buf(),
        }),
        Ok(meta) if !meta.is_dir() => Err(StorageError::PoolDirNotWritable {
            pool: name.to_string(),
            path: path.to_path_buf(),
        }),
        Ok(_) => {
            let access = nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK;
            nix::unistd::access(path, access).map_err(|_| StorageError::PoolDirNotWritable {
                pool: name.to_string(),
                path: path.to_path_buf(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager() -> (tempfile::TempDir, StorageManager) {
        let dir = tempfile::tempdir().expect("tempdir");
        let manager = StorageManager::new(Paths::under(dir.path()));
        (dir, manager)
    }

    #[test]
    fn the_default_pool_exists_and_is_active_on_first_use() {
        let (_dir, storage) = manager();
        let pools = storage.list_pools().expect("list");
        assert_eq!(pools.len(), 1);
        let default = pools[0].clone().expect("default pool");
        assert_eq!(default.name, "default");
        assert!(default.active && default.autostart);
        assert!(default.path.ends_with("data/images"));
        assert!(default.path.is_dir());
    }

    #[test]
    fn a_defined_pool_is_inactive_until_started() {
        let (dir, storage) = manager();
        let path = dir.path().join("fast");
        let pool = storage.define_pool("fast", &path, true).expect("define");
        assert!(!pool.active);
        let err = storage.active_dir("fast").expect_err("inactive");
        assert!(err.to_string().contains("vmux pool-start fast"), "{err}");
        assert!(storage.start_pool("fast").expect("start").active);
        assert_eq!(storage.active_dir("fast").expect("active"), path);
    }

    #[test]
    fn starting_a_pool_whose_directory_is_missing_names_it() {
        let (dir, storage) = manager();
        let path = dir.path().join("missing");
        storage.define_pool("p", &path, false).expect("define");
        let err = storage.start_pool("p").expect_err("must fail");
        assert!(err.to_string().contains("mkdir -p"), "{err}");
        assert!(!storage.pool("p").expect("pool").active);
    }

    #[test]
    fn without_a_state_file_autostart_decides() {
        let (dir, storage) = manager();
        storage
            .define_pool("p", &dir.path().join("p"), true)
            .expect("define");
        storage.set_pool_autostart("p", true).expect("autostart");
        // A host reboot empties the runtime directory.
        fs::remove_dir_all(storage.paths().runtime.join("pools")).expect("reboot");
        assert!(storage.pool("p").expect("pool").active);
    }

    #[test]
    fn an_active_pool_and_the_default_pool_cannot_be_undefined() {
        let (dir, storage) = manager();
        storage
            .define_pool("p", &dir.path().join("p"), true)
            .expect("define");
        storage.start_pool("p").expect("start");
        assert!(matches!(
            storage.undefine_pool("p"),
            Err(StorageError::PoolActive(_))
        ));
        storage.stop_pool("p").expect("stop");
        storage.undefine_pool("p").expect("undefine");
        assert!(dir.path().join("p").is_dir(), "the directory stays");
        assert!(matches!(
            storage.undefine_pool("default"),
            Err(StorageError::UndefineDefault(_))
        ));
    }

    #[test]
    fn two_pools_cannot_share_a_directory() {
        let (_dir, storage) = manager();
        let default = storage.pool("default").expect("default").path;
        let err = storage
            .define_pool("again", &default, false)
            .expect_err("must fail");
        assert!(err.to_string().contains("'default'"), "{err}");
    }

    #[test]
    fn a_relative_pool_path_is_refused() {
        let (_dir, storage) = manager();
        let err = storage
            .define_pool("p", Path::new("images"), false)
            .expect_err("must fail");
        assert!(err.to_string().contains("absolute"), "{err}");
    }

    #[test]
    fn symlinks_are_listed_as_entries_but_are_not_volumes() {
        let (_dir, storage) = manager();
        let dir = storage.active_dir("default").expect("dir");
        let outside = tempfile::tempdir().expect("outside");
        fs::write(outside.path().join("secret"), b"x").expect("write");
        fs::write(dir.join("a.raw"), [0u8; 512]).expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.join("link.raw"))
            .expect("symlink");

        let entries = storage.pool_entries("default").expect("entries");

        assert_eq!(
            entries,
            [
                ("a.raw".to_string(), EntryKind::File),
                ("link.raw".to_string(), EntryKind::Symlink)
            ]
        );
        assert_eq!(storage.volume_names("default").expect("names"), ["a.raw"]);
    }

    #[test]
    fn pool_info_counts_volumes_and_space() {
        let (_dir, storage) = manager();
        let dir = storage.active_dir("default").expect("dir");
        fs::write(dir.join("a.raw"), [0u8; 512]).expect("write");
        fs::write(dir.join(".hidden"), [0u8; 512]).expect("write");
        let info = storage.pool_info("default").expect("info");
        assert_eq!(info.volumes, 1);
        assert!(info.capacity > 0 && info.available <= info.capacity);
    }
}
