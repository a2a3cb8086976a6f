//! Bringing a downloaded disk image (a distribution cloud image) into vmux: [`check_download`]
//! says what the file is and refuses what vmux will not use, [`StorageManager::vol_import`]
//! copies it into a pool (`vol-import`), and [`StorageManager::vol_overlay`] makes a qcow2
//! overlay on a read-only base, so many VMs share one base image (`vol-import --linked`,
//! `create --image ... --linked`).
//!
//! A downloaded file is the user's, not a guest's, so its format is read from its content
//! (Ubuntu names its qcow2 cloud images `.img`). It must not have a backing file: a hostile
//! download could name any host file as its backing file and so copy that file into a disk the
//! guest reads. An overlay records its base by absolute path with an explicit format, so the
//! base is never probed again; the base must then stay unchanged, and vmux refuses to give it to
//! a VM as a writable disk while overlays read through it.

use super::StorageError;
use super::create::{DEFAULT_CLUSTER_SIZE, NewImage, create_image};
use super::format::{Detect, ImageFormat, ImageInfo, canonical, inspect};
use super::image::{ImageLock, OpenOptions, open_image};
use super::pool::StorageManager;
use super::staging::StagedFile;
use super::volume::VolumeInfo;
use std::path::{Path, PathBuf};

/// What a downloaded image file is: format by content, size; refused when it has a backing
/// file or is not a regular file.
pub fn check_download(file: &Path) -> Result<ImageInfo, StorageError> {
    let info = inspect(file, Detect::ByContent)?;
    if let Some(backing) = &info.backing {
        return Err(StorageError::Invalid(format!(
            "{} is a qcow2 overlay on {}; vmux imports standalone images only (a downloaded image never needs a backing file): flatten it first with `qemu-img convert -O qcow2 {} standalone.qcow2`",
            file.display(),
            backing.path.display(),
            file.display()
        )));
    }
    Ok(info)
}

/// The path and format an overlay records for its base `file`: absolute, symlinks resolved.
fn base_reference(file: &Path, info: &ImageInfo) -> Result<(PathBuf, ImageFormat), StorageError> {
    let path = canonical(&std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf()));
    if path.to_str().is_none() {
        return Err(StorageError::Invalid(format!(
            "{} is not valid UTF-8, which a qcow2 backing file name must be; rename it",
            path.display()
        )));
    }
    Ok((path, info.format))
}

impl StorageManager {
    /// `vol-import POOL VOLUME FILE`: copies the image `file` into `pool` as `volume`. The new
    /// volume's format is what its name says (`.qcow2`, `.raw`), else the file's; its size is
    /// the file's virtual size; unallocated ranges stay unallocated.
    pub fn vol_import(
        &self,
        pool: &str,
        volume: &str,
        file: &Path,
    ) -> Result<VolumeInfo, StorageError> {
        let info = check_download(file)?;
        let target = self.new_volume_path(pool, volume)?;
        let format = super::volume::format_for(volume, None, info.format)?;
        let src = open_image(
            file,
            OpenOptions::read_only().detect(Detect::Known(info.format)),
        )?;
        let staged = StagedFile::new(&target);
        let new = NewImage {
            cluster_size: info.cluster_size.unwrap_or(DEFAULT_CLUSTER_SIZE),
            ..NewImage::new(format, info.capacity)
        };
        super::volume::build_copy(src.as_ref(), &staged, &new)?;
        self.commit_new(staged, pool, volume)?;
        self.vol_info(pool, volume)
    }

