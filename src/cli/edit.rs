//! `vmux edit`: the definition in `$VISUAL` / `$EDITOR` (default `vi`), like `virsh edit`.
//!
//! The editor works on a private temporary copy; nothing is saved until the edited text parses,
//! validates, keeps the VM's name and passes the host checks. On a terminal an invalid edit is
//! explained (with its line) and can be re-opened with the user's text intact; without one the
//! command fails and saves nothing.

use super::output::error_chain;
use super::{CliError, Io};
use crate::client::StorageHost;
use crate::client::{ClientError, Host};
use crate::config::{ConfigError, VmConfig, parse_definition};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `vmux edit NAME`.
pub fn edit(
    host: &dyn Host,
    storage: &dyn StorageHost,
    name: &str,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let state = host.state(name)?;
    // A definition broken by hand is opened as it is, so the mistake can be fixed in place.
    let (original, original_text) = match host.status(name) {
        Ok(status) => {
            let text = toml::to_string(&status.config).map_err(std::io::Error::other)?;
            (Some(status.config), text)
        }
        Err(ClientError::Config(ConfigError::BrokenVm { source, .. })) => {
            writeln!(
                io.err,
                "The definition of VM '{name}' is broken ({source}); opening it to repair"
            )?;
            (None, host.definition_text(name)?)
        }
        Err(e) => return Err(e.into()),
    };
    let editor = editor_command();
    let copy = TempCopy::create(name, &original_text)?;
    let interactive = std::io::stdin().is_terminal();
    loop {
        run_editor(&editor, copy.path())?;
        let text = fs::read_to_string(copy.path()).map_err(|source| CliError::EditCopy {
            path: copy.path().to_path_buf(),
            source,
        })?;
        let edited = match check_edit(name, copy.path(), &text).and_then(|cfg| {
            super::images::check_boot(storage, &cfg)
                .map(|_| cfg)
                .map_err(|e| error_chain(&e))
        }) {
            Ok(cfg) => cfg,
            Err(reason) if interactive => {
                writeln!(io.err, "error: the edited definition is invalid: {reason}")?;
                if ask_again(io)? {
                    continue;
                }
                return Err(CliError::EditAbandoned(name.to_string()));
            }
            Err(reason) => return Err(CliError::EditInvalid { reason }),
        };
        if original.as_ref() == Some(&edited) {
            writeln!(io.out, "No changes to VM '{name}'")?;
            return Ok(());
        }
        // A repaired broken file has no valid original to compare with. What the host refuses
        // (a kernel it cannot read, more memory than it has) is an invalid edit too.
        let saved = match &original {
            Some(original) => host.update_from(original, &edited),
            None => host.update(&edited),
        };
        match saved {
            Ok(()) => {}
            Err(ClientError::Invalid(reason)) if interactive => {
                writeln!(io.err, "error: the edited definition is invalid: {reason}")?;
                if ask_again(io)? {
                    continue;
                }
                return Err(CliError::EditAbandoned(name.to_string()));
            }
            Err(ClientError::Invalid(reason)) => return Err(CliError::EditInvalid { reason }),
            Err(e) => return Err(e.into()),
        }
        if state.is_active() {
            writeln!(
                io.out,
                "VM '{name}' updated; the changes take effect at its next start"
            )?;
        } else {
            writeln!(io.out, "VM '{name}' updated")?;
        }
        return Ok(());
    }
}

/// Checks edited text; `Err` is the reason in words, with the line when known.
fn check_edit(name: &str, path: &Path, text: &str) -> Result<VmConfig, String> {
    let cfg = parse_definition(path, text, None).map_err(|e| match e.line {
        Some(line) => format!("line {line}: {}", e.reason),
        None => e.reason,
    })?;
    if cfg.name != name {
        return Err(format!(
            "renaming is not supported: keep name = \"{name}\" (to rename, `vmux dumpconfig {name}` \
             to a file, change the name there, `vmux define` it and `vmux undefine {name}`)"
        ));
    }
    Ok(cfg)
}

/// `$VISUAL`, else `$EDITOR`, else `vi`; may carry arguments (`code -w`).
fn editor_command() -> String {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .find(|value| !value.trim().is_empty())
        .unwrap_or_else(|| "vi".into())
}

/// Runs the editor on `path` through `sh`, so an editor with arguments works.
fn run_editor(editor: &str, path: &Path) -> Result<(), CliError> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .status()
        .map_err(|source| CliError::EditorSpawn {
            editor: editor.to_string(),
            source,
        })?;
    if !status.success() {
        return Err(CliError::EditorFailed {
            editor: editor.to_string(),
            status,
        });
    }
    Ok(())
}

/// Asks on the terminal whether to edit again; anything but no (or end of input) is yes.
fn ask_again(io: &mut Io<'_>) -> Result<bool, CliError> {
    write!(io.err, "Edit again? [Y/n] ")?;
    io.err.flush()?;
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer)? == 0 {
        return Ok(false);
    }
    Ok(!matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "n" | "no"
    ))
}

/// A private (0600) temporary file holding the text being edited; removed when dropped.
struct TempCopy {
    path: PathBuf,
}

impl TempCopy {
    fn create(name: &str, text: &str) -> Result<TempCopy, CliError> {
        let dir = std::env::temp_dir();
        let mut attempt = 0u32;
        loop {
            let path = dir.join(format!(
                "vmux-edit-{name}-{}-{attempt}.toml",
                std::process::id()
            ));
            let opened = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            let failed = |source| CliError::EditCopy {
                path: path.clone(),
                source,
            };
            match opened {
                Ok(mut file) => {
                    // The guard exists before the write so a failed write still cleans up.
                    let copy = TempCopy { path: path.clone() };
                    write_all_synced(&mut file, text).map_err(failed)?;
                    return Ok(copy);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(e) => return Err(failed(e)),
            }
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

fn write_all_synced(file: &mut File, text: &str) -> std::io::Result<()> {
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

impl Drop for TempCopy {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            log::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BootConfig;

    fn text_of(cfg: &VmConfig) -> String {
        toml::to_string(cfg).expect("serialize")
    }

    #[test]
    fn an_edit_that_renames_the_vm_is_refused() {
        let cfg = VmConfig::new("other", BootConfig::Demo);
        let err = check_edit("web", Path::new("/t.toml"), &text_of(&cfg)).expect_err("refused");
        assert!(err.contains("renaming is not supported"), "{err}");
    }

    #[test]
    fn a_syntax_error_is_reported_with_its_line() {
        let text = "name = \"web\"\nvcpus = \"many\"\n";
        let err = check_edit("web", Path::new("/t.toml"), text).expect_err("refused");
        assert!(err.starts_with("line 2:"), "{err}");
    }

    #[test]
    fn a_valid_edit_is_accepted() {
        let cfg = VmConfig {
            vcpus: 2,
            ..VmConfig::new("web", BootConfig::Demo)
        };
        let back = check_edit("web", Path::new("/t.toml"), &text_of(&cfg)).expect("valid");
        assert_eq!(back, cfg);
    }

    #[test]
    fn the_temporary_copy_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let copy = TempCopy::create("web", "x").expect("create");
        let path = copy.path().to_path_buf();
        let mode = fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(copy);
        assert!(!path.exists());
    }
}
