//! Bringing a downloaded disk image (a distribution cloud image) into vmux:
//! [`check_download`] says what the file is and refuses what vmux will not use,
//! [`StorageManager::vol_import`] copies it into a pool (`vol-import`),
//! [`StorageManager::vol_import_linked`] makes it a read-only base volume with a qcow2 overlay
//! on it (`vol-import --linked`), and [`StorageManager::vol_overlay`] puts a new overlay on a
//! base volume, so many VMs share one base (`create --image ... --linked`).
//!
//! As everywhere in storage, the format is never guessed from content: it is `--format` when
//! given, else the file name's (a qcow2 image named `.img`, as Ubuntu names its cloud images,
//! needs `--format qcow2`). A download must not have a backing file: a hostile image could name
//! any host file as its backing file and so copy that file into a disk the guest reads. Bases
//! are volumes inside a pool, so overlays on them stay within what the storage layer trusts,
//! and vmux refuses to give a base to a VM as a writable disk while overlays read through it.

use super::StorageError;
use super::create::{DEFAULT_CLUSTER_SIZE, NewImage, create_image};
use super::format::{Detect, ImageFormat, ImageInfo, inspect};
use super::image::{ImageLock, OpenOptions, open_image};
use super::pool::StorageManager;
use super::staging::StagedFile;
use super::volume::{VolumeInfo, build_copy, format_for, suggest_name};
use crate::config::{DiskConfig, validate_volume_name};
use crate::progress::Progress;
use std::path::Path;

/// What a downloaded image file is (format as `format` says, else as its name says, checked
/// against its content; size); refused when it has a backing file.
pub fn check_download(file: &Path, format: Option<ImageFormat>) -> Result<ImageInfo, StorageError> {
    let info = inspect(file, format.map_or(Detect::ByName, Detect::Known))?;
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

/// What [`StorageManager::vol_import_linked`] made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkedImport {
    /// The new overlay.
    pub overlay: VolumeInfo,
    /// The base volume's name (in the same pool).
    pub base: String,
    /// The base was there already (an earlier import of the same file) and was reused.
    pub reused_base: bool,
}

impl StorageManager {
    /// `vol-import POOL VOLUME FILE`: copies the image `file` into `pool` as `volume`. The new
    /// volume's format is what its name says (`.qcow2`, `.raw`), else the file's; its size is
    /// the file's virtual size; unallocated ranges stay unallocated. Reports bytes of the
    /// image walked on `progress`; a cancel or failure leaves no volume and no temporary file.
    pub fn vol_import(
        &self,
        pool: &str,
        volume: &str,
        file: &Path,
        format: Option<ImageFormat>,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        let info = self.import_copy(pool, volume, file, format, progress)?;
        progress.finish();
        Ok(info)
    }

    /// [`StorageManager::vol_import`] short of finishing `progress` (a linked import finishes
    /// it once its overlay is made too).
    fn import_copy(
        &self,
        pool: &str,
        volume: &str,
        file: &Path,
        format: Option<ImageFormat>,
        progress: &Progress,
    ) -> Result<VolumeInfo, StorageError> {
        let info = check_download(file, format)?;
        let target = self.new_volume_path(pool, volume)?;
        let new_format = format_for(volume, None, info.format)?;
        let src = open_image(
            file,
            &OpenOptions::read_only().detect(Detect::Known(info.format)),
        )?;
        progress.begin(src.capacity())?;
        let staged = StagedFile::new(&target);
        let new = NewImage {
            cluster_size: info.cluster_size.unwrap_or(DEFAULT_CLUSTER_SIZE),
            ..NewImage::new(new_format, info.capacity)
        };
        build_copy(src.as_ref(), &staged, &new, progress)?;
        progress.check()?;
        self.commit_new(staged, pool, volume, new_format)?;
        self.vol_info(pool, volume)
    }

    /// `vol-import POOL VOLUME FILE --linked`: the image `file` becomes a base volume of `pool`
    /// (named after the file; a base already imported under that name, of the same format and
    /// size, is reused) and `volume` a new qcow2 overlay on it. Reports the base's copy on
    /// `progress` (a reused base finishes it at once).
    pub fn vol_import_linked(
        &self,
        pool: &str,
        volume: &str,
        file: &Path,
        format: Option<ImageFormat>,
        progress: &Progress,
    ) -> Result<LinkedImport, StorageError> {
        let info = check_download(file, format)?;
        let base = base_name(file, info.format)?;
        if base == volume {
            return Err(StorageError::Invalid(format!(
                "the base volume takes the file's name, {base}; give the overlay another name"
            )));
        }
        let reused_base = match self.vol_info(pool, &base) {
            Ok(existing)
                if existing.format == info.format && existing.capacity == info.capacity =>
            {
                progress.begin(0)?;
                true
            }
            Ok(existing) => {
                return Err(StorageError::Invalid(format!(
                    "pool {pool} already has a volume {base} ({}, {} bytes) that is not this image ({}, {} bytes); rename the file or delete that volume",
                    existing.format, existing.capacity, info.format, info.capacity
                )));
            }
            Err(StorageError::UnknownVolume { .. }) => {
                self.import_copy(pool, &base, file, Some(info.format), progress)?;
                false
            }
            Err(e) => return Err(e),
        };
        let overlay = self.vol_overlay(pool, volume, pool, &base);
        if overlay.is_err() && !reused_base {
            let _ = self.vol_delete(pool, &base);
        }
        let overlay = overlay?;
        progress.finish();
        Ok(LinkedImport {
            overlay,
            base,
            reused_base,
        })
    }

