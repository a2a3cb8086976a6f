//! Network definitions on disk: one TOML file per network under `<config>/networks/`,
//! written atomically. The `default` network is written the first time vmux looks for
//! networks (when that directory does not exist yet), so `net-undefine default` sticks.

use super::NetworkError;
use crate::config::{DefinitionError, NetworkConfig, Paths, validate_name, write_atomic};
use std::fs;
use std::path::{Path, PathBuf};

/// Reads and writes network definitions.
#[derive(Debug, Clone)]
pub struct NetworkStore {
    dir: PathBuf,
}

impl NetworkStore {
    /// The store under `paths.config`.
    pub fn new(paths: &Paths) -> NetworkStore {
        NetworkStore {
            dir: paths.config.join("networks"),
        }
    }

    /// The definition file of `name`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }

    /// On first use (no `networks/` directory yet) creates it with the `default` network;
    /// returns whether it did.
    pub fn ensure_default(&self) -> Result<bool, NetworkError> {
        if self.dir.exists() {
            return Ok(false);
        }
        self.save(&NetworkConfig::default_network())?;
        Ok(true)
    }

    /// Whether `name` is defined.
    pub fn exists(&self, name: &str) -> bool {
        self.file(name).exists()
    }

    /// Loads network `name`.
    pub fn load(&self, name: &str) -> Result<NetworkConfig, NetworkError> {
        validate_name(name).map_err(NetworkError::Invalid)?;
        let path = self.file(name);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(NetworkError::UnknownNetwork(name.to_string()));
            }
            Err(source) => return Err(NetworkError::Io { path, source }),
        };
        Ok(parse(&path, &text, Some(name))?)
    }

    /// Every definition sorted by name; unusable files come back as errors in place.
    pub fn list(&self) -> Vec<Result<NetworkConfig, DefinitionError>> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
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
                parse(&path, &text, stem.as_deref())
            })
            .collect()
    }

    /// The definitions that load, skipping broken files (callers that must report those use
    /// [`NetworkStore::list`]).
    pub fn valid(&self) -> Vec<NetworkConfig> {
        self.list().into_iter().filter_map(Result::ok).collect()
    }

    /// Validates and writes (replaces) a definition atomically.
    pub fn save(&self, cfg: &NetworkConfig) -> Result<(), NetworkError> {
        cfg.validate().map_err(NetworkError::Invalid)?;
        fs::create_dir_all(&self.dir).map_err(|source| NetworkError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let path = self.file(&cfg.name);
        let text = toml::to_string(cfg).expect("a network definition serializes to TOML");
        write_atomic(&path, text.as_bytes()).map_err(|source| NetworkError::Io { path, source })
    }

    /// Deletes the definition of `name`.
    pub fn remove(&self, name: &str) -> Result<(), NetworkError> {
        let path = self.file(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(NetworkError::UnknownNetwork(name.to_string()))
            }
            Err(source) => Err(NetworkError::Io { path, source }),
        }
    }
}

/// Parses and validates a definition; `expected_name` is the file's stem.
fn parse(
    path: &Path,
    text: &str,
    expected_name: Option<&str>,
) -> Result<NetworkConfig, DefinitionError> {
    crate::config::parse_named(
        path,
        text,
        expected_name,
        "",
        NetworkConfig::validate,
        |cfg| &cfg.name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, NetworkStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = NetworkStore::new(&Paths::under(dir.path()));
        (dir, store)
    }

    #[test]
    fn default_is_defined_on_first_use_only() {
        let (_dir, store) = store();
        assert!(store.ensure_default().expect("first use"));
        assert_eq!(
            store.load("default").expect("load"),
            NetworkConfig::default_network()
        );
        store.remove("default").expect("undefine");
        assert!(!store.ensure_default().expect("second use"));
        assert!(!store.exists("default"));
    }

    #[test]
    fn a_broken_file_is_reported_with_its_line() {
        let (_dir, store) = store();
        store.ensure_default().expect("first use");
        fs::write(store.file("bad"), "name = \"bad\"\nmode = \"wormhole\"\n").expect("write");
        let listed = store.list();
        let err = listed[0].clone().expect_err("bad sorts first");
        assert_eq!(err.line, Some(2), "{err}");
        assert!(listed[1].is_ok());
        assert_eq!(store.valid().len(), 1);
    }

    #[test]
    fn loading_an_unknown_network_names_it() {
        let (_dir, store) = store();
        let err = store.load("ghost").expect_err("must fail");
        assert!(matches!(err, NetworkError::UnknownNetwork(ref n) if n == "ghost"));
    }
}
