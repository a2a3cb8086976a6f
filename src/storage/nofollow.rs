//! Opening image files without following symbolic links: every image, backing file and pool
//! entry vmux opens goes through [`open_image_file`], which opens the last path component with
//! `O_NOFOLLOW` (a link there fails with `ELOOP` instead of being followed) and `O_NONBLOCK`
//! (a FIFO planted under an image name cannot hang vmux), then refuses anything that is not a
//! regular file. Volume names are single path components (`config::validate_volume_name`), so
//! for a pool volume this is exactly "stay inside the pool directory": the link that would lead
//! elsewhere is the component `O_NOFOLLOW` refuses.

use super::image::ImageError;
use nix::fcntl::OFlag;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens the regular file `path` for reading (and writing when `write`), refusing a symbolic
/// link as its last component ([`ImageError::Symlink`]) and anything that is not a regular file
/// ([`ImageError::NotAFile`]).
pub fn open_image_file(path: &Path, write: bool) -> Result<File, ImageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(|source| open_error(path, source))?;
    let meta = file
        .metadata()
        .map_err(|source| ImageError::io(path, "inspect", source))?;
    if !meta.is_file() {
        return Err(ImageError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

/// Creates the new file `path` (mode 0600), failing when anything, a link included, already has
/// that name (`O_CREAT | O_EXCL` never follows a link).
pub fn create_new_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)
}

/// Whether `path` itself (not what it points to) is a symbolic link.
pub fn is_symlink(path: &Path) -> bool {
    path.symlink_metadata()
        .is_ok_and(|meta| meta.file_type().is_symlink())
}

/// The error for a failed open of `path`: `ELOOP` from `O_NOFOLLOW` is a link.
fn open_error(path: &Path, source: io::Error) -> ImageError {
    if source.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) && is_symlink(path) {
        return ImageError::Symlink {
            path: path.to_path_buf(),
            target: std::fs::read_link(path).ok(),
        };
    }
    ImageError::open(path, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_is_refused_naming_its_target_and_the_target_is_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("secret");
        std::fs::write(&outside, b"secret").expect("write");
        let link = dir.path().join("link.raw");
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");

        let err = open_image_file(&link, true).expect_err("a link");

        assert!(
            matches!(&err, ImageError::Symlink { target: Some(t), .. } if *t == outside),
            "{err}"
        );
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read(&outside).expect("read"), b"secret");
    }

    #[test]
    fn a_fifo_is_not_an_image_and_does_not_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("pipe.raw");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");

        let err = open_image_file(&fifo, false).expect_err("a fifo");

        assert!(matches!(err, ImageError::NotAFile { .. }), "{err}");
    }

    #[test]
    fn create_new_refuses_a_dangling_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("would-be-created");
        let link = dir.path().join("new.raw");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");

        assert!(create_new_file(&link).is_err());
        assert!(!target.exists());
    }
}