    /// A new qcow2 volume `volume` in `pool` whose backing file is volume `base` of pool
    /// `base_pool` (by name within one pool, else by absolute path; its format recorded), as
    /// large as the base, which must then stay unchanged.
    pub fn vol_overlay(
        &self,
        pool: &str,
        volume: &str,
        base_pool: &str,
        base: &str,
    ) -> Result<VolumeInfo, StorageError> {
        if ImageFormat::from_name(Path::new(volume)).is_some_and(|f| f != ImageFormat::Qcow2) {
            return Err(StorageError::Invalid(format!(
                "a linked volume is a qcow2 overlay; name it with .qcow2 (like {})",
                suggest_name(volume, ImageFormat::Qcow2)
            )));
        }
        let base_disk = DiskConfig::volume(base_pool, base);
        let base_path = self.resolve_disk(&base_disk)?;
        let info = inspect(&base_path, self.disk_detect(&base_disk)?)?;
        self.guard_base(&format!("{base_pool}/{base}"), &base_path)?;
        let target = self.new_volume_path(pool, volume)?;
        // Hold the base read-locked while the overlay is made, so no writer slips in.
        let _lock = ImageLock::acquire(&base_path, false)?;
        let name = if base_pool == pool {
            base.to_string()
        } else {
            super::format::canonical(&base_path).display().to_string()
        };
        let staged = StagedFile::new(&target);
        let new = NewImage {
            backing: Some((name, info.format)),
            ..NewImage::new(ImageFormat::Qcow2, info.capacity)
        };
        create_image(staged.path(), &new)?;
        self.commit_new(staged, pool, volume, ImageFormat::Qcow2)?;
        self.vol_info(pool, volume)
    }
}

/// The base volume's name for `file` of `format`: the file's name, with the format's
/// extension when the name says another one (Ubuntu's qcow2 `.img` files).
fn base_name(file: &Path, format: ImageFormat) -> Result<String, StorageError> {
    let name = file.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        StorageError::Invalid(format!("{} has no usable file name", file.display()))
    })?;
    let name = match ImageFormat::from_name(Path::new(name)) {
        Some(said) if said == format => name.to_string(),
        _ => suggest_name(name, format),
    };
    validate_volume_name(&name).map_err(StorageError::Invalid)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Paths;
    use std::path::PathBuf;

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

    fn write(path: &Path, format: ImageFormat, offset: u64, bytes: &[u8]) {
        let image =
            open_image(path, &OpenOptions::writable().detect(Detect::Known(format))).expect("open");
        image.write_at(offset, bytes).expect("write");
        image.flush().expect("flush");
    }

    #[test]
    fn a_qcow2_image_named_img_is_imported_with_its_format_given() {
        let (home, storage) = manager();
        let file = qcow2_file(home.path(), "jammy-server-cloudimg-amd64.img", None);
        write(&file, ImageFormat::Qcow2, 1 << 20, b"ubuntu");

        let err = storage
            .vol_import("default", "jammy.qcow2", &file, None, &Progress::new())
            .expect_err("named raw, holds qcow2");
        let info = storage
            .vol_import(
                "default",
                "jammy.qcow2",
                &file,
                Some(ImageFormat::Qcow2),
                &Progress::new(),
            )
            .expect("import");

        assert!(err.to_string().contains("qcow2 header"), "{err}");
        assert_eq!((info.format, info.capacity), (ImageFormat::Qcow2, 4 << 20));
        let copy = open_image(&info.path, &OpenOptions::read_only()).expect("open copy");
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
            .vol_import("default", "evil.qcow2", &file, None, &Progress::new())
            .expect_err("backing file");

        assert!(err.to_string().contains("secret.raw"), "{err}");
        assert!(err.to_string().contains("qemu-img convert"), "{err}");
        assert!(!storage.paths().data.join("images/evil.qcow2").exists());
    }

    #[test]
    fn a_linked_import_makes_a_base_volume_once_and_an_overlay_per_vm() {
        let (home, storage) = manager();
        let file = home.path().join("debian-12-genericcloud-amd64.raw");
        std::fs::write(&file, vec![0x5au8; 4 << 20]).expect("write");

        let first = storage
            .vol_import_linked("default", "web1.qcow2", &file, None, &Progress::new())
            .expect("first");
        let second = storage
            .vol_import_linked("default", "web2.qcow2", &file, None, &Progress::new())
            .expect("second");

        assert_eq!(first.base, "debian-12-genericcloud-amd64.raw");
        assert!(!first.reused_base && second.reused_base);
        let backing = second.overlay.backing.expect("a backing file");
        assert_eq!(backing.name, "debian-12-genericcloud-amd64.raw");
        assert_eq!(backing.format, Some(ImageFormat::Raw));
        let overlay = open_image(
            &second.overlay.path,
            &OpenOptions::read_only().trust(storage.trust(&[])),
        )
        .expect("open");
        let mut buf = [0u8; 4];
        overlay.read_at(4096, &mut buf).expect("read");
        assert_eq!(buf, [0x5a; 4]);
        let base = storage
            .vol_info("default", "debian-12-genericcloud-amd64.raw")
            .expect("base");
        assert_eq!(base.backing_of.len(), 2);
    }

    #[test]
    fn an_overlay_named_raw_is_refused_with_a_qcow2_name() {
        let (_home, storage) = manager();
        let err = storage
            .vol_overlay("default", "web1.raw", "default", "base.qcow2")
            .expect_err("raw overlay");
        assert!(err.to_string().contains("web1.qcow2"), "{err}");
    }
}
