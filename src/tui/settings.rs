//! The user's settings file, `<config>/vmux.toml`: the theme, key bindings and remote hosts.
//!
//! ```toml
//! theme = "16-colour"
//!
//! [keys]
//! force_off = "ctrl-k"
//! quit = ["q", "f10"]
//!
//! [[hosts]]
//! name = "host2"
//! uri = "ssh://admin@host2"
//! ```
//!
//! Other top-level keys are left alone (other parts of vmux may keep settings here).

use super::hosts::config::{self, HostEntry};
use super::keymap::KeyList;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the settings file says; everything optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Settings {
    /// Theme name (built-in or `<config>/themes/<name>.toml`).
    #[serde(default)]
    pub theme: Option<String>,
    /// Action name → key(s), replacing the defaults of those actions.
    #[serde(default)]
    pub keys: BTreeMap<String, KeyList>,
    /// Remote hosts (`[[hosts]]`), in the file's order.
    #[serde(default)]
    pub hosts: Vec<HostEntry>,
}

/// The settings file exists but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Reading failed.
    #[error("cannot read settings file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has wrong types.
    #[error("settings file {}{}: {reason}; fix it or move it away", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
}

impl Settings {
    /// Reads `path`; a missing file means defaults.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(source) => {
                return Err(SettingsError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let settings: Settings = toml::from_str(&text).map_err(|e| SettingsError::Parse {
            path: path.to_path_buf(),
            line: e
                .span()
                .map(|span| text[..span.start.min(text.len())].lines().count().max(1)),
            reason: e.message().trim().to_string(),
        })?;
        config::check(&settings.hosts).map_err(|(index, reason)| SettingsError::Parse {
            path: path.to_path_buf(),
            line: config::entry_line(&text, index),
            reason,
        })?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_means_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = Settings::load(&dir.path().join("vmux.toml")).expect("loads");
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn theme_and_keys_are_read_and_other_keys_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vmux.toml");
        std::fs::write(
            &path,
            "theme = \"light\"\nother = 1\n[keys]\nquit = [\"q\", \"f10\"]\nstart = \"s\"\n",
        )
        .expect("write");
        let settings = Settings::load(&path).expect("loads");
        assert_eq!(settings.theme.as_deref(), Some("light"));
        assert_eq!(settings.keys.len(), 2);
    }

    #[test]
    fn hosts_are_read_with_autoconnect_on_by_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vmux.toml");
        std::fs::write(
            &path,
            "[[hosts]]\nname = \"h2\"\nuri = \"ssh://h2\"\n[[hosts]]\nname = \"h3\"\nuri = \"ssh://root@h3:2222\"\nautoconnect = false\n",
        )
        .expect("write");
        let settings = Settings::load(&path).expect("loads");
        let got: Vec<(&str, bool)> = settings
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), h.autoconnect))
            .collect();
        assert_eq!(got, [("h2", true), ("h3", false)]);
    }

    #[test]
    fn a_bad_host_entry_names_its_line_and_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vmux.toml");
        std::fs::write(
            &path,
            "theme = \"dark\"\n[[hosts]]\nname = \"h2\"\nuri = \"ssh://h2\"\n\n[[hosts]]\nname = \"h3\"\nuri = \"h3:22\"\n",
        )
        .expect("write");
        let err = Settings::load(&path).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("vmux.toml:6"), "{text}");
        assert!(text.contains("ssh://[user@]host[:port]"), "{text}");
    }

    #[test]
    fn wrong_type_names_the_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vmux.toml");
        std::fs::write(&path, "\ntheme = 3\n").expect("write");
        let err = Settings::load(&path).expect_err("must fail");
        assert!(err.to_string().contains("vmux.toml:2"), "{err}");
    }
}
