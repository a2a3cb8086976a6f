//! How vmd starts a VM: booting it from its definition, or restoring it from a save file
//! (`vmux restore`, and `vmux start` of a VM with a managed save). The mode travels on vmd's
//! command line after the VM name: `vmux __vmd NAME [--restore FILE [--paused|--running]
//! [--force] [--discard]]`.

use std::path::PathBuf;

/// Restore a saved VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreMode {
    /// The save file.
    pub file: PathBuf,
    /// State after the restore: `Some(true)` paused, `Some(false)` running, `None` as saved.
    pub paused: Option<bool>,
    /// Restore even though a disk image changed since the save.
    pub force: bool,
    /// Delete the file once the VM runs (a managed save is used once).
    pub discard: bool,
}

/// What vmd does with its VM at start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StartMode {
    /// Boot it from its definition.
    #[default]
    Boot,
    /// Restore it from a save file.
    Restore(RestoreMode),
}

impl StartMode {
    /// The arguments that select this mode (after the VM name).
    pub fn args(&self) -> Vec<String> {
        let StartMode::Restore(restore) = self else {
            return Vec::new();
        };
        let mut args = vec!["--restore".to_string(), restore.file.display().to_string()];
        match restore.paused {
            Some(true) => args.push("--paused".into()),
            Some(false) => args.push("--running".into()),
            None => {}
        }
        if restore.force {
            args.push("--force".into());
        }
        if restore.discard {
            args.push("--discard".into());
        }
        args
    }

    /// Parses the arguments after the VM name.
    pub fn parse(args: &[String]) -> Result<StartMode, String> {
        let mut iter = args.iter();
        let Some(first) = iter.next() else {
            return Ok(StartMode::Boot);
        };
        if first != "--restore" {
            return Err(format!("unknown vmd option '{first}'"));
        }
        let file = iter.next().ok_or("--restore needs the save file")?.into();
        let mut restore = RestoreMode {
            file,
            paused: None,
            force: false,
            discard: false,
        };
        for arg in iter {
            match arg.as_str() {
                "--paused" => restore.paused = Some(true),
                "--running" => restore.paused = Some(false),
                "--force" => restore.force = true,
                "--discard" => restore.discard = true,
                other => return Err(format!("unknown vmd option '{other}'")),
            }
        }
        Ok(StartMode::Restore(restore))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_mode_survives_the_command_line() {
        let mode = StartMode::Restore(RestoreMode {
            file: "/var/lib/web.save".into(),
            paused: Some(true),
            force: true,
            discard: true,
        });
        assert_eq!(StartMode::parse(&mode.args()), Ok(mode));
        assert_eq!(StartMode::parse(&[]), Ok(StartMode::Boot));
    }

    #[test]
    fn unknown_options_are_refused() {
        assert!(StartMode::parse(&["--bogus".into()]).is_err());
        assert!(StartMode::parse(&["--restore".into()]).is_err());
    }
}
