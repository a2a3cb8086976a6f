//! The `[[hosts]]` entries of the settings file (`vmux.toml`): remote hosts the TUI shows
//! beside the local one.
//!
//! ```toml
//! [[hosts]]
//! name = "host2"
//! uri = "ssh://admin@host2.example:2222"
//! autoconnect = true   # the default
//! ```
//!
//! Entries are checked when read ([`check`]) and written back with the rest of the file kept
//! ([`save`], atomically).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One remote host in the settings file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// What the HOST column shows; letters, digits, `.`, `-`, `_`; not `local`.
    pub name: String,
    /// `ssh://[user@]host[:port]`.
    pub uri: String,
    /// Connect when the TUI starts.
    #[serde(default = "yes")]
    pub autoconnect: bool,
}

fn yes() -> bool {
    true
}

/// Why the hosts could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum HostsFileError {
    /// The settings file could not be read.
    #[error("cannot read settings file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The settings file is not valid TOML, so it is not rewritten.
    #[error("settings file {} is not valid TOML ({reason}); fix it before adding or removing hosts", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Serializing failed (cannot happen with these types; reported rather than assumed).
    #[error("cannot write the hosts as TOML: {0}")]
    Serialize(String),
    /// Writing the file failed.
    #[error("cannot write settings file {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// What is wrong with `name` as a host name, naming the fix.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a host needs a name".into());
    }
    if name == "local" {
        return Err("`local` is the name of this machine; choose another name".into());
    }
    if name.len() > 32
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(format!(
            "host name `{name}` may use only letters, digits, `.`, `-` and `_` (at most 32)"
        ));
    }
    Ok(())
}

/// What is wrong with `uri` as a remote host's address, naming the fix (the rules of
/// `--connect`).
pub fn check_uri(uri: &str) -> Result<(), String> {
    // The reason and the form, short enough for the form's field line.
    uri.parse::<crate::remote::Target>()
        .map(|_| ())
        .map_err(|e| format!("{}; write ssh://[user@]host[:port]", e.why))
}

/// Checks every entry: valid names and addresses, no name twice. The error names the
/// 1-based index of the bad entry and what to fix.
pub fn check(entries: &[HostEntry]) -> Result<(), (usize, String)> {
    for (i, entry) in entries.iter().enumerate() {
        check_name(&entry.name).map_err(|e| (i, e))?;
        check_uri(&entry.uri).map_err(|e| (i, format!("host {}: {e}", entry.name)))?;
        if entries[..i].iter().any(|e| e.name == entry.name) {
            return Err((
                i,
                format!("host name `{}` is used twice; rename one", entry.name),
            ));
        }
    }
    Ok(())
}

/// The 1-based line of the `index`-th `[[hosts]]` header in `text`, when it can be found.
pub fn entry_line(text: &str, index: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim();
            line.starts_with("[[")
                && line
                    .trim_start_matches('[')
                    .trim_start()
                    .starts_with("hosts")
        })
        .nth(index)
        .map(|(n, _)| n + 1)
}

/// Writes `hosts` into the settings file at `path` as its `[[hosts]]` entries, keeping every
/// other setting; atomic (a kill leaves the old file or the new one). A missing file is
/// created; a file that is not valid TOML is left alone and reported.
pub fn save(path: &Path, hosts: &[HostEntry]) -> Result<(), HostsFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(HostsFileError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| HostsFileError::Parse {
        path: path.to_path_buf(),
        reason: e.message().trim().to_string(),
    })?;
    if hosts.is_empty() {
        table.remove("hosts");
    } else {
        let value =
            toml::Value::try_from(hosts).map_err(|e| HostsFileError::Serialize(e.to_string()))?;
        table.insert("hosts".to_string(), value);
    }
    let out = toml::to_string(&table).map_err(|e| HostsFileError::Serialize(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| HostsFileError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    }
    crate::config::write_atomic(path, out.as_bytes()).map_err(|source| HostsFileError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, uri: &str) -> HostEntry {
        HostEntry {
            name: name.into(),
            uri: uri.into(),
            autoconnect: true,
        }
    }

    #[test]
    fn ssh_addresses_with_user_and_port_are_accepted() {
        for uri in [
            "ssh://h2",
            "ssh://admin@h2.example",
            "ssh://root@10.0.0.2:2222",
        ] {
            assert_eq!(check_uri(uri), Ok(()), "{uri}");
        }
    }

    #[test]
    fn a_non_ssh_address_names_the_form_to_use() {
        let err = check_uri("h2:22").expect_err("refused");
        assert!(err.contains("ssh://[user@]host[:port]"), "{err}");
        let err = check_uri("ssh://h2:99999").expect_err("refused");
        assert!(err.contains("port"), "{err}");
    }

    #[test]
    fn a_name_used_twice_is_refused_naming_the_second_entry() {
        let hosts = [entry("a", "ssh://a"), entry("a", "ssh://b")];
        let (index, message) = check(&hosts).expect_err("refused");
        assert_eq!(index, 1);
        assert!(message.contains("used twice"), "{message}");
    }

    #[test]
    fn local_is_not_a_remote_hosts_name() {
        assert!(check_name("local").is_err());
        assert!(check_name("web 1").is_err());
    }

    #[test]
    fn saving_keeps_the_other_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vmux.toml");
        std::fs::write(&path, "theme = \"light\"\n[keys]\nquit = \"q\"\n").expect("write");
        save(&path, &[entry("h2", "ssh://h2")]).expect("saves");
        let text = std::fs::read_to_string(&path).expect("read");
        let table: toml::Table = toml::from_str(&text).expect("valid");
        assert_eq!(table["theme"].as_str(), Some("light"));
        assert!(table["keys"].get("quit").is_some());
        assert_eq!(table["hosts"][0]["name"].as_str(), Some("h2"));
    }

    #[test]
    fn a_broken_file_is_not_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vmux.toml");
        std::fs::write(&path, "theme = \n").expect("write");
        let err = save(&path, &[entry("h2", "ssh://h2")]).expect_err("refused");
        assert!(err.to_string().contains("not valid TOML"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "theme = \n");
    }

    #[test]
    fn entry_lines_are_found_by_header() {
        let text = "theme = \"x\"\n\n[[hosts]]\nname = \"a\"\n[[hosts]]\nname = \"b\"\n";
        assert_eq!(entry_line(text, 0), Some(3));
        assert_eq!(entry_line(text, 1), Some(5));
    }
}
