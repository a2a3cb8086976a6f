//! Helpers shared by the storage integration tests: qemu-img/qemu-io runners, a temporary
//! `VMUX_HOME`-style layout, and VM definitions with disks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use vmux::config::{BootConfig, DiskConfig, Paths, Store, VmConfig};
use vmux::storage::{BackingTrust, BlockImage, OpenOptions, StorageManager, open_image};
use vmux::vmd::pidfile::PidLock;

/// Runs a qemu-utils tool; panics with a hint when it is not installed (a test that runs one
/// declares it first with `prereq::met(&[QEMU_IMG])`, so this only catches one that forgot).
pub fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!(
            "{name} must be installed (scripts/test.sh installs qemu-utils), and the test must \
             declare it (tests/common/prereq.rs): {e}"
        )
    })
}

/// `qemu-img ARGS`, which must succeed.
pub fn qemu_img(args: &[&str]) -> String {
    let out = tool("qemu-img", args);
    assert!(
        out.status.success(),
        "qemu-img {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs qemu-io commands on a file of format `fmt`; panics unless every pattern read matched.
pub fn qemu_io(fmt: &str, path: &Path, commands: &[&str]) {
    let mut args = vec!["-f", fmt];
    for c in commands {
        args.push("-c");
        args.push(c);
    }
    let p = s(path);
    args.push(&p);
    let out = tool("qemu-io", &args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("verification failed") && !text.contains("error"),
        "qemu-io {commands:?} on {}: {text}",
        path.display()
    );
}

/// `qemu-img check` exits 0 (clean) or 3 (leaked clusters only).
pub fn check_ok(path: &Path) {
    let out = tool("qemu-img", &["check", &s(path)]);
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(3),
        "qemu-img check {} exited {code:?}: {}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `qemu-img compare` says the two images read the same.
pub fn same_content(a: &Path, b: &Path) {
    let out = tool("qemu-img", &["compare", &s(a), &s(b)]);
    assert!(
        out.status.success(),
        "{} and {} differ: {}{}",
        a.display(),
        b.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The path as a string.
pub fn s(path: &Path) -> String {
    path.to_str().expect("test paths are UTF-8").to_string()
}

/// Every byte of an image, read through vmux's `BlockImage`.
pub fn read_all(image: &dyn BlockImage) -> Vec<u8> {
    let mut buf = vec![0u8; image.capacity() as usize];
    image.read_at(0, &mut buf).expect("read the whole image");
    buf
}

/// Every byte of an image as QEMU reads it (`qemu-img convert -O raw`).
pub fn qemu_bytes(path: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!(
        "{}.flat",
        path.file_name().expect("name").to_string_lossy()
    ));
    qemu_img(&["convert", "-O", "raw", &s(path), &s(&out)]);
    let bytes = std::fs::read(&out).expect("read flat image");
    std::fs::remove_file(&out).expect("remove flat image");
    bytes
}

/// Open options for test images: format by name, backing files trusted in the image's own
/// directory (the test's scratch directory, standing in for a pool).
pub fn options(path: &Path, read_only: bool) -> OpenOptions {
    let base = if read_only {
        OpenOptions::read_only()
    } else {
        OpenOptions::writable()
    };
    let dir = path.parent().expect("image in a directory").to_path_buf();
    base.trust(BackingTrust::new([dir], []))
}

/// Opens `path` read-only (format by name, backing files in its directory).
pub fn open_ro(path: &Path) -> Box<dyn BlockImage> {
    open_image(path, &options(path, true)).expect("open image")
}

/// A fresh vmux home in a temporary directory.
pub struct Home {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// Its roots.
    pub paths: Paths,
    /// Pools and volumes.
    pub storage: StorageManager,
    /// The pid locks of VMs made to look running, by name.
    running: Mutex<HashMap<String, PidLock>>,
}

impl Home {
    /// A new, empty home.
    pub fn new() -> Home {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths::under(dir.path());
        let storage = StorageManager::new(paths.clone());
        Home {
            dir,
            paths,
            storage,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// The default pool's directory.
    pub fn pool_dir(&self) -> PathBuf {
        self.storage.active_dir("default").expect("default pool")
    }

    /// Defines a stopped demo VM with these disks (`--disk` syntax).
    pub fn define_vm(&self, name: &str, disks: &[&str]) {
        let mut cfg = VmConfig::new(name, BootConfig::Demo);
        cfg.disks = disks
            .iter()
            .map(|d| d.parse::<DiskConfig>().expect("disk spec"))
            .collect();
        Store::new(self.paths.clone())
            .create(&cfg)
            .expect("define VM");
    }

    /// The disks of a VM definition, in `--disk` syntax.
    pub fn vm_disks(&self, name: &str) -> Vec<String> {
        Store::new(self.paths.clone())
            .load(name)
            .expect("load VM")
            .disks
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    /// Makes VM `name` look running: this process takes its vmd.pid lock, as a vmd would.
    pub fn fake_running(&self, name: &str) {
        let state = self.paths.vm_state_dir(name);
        std::fs::create_dir_all(&state).expect("state dir");
        let lock = PidLock::acquire(&state.join("vmd.pid"), std::process::id()).expect("pid lock");
        self.running
            .lock()
            .expect("lock")
            .insert(name.to_string(), lock);
    }

    /// Undoes [`Home::fake_running`].
    pub fn fake_stopped(&self, name: &str) {
        if let Some(lock) = self.running.lock().expect("lock").remove(name) {
            lock.remove();
        }
    }
}

/// Writes `len` bytes of `byte` at `offset` through vmux.
pub fn fill(path: &Path, offset: u64, len: usize, byte: u8) {
    let image = open_image(path, &options(path, false)).expect("open writable");
    image.write_at(offset, &vec![byte; len]).expect("write");
    image.flush().expect("flush");
}
