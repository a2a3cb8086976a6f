//! What vmux learns about an image file without opening it for I/O: its format, size,
//! allocation, backing file, and the whole backing chain with missing files, loops and
//! untrusted backing files found here.
//!
//! **Formats are recorded, never guessed** (QEMU's CVE-2008-2004): a guest can write anything
//! into a raw disk, a qcow2 header naming a host file as its backing file included, so deciding
//! a format from content would let a guest read any file on the host. The format comes from a
//! record ([`Detect::Known`]: the VM definition's `format`, the pool's volume records, `--format`,
//! or an image vmux has just created) or, for images nobody recorded yet, from the file name's
//! extension ([`Detect::ByName`]); content is only checked *against* it, and a disagreement is
//! refused with both named. A raw record is never contradicted: any bytes are a raw disk.
//!
//! **Backing files** are followed only when the header records their format and they lie in a
//! storage pool directory or were allowed by the user by path ([`BackingTrust`]).

use super::image::ImageError;
use super::nofollow::open_image_file;
use super::qcow2_header::{MAGIC, Qcow2Header, read_start};
pub use crate::config::ImageFormat;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Most images in one backing chain (QEMU has no fixed limit; this bounds the walk).
pub const MAX_CHAIN_DEPTH: usize = 64;

/// How the format of an image is known. Never from its content alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detect {
    /// Recorded (definition, volume record, `--format`, a backing format in an overlay's
    /// header, an image vmux just created). A qcow2 record still needs a qcow2 header; a raw
    /// record accepts any content.
    Known(ImageFormat),
    /// Not recorded: the extension must name a format (`.qcow2`, `.raw`, `.img`, ...), and a
    /// raw-named file that starts with a qcow2 header is refused as ambiguous rather than
    /// guessed either way.
    ByName,
}

/// Which backing files an image chain may use: files directly in a storage pool directory, and
/// files the user allowed by path. Paths are kept canonical.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackingTrust {
    dirs: Vec<PathBuf>,
    files: Vec<PathBuf>,
}

impl BackingTrust {
    /// No backing file is trusted (an image with one cannot be opened).
    pub fn none() -> BackingTrust {
        BackingTrust::default()
    }

    /// Trusts files directly in `dirs` (pool directories) and the files `files`.
    pub fn new(
        dirs: impl IntoIterator<Item = PathBuf>,
        files: impl IntoIterator<Item = PathBuf>,
    ) -> BackingTrust {
        BackingTrust::none().with_dirs(dirs).with_files(files)
    }

    /// Also trusts files directly in `dirs`.
    pub fn with_dirs(mut self, dirs: impl IntoIterator<Item = PathBuf>) -> BackingTrust {
        self.dirs.extend(dirs.into_iter().map(|d| canonical(&d)));
        self
    }

    /// Also trusts the files `files` (absolute paths the user allowed).
    pub fn with_files(mut self, files: impl IntoIterator<Item = PathBuf>) -> BackingTrust {
        self.files.extend(files.into_iter().map(|f| canonical(&f)));
        self
    }

    /// Whether a chain may use `path` as a backing file.
    pub fn allows(&self, path: &Path) -> bool {
        if self.files.contains(&canonical(path)) {
            return true;
        }
        path.parent()
            .is_some_and(|dir| self.dirs.contains(&canonical(dir)))
    }
}

/// A backing file reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackingInfo {
    /// The name as written in the image header.
    pub name: String,
    /// Where it resolves to (relative names are relative to the image's directory).
    pub path: PathBuf,
    /// The format recorded in the header, when there is one.
    pub format: Option<ImageFormat>,
}

/// What one image file is, without opening it for I/O.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: ImageFormat,
    /// Virtual disk size in bytes (what the guest sees).
    pub capacity: u64,
    /// Bytes the file occupies on the host file system.
    pub allocation: u64,
    /// Apparent length of the file in bytes.
    pub file_size: u64,
    /// The backing file, for qcow2 overlays.
    pub backing: Option<BackingInfo>,
    /// Cluster size in bytes (qcow2).
    pub cluster_size: Option<u64>,
    /// qcow2 version (2 or 3).
    pub qcow2_version: Option<u32>,
    /// Internal (qcow2) snapshots in the image; vmux reads the active state and keeps them.
    pub internal_snapshots: u32,
}

