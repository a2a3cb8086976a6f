//! [`ImageFormat`]: the two disk image formats vmux reads and writes, as definitions, volume
//! records and the command line spell them (`raw`, `qcow2`).
//!
//! A format is always *recorded* (a VM definition's `format = "..."`, a pool's volume records,
//! `--format`) or *named* by the file's extension; vmux never decides it from a file's content,
//! because a guest can write anything into a raw disk (see docs/security.md, "Image files").

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

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
    /// The format a file name's extension names: `.qcow2`/`.qcow` or `.raw`/`.img`/`.iso`/
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn formats_parse_case_insensitively_and_unknown_ones_are_named() {
        assert_eq!("QCOW2".parse(), Ok(ImageFormat::Qcow2));
        let err = "vmdk".parse::<ImageFormat>().expect_err("unknown");
        assert!(
            err.contains("'vmdk'") && err.contains("raw or qcow2"),
            "{err}"
        );
    }
}
