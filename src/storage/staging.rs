//! Crash-safe creation of image files: every new image (create, clone, convert, upload,
//! download) is written to a hidden temporary file beside its final name, synced, and only then
//! given its name, so a kill at any moment leaves the old state or the new one, never a
//! half-written image under a real name.
//!
//! Temporary names are `.<final name>.vmux-tmp.<pid>`; [`clean_stale`] removes those whose
//! process is gone (a killed vmux), so nothing is left behind for long.

use super::image::ImageError;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Marker inside temporary file names.
const TMP_MARK: &str = ".vmux-tmp.";

/// A file being written under a temporary name; removed on drop unless committed.
#[derive(Debug)]
pub struct StagedFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl StagedFile {
    /// Reserves a temporary name for `target` (in the same directory, so the final rename stays
    /// on one file system). Nothing is created yet; the caller creates the file at
    /// [`StagedFile::path`]. A leftover from an earlier run of this same pid is removed first.
    pub fn new(target: &Path) -> StagedFile {
        let dir = target.parent().unwrap_or(Path::new("."));
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}{TMP_MARK}{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        StagedFile {
            tmp,
            target: target.to_path_buf(),
            committed: false,
        }
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The final name.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Syncs the file and gives it its final name. With `replace` an existing file of that
    /// name is replaced atomically; without, an existing file makes this fail (and the
    /// temporary file is removed).
    pub fn commit(mut self, replace: bool) -> Result<(), ImageError> {
        super::nofollow::open_image_file(&self.tmp, false)?
            .sync_all()
            .map_err(|source| ImageError::io(&self.tmp, "sync", source))?;
        if replace {
            fs::rename(&self.tmp, &self.target)
                .map_err(|source| ImageError::io(&self.target, "create", source))?;
        } else {
            // link() refuses an existing name, atomically: a concurrent creator of the same
            // volume loses cleanly instead of being overwritten.
            fs::hard_link(&self.tmp, &self.target)
                .map_err(|source| ImageError::io(&self.target, "create", source))?;
            let _ = fs::remove_file(&self.tmp);
        }
        self.committed = true;
        sync_dir(&self.target)
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Fsyncs the directory holding `path`, making a rename, link or unlink durable.
pub fn sync_dir(path: &Path) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| ImageError::io(dir, "sync", source))
}

/// Whether `name` is one of vmux's temporary file names.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.contains(TMP_MARK)
}

/// Removes temporary files in `dir` left by vmux processes that no longer run.
pub fn clean_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((_, pid)) = name.rsplit_once(TMP_MARK) else {
            continue;
        };
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if name.starts_with('.') && !alive {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uncommitted_file_disappears() {
        let dir = tempfile::tempdir().expect("tempdir");
        let staged = StagedFile::new(&dir.path().join("a.raw"));
        fs::write(staged.path(), b"x").expect("write");
        drop(staged);
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[test]
    fn commit_without_replace_keeps_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("a.raw");
        fs::write(&target, b"old").expect("write");
        let staged = StagedFile::new(&target);
        fs::write(staged.path(), b"new").expect("write");
        assert!(staged.commit(false).is_err());
        assert_eq!(fs::read(&target).expect("read"), b"old");
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn commit_with_replace_swaps_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("a.raw");
        fs::write(&target, b"old").expect("write");
        let staged = StagedFile::new(&target);
        fs::write(staged.path(), b"new").expect("write");
        staged.commit(true).expect("commit");
        assert_eq!(fs::read(&target).expect("read"), b"new");
    }

    #[test]
    fn stale_files_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        // pid 0x7fffffff cannot be running (above the kernel's pid_max limit).
        let stale = dir.path().join(".a.raw.vmux-tmp.2147483647");
        let live = dir
            .path()
            .join(format!(".b.raw.vmux-tmp.{}", std::process::id()));
        fs::write(&stale, b"x").expect("write");
        fs::write(&live, b"x").expect("write");
        clean_stale(dir.path());
        assert!(!stale.exists());
        assert!(live.exists());
        assert!(is_temporary(".b.raw.vmux-tmp.1"));
        assert!(!is_temporary("b.raw"));
    }
}