/// Looks at one image file: format (per `detect`), size, allocation, backing reference.
/// Refuses symbolic links, special files, a format the content contradicts, and qcow2 features
/// vmux cannot handle, naming them.
pub fn inspect(path: &Path, detect: Detect) -> Result<ImageInfo, ImageError> {
    let file = open_image_file(path, false)?;
    let meta = file
        .metadata()
        .map_err(|source| ImageError::io(path, "inspect", source))?;
    let start = read_start(&file).map_err(|source| ImageError::io(path, "read", source))?;
    let format = detect_format(path, &start, detect)?;
    let mut info = ImageInfo {
        path: path.to_path_buf(),
        format,
        capacity: meta.len(),
        allocation: meta.blocks() * 512,
        file_size: meta.len(),
        backing: None,
        cluster_size: None,
        qcow2_version: None,
        internal_snapshots: 0,
    };
    if format == ImageFormat::Qcow2 {
        let header = Qcow2Header::parse(&start).map_err(|p| ImageError::header(path, p))?;
        header
            .check_supported()
            .map_err(|p| ImageError::header(path, p))?;
        info.capacity = header.size;
        info.cluster_size = Some(header.cluster_size());
        info.qcow2_version = Some(header.version);
        info.internal_snapshots = header.snapshots;
        if let Some(name) = header.backing_file {
            let format = match header.backing_format.as_deref() {
                None => None,
                Some("raw") | Some("file") => Some(ImageFormat::Raw),
                Some("qcow2") => Some(ImageFormat::Qcow2),
                Some(other) => {
                    return Err(ImageError::Unsupported {
                        path: path.to_path_buf(),
                        feature: format!("a backing file in format '{other}'"),
                    });
                }
            };
            let resolved = resolve_backing(path, &name);
            info.backing = Some(BackingInfo {
                name,
                path: resolved,
                format,
            });
        }
    }
    Ok(info)
}

/// The image and every backing file below it, top first. Fails on a backing file without a
/// recorded format or outside what `trust` allows, a missing backing file, a loop, or a chain
/// deeper than [`MAX_CHAIN_DEPTH`].
pub fn chain(
    path: &Path,
    detect: Detect,
    trust: &BackingTrust,
) -> Result<Vec<ImageInfo>, ImageError> {
    let mut layers = vec![inspect(path, detect)?];
    let mut seen = vec![canonical(path)];
    loop {
        let top = layers.last().expect("the chain starts with one layer");
        let Some(backing) = top.backing.clone() else {
            return Ok(layers);
        };
        let image = top.path.clone();
        let Some(format) = backing.format else {
            return Err(ImageError::BackingFormatMissing {
                image,
                backing: backing.path,
            });
        };
        if !trust.allows(&backing.path) {
            return Err(ImageError::BackingNotTrusted {
                image,
                backing: backing.path,
            });
        }
        if backing.path.symlink_metadata().is_err() {
            return Err(ImageError::BackingMissing {
                image,
                backing: backing.path,
            });
        }
        let key = canonical(&backing.path);
        if seen.contains(&key) {
            return Err(ImageError::BackingLoop {
                image,
                backing: backing.path,
            });
        }
        if layers.len() >= MAX_CHAIN_DEPTH {
            return Err(ImageError::ChainTooDeep {
                path: path.to_path_buf(),
            });
        }
        layers.push(inspect(&backing.path, Detect::Known(format))?);
        seen.push(key);
    }
}

/// Points the qcow2 image `path` at another backing file, or at none, by rewriting its header
/// in place (`qemu-img rebase -u`): only the name changes, no data is copied, so the caller must
/// know that the new backing file reads exactly like the old one. The new header is written in
/// one `pwrite` at offset 0 and synced.
pub fn rewrite_backing(
    path: &Path,
    backing: Option<(&str, ImageFormat)>,
) -> Result<(), ImageError> {
    use std::os::unix::fs::FileExt;
    let file = open_image_file(path, true)?;
    let start = read_start(&file).map_err(|source| ImageError::io(path, "read", source))?;
    let header = Qcow2Header::parse(&start).map_err(|p| ImageError::header(path, p))?;
    header
        .check_supported()
        .map_err(|p| ImageError::header(path, p))?;
    let bytes = header
        .with_backing(
            &start,
            backing.map(|(name, format)| (name, format.as_str())),
        )
        .map_err(|p| ImageError::header(path, p))?;
    file.write_all_at(&bytes, 0)
        .and_then(|()| file.sync_all())
        .map_err(|source| ImageError::io(path, "rewrite the header of", source))
}

/// Where backing name `name` of image `image` points.
pub fn resolve_backing(image: &Path, name: &str) -> PathBuf {
    let name = Path::new(name);
    if name.is_absolute() {
        name.to_path_buf()
    } else {
        image.parent().unwrap_or(Path::new(".")).join(name)
    }
}

