//! Image formats and what vmux learns about an image file without opening it for I/O: its
//! format (from the name and the first bytes), size, allocation, backing file, and the whole
//! backing chain with missing files and loops found here.
//!
//! Naming rule (why the extension wins for pool volumes): a guest can write anything to a raw
//! disk, including a qcow2 header; probing such a file would let the guest turn its disk into a
//! qcow2 image with a backing file of its choosing (any host file). So `.raw`/`.img` files are
//! always raw, `.qcow2` files must be qcow2, and only names without a known extension (and
//! files the user hands in, like `vol-upload` sources) are probed by content.

use super::image::ImageError;
use super::qcow2_header::{HeaderProblem, MAGIC, Qcow2Header, read_start};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Most images in one backing chain (QEMU has no fixed limit; this bounds the walk).
pub const MAX_CHAIN_DEPTH: usize = 64;

/// A disk image format vmux reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// The guest's bytes as they are, sparse where the file system allows.
    Raw,
    /// QEMU copy-on-write v2/v3 (through imago).
    Qcow2,
}

impl ImageFormat {
    /// The format a file name's extension promises: `.qcow2`/`.qcow` or `.raw`/`.img`/`.iso`/
    /// `.bin`; `None` for anything else.
    pub fn from_name(name: &Path) -> Option<ImageFormat> {
        let ext = name.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "qcow2" | "qcow" => Some(ImageFormat::Qcow2),
            "raw" | "img" | "iso" | "bin" => Some(ImageFormat::Raw),
            _ => None,
        }
    }

    /// The name QEMU uses (`raw`, `qcow2`).
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImageFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<ImageFormat, String> {
        match text.to_ascii_lowercase().as_str() {
            "raw" => Ok(ImageFormat::Raw),
            "qcow2" => Ok(ImageFormat::Qcow2),
            _ => Err(format!(
                "'{text}' is not an image format vmux handles; use raw or qcow2"
            )),
        }
    }
}

/// How much to trust a file's name versus its content when deciding its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detect {
    /// Guest-writable images (pool volumes, VM disks): a raw-looking name is raw whatever the
    /// content says; see the module docs.
    ByName,
    /// Files the user hands in (upload sources, backing files without a recorded format): the
    /// content decides, except that a `.qcow2` name must hold a qcow2 image.
    ByContent,
    /// The caller knows the format (`--format`, a recorded backing format).
    Known(ImageFormat),
}

/// A backing file reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackingInfo {
    /// The name as written in the image header.
    pub name: String,
    /// Where it resolves to (relative names are relative to the image's directory).
    pub path: PathBuf,
    /// The format recorded in the header, when there is one.
    pub format: Option<ImageFormat>,
}

/// What one image file is, without opening it for I/O.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
/// Refuses qcow2 features vmux cannot handle, naming them.
pub fn inspect(path: &Path, detect: Detect) -> Result<ImageInfo, ImageError> {
    let file = File::open(path).map_err(|source| ImageError::open(path, source))?;
    let meta = file
        .metadata()
        .map_err(|source| ImageError::io(path, "inspect", source))?;
    if meta.is_dir() {
        return Err(ImageError::NotAFile {
            path: path.to_path_buf(),
        });
    }
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

/// The image and every backing file below it, top first. Fails on a missing backing file, a
/// loop, or a chain deeper than [`MAX_CHAIN_DEPTH`].
pub fn chain(path: &Path, detect: Detect) -> Result<Vec<ImageInfo>, ImageError> {
    let mut layers = vec![inspect(path, detect)?];
    let mut seen = vec![canonical(path)];
    loop {
        let top = layers.last().expect("the chain starts with one layer");
        let Some(backing) = top.backing.clone() else {
            return Ok(layers);
        };
        let image = top.path.clone();
        if !backing.path.exists() {
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
        let detect = backing.format.map_or(Detect::ByContent, Detect::Known);
        layers.push(inspect(&backing.path, detect)?);
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
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| ImageError::open(path, source))?;
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

/// Decides the format of `path`, whose first bytes are `start`.
fn detect_format(path: &Path, start: &[u8], detect: Detect) -> Result<ImageFormat, ImageError> {
    let has_magic = start.len() >= 4 && start[..4] == MAGIC;
    let by_name = ImageFormat::from_name(path);
    let format = match detect {
        Detect::Known(format) => format,
        Detect::ByName => match by_name {
            Some(format) => format,
            None if has_magic => ImageFormat::Qcow2,
            None => ImageFormat::Raw,
        },
        Detect::ByContent if has_magic => ImageFormat::Qcow2,
        Detect::ByContent => by_name.unwrap_or(ImageFormat::Raw),
    };
    if format == ImageFormat::Qcow2 && !has_magic {
        return Err(ImageError::header(path, HeaderProblem::NotQcow2));
    }
    Ok(format)
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
    fn extensions_map_to_formats() {
        assert_eq!(
            ImageFormat::from_name(Path::new("a.QCOW2")),
            Some(ImageFormat::Qcow2)
        );
        assert_eq!(
            ImageFormat::from_name(Path::new("a.img")),
            Some(ImageFormat::Raw)
        );
        assert_eq!(ImageFormat::from_name(Path::new("disk")), None);
    }

    #[test]
    fn a_raw_file_named_qcow2_is_refused_with_its_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file_with(dir.path(), "web1.qcow2", &[0u8; 4096]);
        let err = inspect(&path, Detect::ByName).expect_err("must fail");
        assert!(err.to_string().contains("web1.qcow2"), "{err}");
        assert!(err.to_string().contains("not a qcow2 image"), "{err}");
    }

    #[test]
    fn a_raw_volume_with_a_qcow2_magic_stays_raw() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bytes = vec![0u8; 4096];
        bytes[..4].copy_from_slice(&MAGIC);
        let path = file_with(dir.path(), "guest.raw", &bytes);
        let info = inspect(&path, Detect::ByName).expect("inspect");
        assert_eq!(info.format, ImageFormat::Raw);
        assert_eq!(info.capacity, 4096);
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
