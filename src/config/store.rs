//! The definition store: one TOML file per VM under `<config>/vms/`, written atomically.
//! A file edited by hand into nonsense is reported with its path, line and reason, and the
//! other definitions still load.
//!
//! Every change happens under an `flock` on `<config>/vms/.lock` ([`Store::lock`]), and a
//! read-modify-write keeps it from the read to the write ([`Store::update`], or a
//! [`StoreLock`] held across both), so two vmux commands changing one definition at once are
//! serialised and neither update is lost. `vmux edit`, which cannot hold the lock while the
//! user types, saves with [`Store::replace`]: only if the definition is still the one the
//! editor started from.

use super::ConfigError;
use super::atomic::write_atomic;
use super::paths::Paths;
use super::vm::{VmConfig, validate_name};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;

/// A definition file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct DefinitionError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// What is wrong, in words.
    pub reason: String,
}

/// Reads and writes VM definitions.
#[derive(Debug, Clone)]
pub struct Store {
    paths: Paths,
}

impl Store {
    /// A store over `paths` (directories are created on first write).
    pub fn new(paths: Paths) -> Store {
        Store { paths }
    }

    /// The directory roots.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Whether a definition named `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.paths.vm_file(name).exists()
    }

    /// Loads VM `name`.
    pub fn load(&self, name: &str) -> Result<VmConfig, ConfigError> {
        validate_name(name).map_err(ConfigError::Invalid)?;
        let path = self.paths.vm_file(name);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::UnknownVm(name.to_string()));
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        parse_definition(&path, &text, Some(name)).map_err(|source| ConfigError::BrokenVm {
            name: name.to_string(),
            source,
        })
    }

    /// The text of VM `name`'s definition file as it is, valid or not.
    pub fn text(&self, name: &str) -> Result<String, ConfigError> {
        validate_name(name).map_err(ConfigError::Invalid)?;
        let path = self.paths.vm_file(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ConfigError::UnknownVm(name.to_string()))
            }
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// Every definition, sorted by file name; unusable files are returned as errors in place.
    pub fn list(&self) -> Vec<Result<VmConfig, DefinitionError>> {
        let dir = self.paths.vms_dir();
        let Ok(entries) = fs::read_dir(&dir) else {
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
                parse_definition(&path, &text, stem.as_deref())
            })
            .collect()
    }

    /// Waits for and takes the store's lock; changes made through the returned [`StoreLock`]
    /// are serialised with every other vmux process's. Never call the other changing methods
    /// of this store while holding it (they take the lock themselves and would wait forever).
    pub fn lock(&self) -> Result<StoreLock<'_>, ConfigError> {
        let dir = self.paths.vms_dir();
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
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_error(std::io::Error::from(errno)))?;
        Ok(StoreLock {
            store: self,
            _lock: lock,
        })
    }

    /// Writes a new definition; refuses an existing name.
    pub fn create(&self, cfg: &VmConfig) -> Result<(), ConfigError> {
        self.lock()?.create(cfg)
    }

    /// Validates and writes (replaces) a definition atomically.
    pub fn save(&self, cfg: &VmConfig) -> Result<(), ConfigError> {
        self.lock()?.save(cfg)
    }

    /// Loads `name`, lets `change` modify it, validates and saves it, all under the lock. An
    /// error from `change` saves nothing.
    pub fn update<T, E: From<ConfigError>>(
        &self,
        name: &str,
        change: impl FnOnce(&mut VmConfig) -> Result<T, E>,
    ) -> Result<T, E> {
        let lock = self.lock()?;
        let mut cfg = lock.load(name)?;
        let value = change(&mut cfg)?;
        lock.save(&cfg)?;
        Ok(value)
    }

    /// Saves `cfg` only if the definition on disk is still `original` (what an editor started
    /// from); otherwise fails with [`ConfigError::Changed`] and saves nothing.
    pub fn replace(&self, original: &VmConfig, cfg: &VmConfig) -> Result<(), ConfigError> {
        let lock = self.lock()?;
        if lock.load(&original.name)? != *original {
            return Err(ConfigError::Changed(original.name.clone()));
        }
        lock.save(cfg)
    }

    /// Deletes the definition of `name`.
    pub fn remove(&self, name: &str) -> Result<(), ConfigError> {
        let _lock = self.lock()?;
        let path = self.paths.vm_file(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ConfigError::UnknownVm(name.to_string()))
            }
            Err(source) => Err(ConfigError::Write { path, source }),
        }
    }
}

/// The store's lock, held: loads and saves made through it are one serialised change.
#[derive(Debug)]
pub struct StoreLock<'a> {
    store: &'a Store,
    _lock: Flock<File>,
}

impl StoreLock<'_> {
    /// Loads VM `name`.
    pub fn load(&self, name: &str) -> Result<VmConfig, ConfigError> {
        self.store.load(name)
    }

    /// Writes a new definition; refuses an existing name.
    pub fn create(&self, cfg: &VmConfig) -> Result<(), ConfigError> {
        if self.store.exists(&cfg.name) {
            return Err(ConfigError::VmExists(cfg.name.clone()));
        }
        self.save(cfg)
    }

    /// Validates and writes (replaces) a definition atomically.
    pub fn save(&self, cfg: &VmConfig) -> Result<(), ConfigError> {
        cfg.validate().map_err(ConfigError::Invalid)?;
        let path = self.store.paths.vm_file(&cfg.name);
        let text = toml::to_string(cfg).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        write_atomic(&path, text.as_bytes()).map_err(|source| ConfigError::Write { path, source })
    }
}