/// The path with symlinks and `..` resolved, or as given when it cannot be.
pub fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Decides the format of `path`, whose first bytes are `start`, per `detect`; the content is
/// only checked against it.
fn detect_format(path: &Path, start: &[u8], detect: Detect) -> Result<ImageFormat, ImageError> {
    let has_magic = start.len() >= 4 && start[..4] == MAGIC;
    let mismatch = |origin| ImageError::NotQcow2 {
        path: path.to_path_buf(),
        origin,
    };
    match detect {
        Detect::Known(ImageFormat::Qcow2) if !has_magic => Err(mismatch(FormatOrigin::Record)),
        Detect::Known(format) => Ok(format),
        Detect::ByName => match ImageFormat::from_name(path) {
            None => Err(ImageError::FormatUnknown {
                path: path.to_path_buf(),
            }),
            Some(ImageFormat::Qcow2) if !has_magic => Err(mismatch(FormatOrigin::Name)),
            Some(ImageFormat::Raw) if has_magic => Err(ImageError::FormatAmbiguous {
                path: path.to_path_buf(),
            }),
            Some(format) => Ok(format),
        },
    }
}

/// Where the format an image's content contradicts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatOrigin {
    /// The file name's extension.
    Name,
    /// A record (definition, volume record, `--format`, an overlay's backing format).
    Record,
}

