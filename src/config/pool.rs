//! `PoolConfig`: one storage pool's definition (`pools/<name>.toml`), and `PoolStore`, which
//! reads and writes those files atomically like the VM definition store.
//!
//! A pool is a directory of image files. The `default` pool (`<data>/images`) is defined by
//! `storage::PoolManager` on first use; other pools come from `vmux pool-define-as`.
//!
//! ```toml
//! name = "fast"
//! path = "/srv/vm-images"
//! autostart = true
//! ```
//!
//! Whether a pool is *active* is runtime state, not definition: see `storage::pool`.
//!
//! Changes happen under an `flock` on `pools/.lock`, held across a read-modify-write
//! ([`PoolStore::update`]), so concurrent commands never lose each other's changes.

use super::atomic::write_atomic;
use super::paths::Paths;
use super::{ConfigError, DefinitionError, validate_name};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

/// Name of the pool every vmux has.
pub const DEFAULT_POOL: &str = "default";

/// One storage pool definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Unique name: `[A-Za-z0-9._-]`, at most 64 characters.
    pub name: String,
    /// The pool's directory (absolute).
    pub path: PathBuf,
    /// Whether the pool is active after host boot without a `pool-start`.
    #[serde(default)]
    pub autostart: bool,
}

impl PoolConfig {
    /// Checks name and path (no host access).
    pub fn validate(&self) -> Result<(), String> {
        validate_name(&self.name)?;
        if !self.path.is_absolute() {
            return Err(format!(
                "pool path {} must be absolute; write it like /srv/vm-images",
                self.path.display()
            ));
        }
        Ok(())
    }
}

/// The directory of pool definitions.
pub fn pools_dir(paths: &Paths) -> PathBuf {
    paths.config.join("pools")
}

/// The definition file of pool `name`.
pub fn pool_file(paths: &Paths, name: &str) -> PathBuf {
    pools_dir(paths).join(format!("{name}.toml"))
}

/// The directory of the `default` pool.
pub fn default_pool_path(paths: &Paths) -> PathBuf {
    paths.data.join("images")
}

/// Reads and writes pool definitions.
#[derive(Debug, Clone)]
pub struct PoolStore {
    paths: Paths,
}

impl PoolStore {
    /// A store over `paths`.
    pub fn new(paths: Paths) -> PoolStore {
        PoolStore { paths }
    }

    /// The directory roots.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Whether pool `name` is defined.
    pub fn exists(&self, name: &str) -> bool {
        pool_file(&self.paths, name).exists()
    }

    /// Loads pool `name`.
    pub fn load(&self, name: &str) -> Result<PoolConfig, ConfigError> {
        validate_name(name).map_err(ConfigError::Invalid)?;
        let path = pool_file(&self.paths, name);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::UnknownPool(name.to_string()));
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Ok(parse_pool(&path, &text, Some(name))?)
    }

    /// Every pool definition, sorted by name; unusable files are returned as errors in place.
    pub fn list(&self) -> Vec<Result<PoolConfig, DefinitionError>> {
        let Ok(entries) = fs::read_dir(pools_dir(&self.paths)) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
                let text = fs::read_to_string(&path).map_err(|e| DefinitionError {
                    path: path.clone(),
                    line: None,
                    reason: e.to_string(),
                })?;
                parse_pool(&path, &text, stem.as_deref())
            })
            .collect()
    }

    /// Writes a new definition; refuses an existing name.
    pub fn create(&self, pool: &PoolConfig) -> Result<(), ConfigError> {
        let _lock = self.lock()?;
        if self.exists(&pool.name) {
            return Err(ConfigError::PoolExists(pool.name.clone()));
        }
        self.write(pool)
    }

    /// Validates and writes (replaces) a definition atomically.
    pub fn save(&self, pool: &PoolConfig) -> Result<(), ConfigError> {
        let _lock = self.lock()?;
        self.write(pool)
    }

    /// Loads pool `name`, lets `change` modify it and saves it, all under the lock.
    pub fn update(
        &self,
        name: &str,
        change: impl FnOnce(&mut PoolConfig),
    ) -> Result<PoolConfig, ConfigError> {
        let _lock = self.lock()?;
        let mut pool = self.load(name)?;
        change(&mut pool);
        self.write(&pool)?;
        Ok(pool)
    }

    /// Waits for and takes the lock on the pool definitions.
    fn lock(&self) -> Result<Flock<File>, ConfigError> {
        let dir = pools_dir(&self.paths);
        fs::create_dir_all(&dir).map_err(|source| ConfigError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(".lock");
        let io_error = |source| ConfigError::Write {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error)?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_error(std::io::Error::from(errno)))
    }

    /// Writes `pool` (the caller holds the lock).
    fn write(&self, pool: &PoolConfig) -> Result<(), ConfigError> {
        pool.validate().map_err(ConfigError::Invalid)?;
        let path = pool_file(&self.paths, &pool.name);
        let text = toml::to_string(pool).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        write_atomic(&path, text.as_bytes()).map_err(|source| ConfigError::Write { path, source })
    }

    /// Deletes the definition of `name` (never the pool's directory).
    pub fn remove(&self, name: &str) -> Result<(), ConfigError> {
        let _lock = self.lock()?;
        let path = pool_file(&self.paths, name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ConfigError::UnknownPool(name.to_string()))
            }
            Err(source) => Err(ConfigError::Write { path, source }),
        }
    }
}

/// Parses and validates pool definition text; `expected_name` is the file's stem.
fn parse_pool(
    path: &Path,
    text: &str,
    expected_name: Option<&str>,
) -> Result<PoolConfig, DefinitionError> {
    super::store::parse_named(
        path,
        text,
        expected_name,
        "pool ",
        PoolConfig::validate,
        |pool| &pool.name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, PoolStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = PoolStore::new(Paths::under(dir.path()));
        (dir, store)
    }

    fn fast() -> PoolConfig {
        PoolConfig {
            name: "fast".into(),
            path: "/srv/vm-images".into(),
            autostart: false,
        }
    }

    #[test]
    fn create_then_load_round_trips() {
        let (_dir, store) = store();
        store.create(&fast()).expect("create");
        assert_eq!(store.load("fast").expect("load"), fast());
    }

    #[test]
    fn a_duplicate_pool_is_refused() {
        let (_dir, store) = store();
        store.create(&fast()).expect("create");
        assert!(matches!(
            store.create(&fast()),
            Err(ConfigError::PoolExists(_))
        ));
    }

    #[test]
    fn a_relative_path_is_refused() {
        let pool = PoolConfig {
            path: "images".into(),
            ..fast()
        };
        assert!(pool.validate().expect_err("must fail").contains("absolute"));
    }

    #[test]
    fn a_broken_pool_file_is_reported_with_its_line() {
        let (_dir, store) = store();
        store.create(&fast()).expect("create");
        let bad = pool_file(store.paths(), "bad");
        fs::write(&bad, "name = \"bad\"\npath = 7\n").expect("write");
        let listed = store.list();
        let err = listed[0].clone().expect_err("bad first (sorted)");
        assert_eq!(err.line, Some(2));
        assert!(listed[1].is_ok());
    }

    #[test]
    fn loading_an_unknown_pool_names_it() {
        let (_dir, store) = store();
        let err = store.load("ghost").expect_err("must fail");
        assert!(err.to_string().contains("'ghost'"), "{err}");
    }
}
