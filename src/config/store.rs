//! The definition store: one TOML file per VM under `<config>/vms/`, written atomically.
//! A file edited by hand into nonsense is reported with its path, line and reason, and the
//! other definitions still load.

use super::ConfigError;
use super::atomic::write_atomic;
use super::paths::Paths;
use super::vm::{VmConfig, validate_name};
use std::fs;
use std::path::PathBuf;

/// A definition file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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

    /// Writes a new definition; refuses an existing name.
    pub fn create(&self, cfg: &VmConfig) -> Result<(), ConfigError> {
        if self.exists(&cfg.name) {
            return Err(ConfigError::VmExists(cfg.name.clone()));
        }
        self.save(cfg)
    }

    /// Validates and writes (replaces) a definition atomically.
    pub fn save(&self, cfg: &VmConfig) -> Result<(), ConfigError> {
        cfg.validate().map_err(ConfigError::Invalid)?;
        let dir = self.paths.vms_dir();
        fs::create_dir_all(&dir).map_err(|source| ConfigError::CreateDir { path: dir, source })?;
        let path = self.paths.vm_file(&cfg.name);
        let text = toml::to_string(cfg).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        write_atomic(&path, text.as_bytes()).map_err(|source| ConfigError::Write { path, source })
    }

    /// Deletes the definition of `name`.
    pub fn remove(&self, name: &str) -> Result<(), ConfigError> {
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
    fn loading_an_unknown_vm_names_it() {
        let (_dir, store) = store();
        let err = store.load("ghost").expect_err("must fail");
        assert!(err.to_string().contains("'ghost'"));
    }
}