    /// A new qcow2 volume `volume` in `pool` whose backing file is the image `base` (a pool
    /// volume or a downloaded file, by absolute path and with its format recorded), as large as
    /// the base. `detect` is how the base's format is decided: [`Detect::ByName`] for a pool
    /// volume, [`Detect::ByContent`] for a downloaded file (which must then be standalone, see
    /// [`check_download`]). `vol-import --linked` and `create --image ... --linked`.
    pub fn vol_overlay(
        &self,
        pool: &str,
        volume: &str,
        base: &Path,
        detect: Detect,
    ) -> Result<VolumeInfo, StorageError> {
        if ImageFormat::from_name(Path::new(volume)).is_some_and(|f| f != ImageFormat::Qcow2) {
            return Err(StorageError::Invalid(format!(
                "a linked volume is a qcow2 overlay; name it with .qcow2 (like {})",
                super::volume::suggest_name(volume, ImageFormat::Qcow2)
            )));
        }
        let info = match detect {
            Detect::ByContent => check_download(base)?,
            known => inspect(base, known)?,
        };
        let (base_path, base_format) = base_reference(base, &info)?;
        let label = base_path.display().to_string();
        self.guard_base(&label, &base_path)?;
        let target = self.new_volume_path(pool, volume)?;
        // Hold the base read-locked while the overlay is made, so no writer slips in.
        let _lock = ImageLock::acquire(&base_path, false)?;
        let staged = StagedFile::new(&target);
        let new = NewImage {
            backing: Some((label, base_format)),
            ..NewImage::new(ImageFormat::Qcow2, info.capacity)
        };
        create_image(staged.path(), &new)?;
        self.commit_new(staged, pool, volume)?;
        self.vol_info(pool, volume)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Paths;

    fn manager() -> (tempfile::TempDir, StorageManager) {
        let home = tempfile::tempdir().expect("tempdir");
        let storage = StorageManager::new(Paths::under(home.path()));
        storage.ensure_default().expect("default pool");
        (home, storage)
    }

    fn qcow2_file(dir: &Path, name: &str, backing: Option<(String, ImageFormat)>) -> PathBuf {
        let path = dir.join(name);
        let new = NewImage {
            backing,
            ..NewImage::new(ImageFormat::Qcow2, 4 << 20)
        };
        create_image(&path, &new).expect("create");
        path
    }

    #[test]
    fn a_qcow2_image_named_img_is_imported_by_its_content() {
        let (home, storage) = manager();
        let file = qcow2_file(home.path(), "jammy-server-cloudimg-amd64.img", None);
        let image =
            open_image(&file, OpenOptions::writable().detect(Detect::ByContent)).expect("open");
        image.write_at(1 << 20, b"ubuntu").expect("write");
        image.flush().expect("flush");
        drop(image);

        let info = storage
            .vol_import("default", "jammy.qcow2", &file)
            .expect("import");

        assert_eq!((info.format, info.capacity), (ImageFormat::Qcow2, 4 << 20));
        let copy = open_image(&info.path, OpenOptions::read_only()).expect("open copy");
        let mut buf = [0u8; 6];
        copy.read_at(1 << 20, &mut buf).expect("read");
        assert_eq!(&buf, b"ubuntu");
    }

    #[test]
    fn an_image_with_a_backing_file_is_refused_naming_it() {
        let (home, storage) = manager();
        let secret = home.path().join("secret.raw");
        std::fs::write(&secret, vec![7u8; 4 << 20]).expect("write");
        let file = qcow2_file(
            home.path(),
            "evil.qcow2",
            Some((secret.display().to_string(), ImageFormat::Raw)),
        );

        let err = storage
            .vol_import("default", "evil.qcow2", &file)
            .expect_err("backing file");

        assert!(err.to_string().contains("secret.raw"), "{err}");
        assert!(err.to_string().contains("qemu-img convert"), "{err}");
        assert!(!storage.paths().data.join("images/evil.qcow2").exists());
    }

    #[test]
    fn an_overlay_reads_its_base_by_absolute_path_with_the_format_recorded() {
        let (home, storage) = manager();
        let base = home.path().join("debian-12-genericcloud-amd64.raw");
        std::fs::write(&base, vec![0x5au8; 4 << 20]).expect("write");

        let info = storage
            .vol_overlay("default", "web1.qcow2", &base, Detect::ByContent)
            .expect("overlay");

        let backing = info.backing.expect("a backing file");
        assert_eq!(backing.path, canonical(&base));
        assert_eq!(backing.format, Some(ImageFormat::Raw));
        assert_eq!(info.capacity, 4 << 20);
        let overlay = open_image(&info.path, OpenOptions::read_only()).expect("open");
        let mut buf = [0u8; 4];
        overlay.read_at(4096, &mut buf).expect("read");
        assert_eq!(buf, [0x5a; 4]);
    }

    #[test]
    fn an_overlay_named_raw_is_refused_with_a_qcow2_name() {
        let (home, storage) = manager();
        let base = qcow2_file(home.path(), "base.qcow2", None);
        let err = storage
            .vol_overlay("default", "web1.raw", &base, Detect::ByContent)
            .expect_err("raw overlay");
        assert!(err.to_string().contains("web1.qcow2"), "{err}");
    }
}
