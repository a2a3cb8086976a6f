//! Where vmux keeps definitions, images, state and sockets.
//!
//! Default: XDG (`~/.config/vmux`, `~/.local/share/vmux`, `~/.local/state/vmux`,
//! `$XDG_RUNTIME_DIR/vmux`). `VMUX_HOME=<dir>` puts all four under one directory
//! (`config/`, `data/`, `state/`, `run/`), which every test uses so that tests never touch a
//! user's real VMs.

use super::ConfigError;
use std::fs::{self, DirBuilder};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The four directory roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Definitions: `vms/`, `networks/`, `pools/`, `vmux.toml`.
    pub config: PathBuf,
    /// Default storage pool and other data.
    pub data: PathBuf,
    /// Per-VM state (pid, state file, console log).
    pub state: PathBuf,
    /// Control sockets (0700).
    pub runtime: PathBuf,
}

impl Paths {
    /// Resolves the roots from `VMUX_HOME` or the XDG environment.
    pub fn from_env() -> Result<Paths, ConfigError> {
        if let Some(home) = std::env::var_os("VMUX_HOME").filter(|v| !v.is_empty()) {
            return Ok(Paths::under(Path::new(&home)));
        }
        let dirs = directories::ProjectDirs::from("", "", "vmux").ok_or(ConfigError::NoHome)?;
        let state = dirs
            .state_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dirs.data_local_dir().join("state"));
        let runtime = dirs
            .runtime_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| state.join("run"));
        Ok(Paths {
            config: dirs.config_dir().to_path_buf(),
            data: dirs.data_dir().to_path_buf(),
            state,
            runtime,
        })
    }

    /// All roots under one directory (what `VMUX_HOME` selects).
    pub fn under(home: &Path) -> Paths {
        Paths {
            config: home.join("config"),
            data: home.join("data"),
            state: home.join("state"),
            runtime: home.join("run"),
        }
    }

    /// Directory of VM definitions.
    pub fn vms_dir(&self) -> PathBuf {
        self.config.join("vms")
    }

    /// The definition file of VM `name`.
    pub fn vm_file(&self, name: &str) -> PathBuf {
        self.vms_dir().join(format!("{name}.toml"))
    }

    /// The user's settings file (theme, keybindings).
    pub fn settings_file(&self) -> PathBuf {
        self.config.join("vmux.toml")
    }

    /// Per-VM state directory: `vmd.pid`, `state.json`, `console.log`, `vmd.log` (see
    /// [`VmdFiles`]).
    pub fn vm_state_dir(&self, name: &str) -> PathBuf {
        self.state.join("vms").join(name)
    }

    /// Every file vmd keeps for VM `name`, named here and nowhere else.
    pub fn vmd_files(&self, name: &str) -> VmdFiles {
        VmdFiles::in_dir(self.vm_state_dir(name), self.socket(name))
    }

    /// The control socket of VM `name`.
    pub fn socket(&self, name: &str) -> PathBuf {
        self.runtime.join(format!("{name}.sock"))
    }

    /// Creates the config, data and state roots and the 0700 runtime directory.
    pub fn ensure(&self) -> Result<(), ConfigError> {
        for dir in [&self.vms_dir(), &self.data, &self.state] {
            fs::create_dir_all(dir).map_err(|source| ConfigError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        ensure_private_dir(&self.runtime)
    }
}

/// The files of one VM's vmd: the state directory's contents and the control socket. The one
/// place their names are spelled; vmd writes them, clients and the storage layer read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmdFiles {
    /// `<state>/vms/<name>/`.
    pub dir: PathBuf,
    /// `vmd.pid`: holds vmd's pid, `flock`ed while vmd lives.
    pub pid: PathBuf,
    /// `state.json`: what vmd last said about its VM.
    pub state: PathBuf,
    /// `vmd.log` (rotated to `vmd.log.1`).
    pub log: PathBuf,
    /// `console.log` (rotated to `console.log.1`).
    pub console_log: PathBuf,
    /// `open-images.json`: the images vmd has open, for repair after a crash.
    pub open_images: PathBuf,
    /// `<runtime>/<name>.sock`: the control socket.
    pub socket: PathBuf,
}

impl VmdFiles {
    /// Base name of [`VmdFiles::pid`].
    pub const PID: &'static str = "vmd.pid";
    /// Base name of [`VmdFiles::state`].
    pub const STATE: &'static str = "state.json";
    /// Base name of [`VmdFiles::log`].
    pub const LOG: &'static str = "vmd.log";
    /// Base name of [`VmdFiles::console_log`].
    pub const CONSOLE_LOG: &'static str = "console.log";
    /// Base name of [`VmdFiles::open_images`].
    pub const OPEN_IMAGES: &'static str = "open-images.json";

    /// The files in state directory `dir`, with control socket `socket`.
    pub fn in_dir(dir: PathBuf, socket: PathBuf) -> VmdFiles {
        VmdFiles {
            pid: dir.join(Self::PID),
            state: dir.join(Self::STATE),
            log: dir.join(Self::LOG),
            console_log: dir.join(Self::CONSOLE_LOG),
            open_images: dir.join(Self::OPEN_IMAGES),
            socket,
            dir,
        }
    }

    /// Where a rotated log goes: `vmd.log` → `vmd.log.1`.
    pub fn rotated(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_os_string();
        name.push(".1");
        PathBuf::from(name)
    }
}

/// Creates `dir` (and parents) and makes sure it is mode 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<(), ConfigError> {
    let err = |source| ConfigError::CreateDir {
        path: dir.to_path_buf(),
        source,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmux_home_puts_everything_under_one_directory() {
        let paths = Paths::under(Path::new("/tmp/x"));
        assert_eq!(
            paths.vm_file("web1"),
            Path::new("/tmp/x/config/vms/web1.toml")
        );
        assert_eq!(paths.socket("web1"), Path::new("/tmp/x/run/web1.sock"));
        assert_eq!(
            paths.vm_state_dir("web1"),
            Path::new("/tmp/x/state/vms/web1")
        );
    }

    #[test]
    fn vmd_files_are_named_in_the_vm_state_directory_and_the_socket_in_runtime() {
        let files = Paths::under(Path::new("/tmp/x")).vmd_files("web1");
        assert_eq!(files.dir, Path::new("/tmp/x/state/vms/web1"));
        assert_eq!(files.pid, Path::new("/tmp/x/state/vms/web1/vmd.pid"));
        assert_eq!(files.state, Path::new("/tmp/x/state/vms/web1/state.json"));
        assert_eq!(files.log, Path::new("/tmp/x/state/vms/web1/vmd.log"));
        assert_eq!(
            files.console_log,
            Path::new("/tmp/x/state/vms/web1/console.log")
        );
        assert_eq!(
            files.open_images,
            Path::new("/tmp/x/state/vms/web1/open-images.json")
        );
        assert_eq!(files.socket, Path::new("/tmp/x/run/web1.sock"));
        assert_eq!(
            VmdFiles::rotated(&files.log),
            Path::new("/tmp/x/state/vms/web1/vmd.log.1")
        );
    }

    #[test]
    fn runtime_dir_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths::under(dir.path());
        paths.ensure().expect("ensure");
        let mode = fs::metadata(&paths.runtime)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