/// Parses and validates definition text; `expected_name` is the file's stem, which must match
/// the `name` inside.
pub fn parse_definition(
    path: &std::path::Path,
    text: &str,
    expected_name: Option<&str>,
) -> Result<VmConfig, DefinitionError> {
    parse_named(path, text, expected_name, "", VmConfig::validate, |cfg| {
        &cfg.name
    })
}

/// The one way a definition file (VM, pool, network) is read: TOML parsed with the line of any
/// syntax error, then `validate`, then the `name` inside checked against the file's stem.
/// `kind` words the mismatch message ("pool " gives "the file is for pool 'x'").
pub(crate) fn parse_named<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    text: &str,
    expected_name: Option<&str>,
    kind: &str,
    validate: impl Fn(&T) -> Result<(), String>,
    name: impl Fn(&T) -> &str,
) -> Result<T, DefinitionError> {
    let error = |line, reason| DefinitionError {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let definition: T = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        error(line, e.message().trim().to_string())
    })?;
    validate(&definition).map_err(|reason| error(None, reason))?;
    let found = name(&definition);
    if let Some(expected) = expected_name.filter(|n| *n != found) {
        return Err(error(
            None,
            format!(
                "the file is for {kind}'{expected}' but says name = \"{found}\"; make them match"
            ),
        ));
    }
    Ok(definition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BootConfig;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(Paths::under(dir.path()));
        (dir, store)
    }

    #[test]
    fn create_then_load_round_trips() {
        let (_dir, store) = store();
        let cfg = VmConfig::new("a", BootConfig::Demo);
        store.create(&cfg).expect("create");
        assert_eq!(store.load("a").expect("load"), cfg);
    }

    #[test]
    fn creating_a_duplicate_name_is_refused() {
        let (_dir, store) = store();
        let cfg = VmConfig::new("a", BootConfig::Demo);
        store.create(&cfg).expect("create");
        assert!(matches!(store.create(&cfg), Err(ConfigError::VmExists(_))));
    }

    #[test]
    fn a_broken_file_is_reported_with_line_and_others_still_list() {
        let (_dir, store) = store();
        store
            .create(&VmConfig::new("good", BootConfig::Demo))
            .expect("create");
        let bad = store.paths().vm_file("bad");
        fs::write(&bad, "name = \"bad\"\nvcpus = \"many\"\n").expect("write");
        let listed = store.list();
        assert_eq!(listed.len(), 2);
        let err = listed[0].clone().expect_err("bad first (sorted)");
        assert_eq!(err.line, Some(2));
        assert!(err.to_string().contains("bad.toml:2"), "{err}");
        assert!(listed[1].is_ok());
    }

    #[test]
    fn loading_a_broken_definition_names_the_vm_and_the_fix() {
        let (_dir, store) = store();
        store
            .create(&VmConfig::new("good", BootConfig::Demo))
            .expect("create");
        fs::write(
            store.paths().vm_file("good"),
            "name = \"good\"\nvcpus = \"two\"\n",
        )
        .expect("write");
        let err = store.load("good").expect_err("broken");
        assert!(err.to_string().contains("vmux edit good"), "{err}");
        assert!(store.text("good").expect("text").contains("\"two\""));
    }

    #[test]
    fn concurrent_updates_of_one_definition_lose_nothing() {
        let (_dir, store) = store();
        store
            .create(&VmConfig::new("a", BootConfig::Demo))
            .expect("create");
        // Two writers, each adding its own disks one read-modify-write at a time.
        std::thread::scope(|scope| {
            for writer in ["x", "y"] {
                let store = store.clone();
                scope.spawn(move || {
                    for i in 0..10 {
                        store
                            .update("a", |cfg| {
                                cfg.disks.push(crate::config::DiskConfig::volume(
                                    "default",
                                    &format!("{writer}{i}.raw"),
                                ));
                                Ok::<_, ConfigError>(())
                            })
                            .expect("update");
                    }
                });
            }
        });
        assert_eq!(store.load("a").expect("load").disks.len(), 20);
    }

    #[test]
    fn replacing_a_definition_that_changed_since_it_was_read_is_refused() {
        let (_dir, store) = store();
        let original = VmConfig::new("a", BootConfig::Demo);
        store.create(&original).expect("create");
        store
            .update("a", |cfg| {
                cfg.vcpus = 2;
                cfg.max_vcpus = 4;
                Ok::<_, ConfigError>(())
            })
            .expect("someone else's change");
        let mut edited = original.clone();
        edited.autostart = true;

        let err = store
            .replace(&original, &edited)
            .expect_err("changed meanwhile");

        assert!(matches!(err, ConfigError::Changed(_)), "{err}");
        assert_eq!(store.load("a").expect("load").vcpus, 2);
    }

    #[test]
    fn loading_an_unknown_vm_names_it() {
        let (_dir, store) = store();
        let err = store.load("ghost").expect_err("must fail");
        assert!(err.to_string().contains("'ghost'"));
    }
}