impl std::fmt::Display for FormatOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FormatOrigin::Name => "its name says qcow2",
            FormatOrigin::Record => "its format is recorded as qcow2",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    }

    #[test]
    fn a_raw_file_named_qcow2_is_refused_with_its_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file_with(dir.path(), "web1.qcow2", &[0u8; 4096]);
        let err = inspect(&path, Detect::ByName).expect_err("must fail");
        assert!(err.to_string().contains("web1.qcow2"), "{err}");
        assert!(err.to_string().contains("not a qcow2 image"), "{err}");
        assert!(err.to_string().contains("its name says qcow2"), "{err}");
    }

    /// A qcow2 header as a guest could write it into its raw disk: v2, 64 KiB clusters, naming
    /// `backing` as its backing file (no backing format: probing would have picked raw).
    fn guest_written_header(backing: &str) -> Vec<u8> {
        let mut bytes = vec![0u8; 4096];
        bytes[..4].copy_from_slice(&MAGIC);
        bytes[4..8].copy_from_slice(&2u32.to_be_bytes());
        bytes[8..16].copy_from_slice(&512u64.to_be_bytes());
        bytes[16..20].copy_from_slice(&(backing.len() as u32).to_be_bytes());
        bytes[20..24].copy_from_slice(&16u32.to_be_bytes());
        bytes[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
        bytes[36..40].copy_from_slice(&1u32.to_be_bytes());
        bytes[40..48].copy_from_slice(&(3u64 << 16).to_be_bytes());
        bytes[48..56].copy_from_slice(&(1u64 << 16).to_be_bytes());
        bytes[56..60].copy_from_slice(&1u32.to_be_bytes());
        bytes[512..512 + backing.len()].copy_from_slice(backing.as_bytes());
        bytes
    }

    #[test]
    fn a_recorded_raw_disk_with_a_guest_written_qcow2_header_stays_raw() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file_with(dir.path(), "data", &guest_written_header("/etc/shadow"));

        let info = inspect(&path, Detect::Known(ImageFormat::Raw)).expect("inspect");

        assert_eq!(info.format, ImageFormat::Raw);
        assert_eq!(info.capacity, 4096);
        assert_eq!(info.backing, None);
    }

    #[test]
    fn an_unrecorded_file_without_a_format_extension_is_never_probed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file_with(dir.path(), "data", &guest_written_header("/etc/shadow"));

        let err = inspect(&path, Detect::ByName).expect_err("no format known");

        assert!(matches!(err, ImageError::FormatUnknown { .. }), "{err}");
        assert!(err.to_string().contains("vmux vol-set-format"), "{err}");
    }

    #[test]
    fn an_unrecorded_raw_named_file_with_a_qcow2_header_is_ambiguous() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file_with(
            dir.path(),
            "guest.raw",
            &guest_written_header("/etc/shadow"),
        );

        let err = inspect(&path, Detect::ByName).expect_err("ambiguous");

        let text = err.to_string();
        assert!(matches!(err, ImageError::FormatAmbiguous { .. }), "{text}");
        assert!(
            text.contains("guest.raw") && text.contains("qcow2 header"),
            "{text}"
        );
        assert!(
            text.contains("raw") && text.contains("vol-set-format"),
            "{text}"
        );
    }

    #[test]
    fn a_file_recorded_as_qcow2_without_a_qcow2_header_names_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file_with(dir.path(), "data", &[0u8; 4096]);

        let err = inspect(&path, Detect::Known(ImageFormat::Qcow2)).expect_err("mismatch");

        let text = err.to_string();
        assert!(text.contains("recorded as qcow2"), "{text}");
        assert!(text.contains("not a qcow2 image"), "{text}");
        assert!(text.contains("raw"), "{text}");
    }

    /// An overlay `top.qcow2` in `dir` whose backing file is `backing` (recorded as raw when
    /// `format`).
    fn overlay(dir: &Path, backing: &Path, format: bool) -> PathBuf {
        let top = dir.join("top.qcow2");
        let spec = crate::storage::create::NewImage {
            backing: Some((backing.display().to_string(), ImageFormat::Raw)),
            ..crate::storage::create::NewImage::new(ImageFormat::Qcow2, 1 << 20)
        };
        crate::storage::create::create_image(&top, &spec).expect("create overlay");
        if !format {
            let name = backing.display().to_string();
            // Drop the backing format: what old qemu-img versions wrote.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&top)
                .expect("open");
            let start = read_start(&file).expect("read");
            let header = Qcow2Header::parse(&start).expect("parse");
            let mut bytes = header
                .with_backing(&start, Some((&name, "raw")))
                .expect("rewrite");
            strip_backing_format(&mut bytes);
            std::os::unix::fs::FileExt::write_all_at(&file, &bytes, 0).expect("write");
        }
        top
    }

    /// Turns the backing format header extension into an unknown, ignorable one.
    fn strip_backing_format(bytes: &mut [u8]) {
        let pos = bytes
            .windows(4)
            .position(|w| w == 0xe279_2acau32.to_be_bytes())
            .expect("backing format extension");
        bytes[pos..pos + 4].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    }

    #[test]
    fn a_backing_file_outside_every_pool_is_refused_unless_allowed() {
        let pools = tempfile::tempdir().expect("pool");
        let elsewhere = tempfile::tempdir().expect("elsewhere");
        let secret = file_with(elsewhere.path(), "secret.raw", b"top secret");
        let top = overlay(pools.path(), &secret, true);
        let pool_only = BackingTrust::new([pools.path().to_path_buf()], []);

        let err = chain(&top, Detect::ByName, &pool_only).expect_err("untrusted");

        assert!(matches!(err, ImageError::BackingNotTrusted { .. }), "{err}");
        assert!(err.to_string().contains("allow-backing"), "{err}");
        let allowed = pool_only.with_files([secret.clone()]);
        let layers = chain(&top, Detect::ByName, &allowed).expect("allowed by path");
        assert_eq!(layers[1].path, secret);
    }

    #[test]
    fn a_backing_file_in_a_pool_directory_is_followed() {
        let pool = tempfile::tempdir().expect("pool");
        let base = file_with(pool.path(), "base.raw", &[0u8; 1 << 20]);
        let top = overlay(pool.path(), &base, true);

        let layers = chain(
            &top,
            Detect::ByName,
            &BackingTrust::new([pool.path().to_path_buf()], []),
        )
        .expect("chain");

        assert_eq!(layers.len(), 2);
        assert_eq!(layers[1].format, ImageFormat::Raw);
    }

    #[test]
    fn a_backing_file_without_a_recorded_format_is_refused() {
        let pool = tempfile::tempdir().expect("pool");
        let base = file_with(pool.path(), "base.raw", &[0u8; 1 << 20]);
        let top = overlay(pool.path(), &base, false);

        let err = chain(
            &top,
            Detect::ByName,
            &BackingTrust::new([pool.path().to_path_buf()], []),
        )
        .expect_err("no backing format");

        assert!(
            matches!(err, ImageError::BackingFormatMissing { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("qemu-img rebase -u -F"), "{err}");
    }

    #[test]
    fn a_relative_backing_name_cannot_climb_out_of_the_pool() {
        let root = tempfile::tempdir().expect("root");
        let pool = root.path().join("pool");
        std::fs::create_dir(&pool).expect("mkdir");
        file_with(root.path(), "secret.raw", b"top secret");
        let top = overlay(&pool, Path::new("../secret.raw"), true);

        let err = chain(&top, Detect::ByName, &BackingTrust::new([pool.clone()], []))
            .expect_err("outside the pool");

        assert!(matches!(err, ImageError::BackingNotTrusted { .. }), "{err}");
    }

    #[test]
    fn a_directory_is_not_an_image() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = inspect(dir.path(), Detect::ByName).expect_err("must fail");
        assert!(matches!(err, ImageError::NotAFile { .. }), "{err}");
    }

    #[test]
    fn relative_backing_names_resolve_beside_the_image() {
        assert_eq!(
            resolve_backing(Path::new("/p/top.qcow2"), "base.raw"),
            Path::new("/p/base.raw")
        );
        assert_eq!(
            resolve_backing(Path::new("/p/top.qcow2"), "/q/b.raw"),
            Path::new("/q/b.raw")
        );
    }
}
