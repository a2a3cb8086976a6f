//! Crash-safe file replacement: write a temp file beside the target, fsync it, rename it over
//! the target, fsync the directory. A kill at any moment leaves the old or the new file.
//!
//! The temp file is `.<name>.vmux-write.<pid>.<n>`, created with `O_EXCL | O_NOFOLLOW` (a file
//! or link planted under that name makes the write fail instead of being followed or
//! truncated), mode 0600. Temp files left by a killed writer (their pid no longer runs, or the
//! `.<name>.tmp.<pid>` form older vmux versions used) are removed by the next write in the same
//! directory.

use nix::fcntl::OFlag;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Marker of current temp names.
const MARK: &str = ".vmux-write.";
/// Marker of the temp names of older versions.
const OLD_MARK: &str = ".tmp.";

/// Replaces `path` with `bytes` atomically (mode 0600). The parent directory must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "path has no parent directory")
    })?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    clean_stale(dir);
    let tmp = dir.join(format!(
        ".{}{MARK}{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(&tmp)?;
    let result = (|| {
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes the temp files in `dir` whose writer is gone (see the module docs).
pub fn clean_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = writer_pid(&name)
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The pid in a temp name of [`write_atomic`] (current or older form), `None` for other names.
fn writer_pid(name: &str) -> Option<u32> {
    if !name.starts_with('.') {
        return None;
    }
    if let Some((_, tail)) = name.rsplit_once(MARK) {
        let (pid, n) = tail.split_once('.')?;
        n.parse::<u64>().ok()?;
        return pid.parse().ok();
    }
    let (_, pid) = name.rsplit_once(OLD_MARK)?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.toml");
        write_atomic(&path, b"one").expect("first write");
        write_atomic(&path, b"two").expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let entries: Vec<_> = fs::read_dir(dir.path()).expect("list").collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn leftovers_of_dead_writers_are_removed_by_the_next_write_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        // pid 0x7fffffff cannot run (above the kernel's pid_max limit).
        let dead = dir.path().join(".a.toml.vmux-write.2147483647.0");
        let old_style = dir.path().join(".b.toml.tmp.2147483647");
        let live = dir
            .path()
            .join(format!(".c.toml.vmux-write.{}.99", std::process::id()));
        let unrelated = dir.path().join(".notes.tmp.x");
        for path in [&dead, &old_style, &live, &unrelated] {
            fs::write(path, b"x").expect("write");
        }

        write_atomic(&dir.path().join("a.toml"), b"new").expect("write");

        assert!(!dead.exists() && !old_style.exists());
        assert!(live.exists() && unrelated.exists());
    }

    #[test]
    fn a_planted_link_is_replaced_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("outside");
        let victim = outside.path().join("victim");
        fs::write(&victim, b"keep").expect("write");
        let path = dir.path().join("a.toml");
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");

        write_atomic(&path, b"new").expect("write");

        assert_eq!(fs::read(&victim).expect("read"), b"keep");
        assert!(!path.symlink_metadata().expect("stat").is_symlink());
        assert_eq!(fs::read(&path).expect("read"), b"new");
    }
}
