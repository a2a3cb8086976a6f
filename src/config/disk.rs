//! `DiskConfig`: one disk of a VM definition, as the user wrote it (`[[disks]]` in
//! `vms/<name>.toml`, or `--disk` on the command line), and its validation.
//!
//! A disk names a volume in a storage pool (`pool` + `volume`) or an image file by absolute path;
//! `storage::resolve_disk` turns either into a file. The guest sees it as a virtio-blk device
//! whose Linux name is its `target` (`vda`, `vdb`, ...).
//!
//! A disk also records its image's **format** (`format = "raw"`): vmux fills it in when the disk
//! is defined (from the volume's record in its pool, `,format=` on the command line, or the
//! file's extension) and never decides it from the image's content afterwards. Backing files
//! outside every pool directory are followed only when listed in `allow_backing`
//! (`,allow-backing=/path` on the command line). See docs/security.md, "Image files".
//!
//! ```toml
//! [[disks]]
//! pool = "default"
//! volume = "web1.qcow2"
//! format = "qcow2"
//!
//! [[disks]]
//! path = "/srv/iso/data.raw"
//! format = "raw"
//! readonly = true
//! target = "vdc"
//! serial = "DATA-1"
//!
//! [[disks]]
//! path = "/srv/vm/web2.qcow2"
//! format = "qcow2"
//! allow_backing = ["/srv/base/debian-12.raw"]
//! ```

use super::image_format::ImageFormat;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Most bytes a virtio-blk serial number holds (`VIRTIO_BLK_ID_BYTES`).
pub const SERIAL_MAX_LEN: usize = 20;

/// Longest volume file name accepted (leaves room for snapshot overlay names, which append
/// `.<snapshot>` to a volume's stem, under the usual 255-byte file-name limit).
pub const VOLUME_NAME_MAX_LEN: usize = 160;

/// Most disks one VM can have: targets `vda`..`vdz`.
pub const MAX_DISKS: usize = 26;

/// Where a disk's image lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DiskSource {
    /// A volume (a file) in a storage pool.
    Volume {
        /// Pool name (see `PoolConfig`).
        pool: String,
        /// File name of the volume inside the pool's directory.
        volume: String,
    },
    /// An image file outside any pool, by absolute path.
    Path(PathBuf),
}

impl fmt::Display for DiskSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskSource::Volume { pool, volume } => write!(f, "{pool}/{volume}"),
            DiskSource::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

/// One disk of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "DiskToml", into = "DiskToml")]
pub struct DiskConfig {
    /// The image.
    pub source: DiskSource,
    /// The guest cannot write (virtio-blk `VIRTIO_BLK_F_RO`); the image is opened read-only.
    pub readonly: bool,
    /// Guest device name (`vda`..`vdz`); `None` takes the first free one in disk order.
    pub target: Option<String>,
    /// Serial number the guest reads (at most 20 printable ASCII bytes).
    pub serial: Option<String>,
    /// The image's format, recorded when the disk was defined; `None` only in definitions
    /// written before vmux recorded formats (filled in at the next start, see
    /// `storage::StorageManager::record_disk_formats`).
    pub format: Option<ImageFormat>,
    /// Backing files outside every pool directory that this disk's image chain may use
    /// (absolute paths the user allowed explicitly).
    pub allow_backing: Vec<PathBuf>,
}

/// The on-disk shape of [`DiskConfig`]: flat optional keys, checked by `TryFrom`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiskToml {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    volume: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<ImageFormat>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    allow_backing: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    readonly: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    serial: Option<String>,
}

impl TryFrom<DiskToml> for DiskConfig {
    type Error = String;

    fn try_from(raw: DiskToml) -> Result<DiskConfig, String> {
        let source = match (raw.pool, raw.volume, raw.path) {
            (Some(pool), Some(volume), None) => DiskSource::Volume { pool, volume },
            (None, None, Some(path)) => DiskSource::Path(path),
            (_, _, Some(_)) => {
                return Err("a disk has both `path` and `pool`/`volume`; keep one of them".into());
            }
            (Some(pool), None, None) => {
                return Err(format!(
                    "the disk in pool '{pool}' has no `volume`; add volume = \"<file>\""
                ));
            }
            (None, Some(volume), None) => {
                return Err(format!(
                    "the disk '{volume}' has no `pool`; add pool = \"default\" (or another pool)"
                ));
            }
            (None, None, None) => {
                return Err("a disk needs `pool` and `volume`, or an absolute `path`".into());
            }
        };
        let disk = DiskConfig {
            source,
            readonly: raw.readonly,
            target: raw.target,
            serial: raw.serial,
            format: raw.format,
            allow_backing: raw.allow_backing,
        };
        disk.validate()?;
        Ok(disk)
    }
}

impl From<DiskConfig> for DiskToml {
    fn from(disk: DiskConfig) -> DiskToml {
        let (pool, volume, path) = match disk.source {
            DiskSource::Volume { pool, volume } => (Some(pool), Some(volume), None),
            DiskSource::Path(path) => (None, None, Some(path)),
        };
        DiskToml {
            pool,
            volume,
            path,
            format: disk.format,
            allow_backing: disk.allow_backing,
            readonly: disk.readonly,
            target: disk.target,
            serial: disk.serial,
        }
    }
}

impl DiskConfig {
    /// A writable disk on `pool`/`volume` with an automatic target and no serial.
    pub fn volume(pool: &str, volume: &str) -> DiskConfig {
        DiskConfig {
            source: DiskSource::Volume {
                pool: pool.to_string(),
                volume: volume.to_string(),
            },
            readonly: false,
            target: None,
            serial: None,
            format: None,
            allow_backing: Vec::new(),
        }
    }

    /// Checks names, path, target, serial and allowed backing paths (no host access).
    pub fn validate(&self) -> Result<(), String> {
        match &self.source {
            DiskSource::Volume { pool, volume } => {
                super::validate_name(pool).map_err(|e| format!("disk pool: {e}"))?;
                validate_volume_name(volume)?;
            }
            DiskSource::Path(path) => {
                if !path.is_absolute() {
                    return Err(format!(
                        "disk path {} must be absolute (or use <pool>/<volume>)",
                        path.display()
                    ));
                }
            }
        }
        if let Some(target) = &self.target {
            validate_target(target)?;
        }
        if let Some(path) = self.allow_backing.iter().find(|p| !p.is_absolute()) {
            return Err(format!(
                "allowed backing file {} must be an absolute path",
                path.display()
            ));
        }
        if let Some(serial) = &self.serial {
            let printable = serial.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
            if serial.len() > SERIAL_MAX_LEN || !printable {
                return Err(format!(
                    "disk serial '{serial}' must be at most {SERIAL_MAX_LEN} printable ASCII characters"
                ));
            }
        }
        Ok(())
    }
}

/// Parses the command-line form:
/// `<pool>/<volume>[,readonly][,target=vdX][,serial=S][,format=F][,allow-backing=/path]...`
/// or `/abs/path[,...]`.
impl FromStr for DiskConfig {
    type Err = String;

    fn from_str(text: &str) -> Result<DiskConfig, String> {
        let mut parts = text.split(',');
        let source_text = parts.next().unwrap_or_default();
        let source = if source_text.starts_with('/') {
            DiskSource::Path(PathBuf::from(source_text))
        } else {
            match source_text.split_once('/') {
                Some((pool, volume)) if !pool.is_empty() && !volume.contains('/') => {
                    DiskSource::Volume {
                        pool: pool.to_string(),
                        volume: volume.to_string(),
                    }
                }
                _ => {
                    return Err(format!(
                        "'{source_text}' is not a disk; write <pool>/<volume> (like default/web1.qcow2) or an absolute path"
                    ));
                }
            }
        };
        let mut disk = DiskConfig {
            source,
            readonly: false,
            target: None,
            serial: None,
            format: None,
            allow_backing: Vec::new(),
        };
        for option in parts {
            match option.split_once('=') {
                None if option == "readonly" || option == "ro" => disk.readonly = true,
                Some(("target", value)) => disk.target = Some(value.to_string()),
                Some(("serial", value)) => disk.serial = Some(value.to_string()),
                Some(("format", value)) => disk.format = Some(value.parse()?),
                Some(("allow-backing", value)) => disk.allow_backing.push(PathBuf::from(value)),
                _ => {
                    return Err(format!(
                        "unknown disk option '{option}'; the options are readonly, target=vdX, serial=TEXT, format=raw|qcow2 and allow-backing=/PATH"
                    ));
                }
            }
        }
        disk.validate()?;
        Ok(disk)
    }
}

impl fmt::Display for DiskConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if self.readonly {
            write!(f, ",readonly")?;
        }
        if let Some(target) = &self.target {
            write!(f, ",target={target}")?;
        }
        if let Some(serial) = &self.serial {
            write!(f, ",serial={serial}")?;
        }
        if let Some(format) = self.format {
            write!(f, ",format={format}")?;
        }
        for path in &self.allow_backing {
            write!(f, ",allow-backing={}", path.display())?;
        }
        Ok(())
    }
}

/// Checks a volume file name: 1..=160 characters of `[A-Za-z0-9._-]`, not starting with `.`
/// (vmux keeps its temporary files as dot files) or `-`.
pub fn validate_volume_name(name: &str) -> Result<(), String> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty()
        || name.len() > VOLUME_NAME_MAX_LEN
        || !valid_chars
        || name.starts_with(['.', '-'])
    {
        return Err(format!(
            "'{name}' is not a valid volume name; use 1-{VOLUME_NAME_MAX_LEN} characters from A-Z a-z 0-9 . _ - (not starting with . or -), like web1.qcow2"
        ));
    }
    Ok(())
}

/// Checks a guest device name: `vda`..`vdz`.
fn validate_target(target: &str) -> Result<(), String> {
    let bytes = target.as_bytes();
    if bytes.len() == 3 && target.starts_with("vd") && bytes[2].is_ascii_lowercase() {
        Ok(())
    } else {
        Err(format!(
            "disk target '{target}' is not valid; use vda, vdb, ... vdz"
        ))
    }
}

/// The guest device name of every disk, in order: explicit targets are kept, the others get the
/// first free name (`vda`, `vdb`, ...). Fails on duplicates or more than 26 disks.
pub fn assign_targets(disks: &[DiskConfig]) -> Result<Vec<String>, String> {
    if disks.len() > MAX_DISKS {
        return Err(format!(
            "{} disks given; a VM can have at most {MAX_DISKS} (vda..vdz)",
            disks.len()
        ));
    }
    let mut taken: Vec<&str> = Vec::new();
    for target in disks.iter().filter_map(|d| d.target.as_deref()) {
        if taken.contains(&target) {
            return Err(format!(
                "two disks use target {target}; give each disk its own target"
            ));
        }
        taken.push(target);
    }
    let mut free = (b'a'..=b'z')
        .map(|c| format!("vd{}", c as char))
        .filter(|name| !taken.contains(&name.as_str()));
    disks
        .iter()
        .map(|disk| match &disk.target {
            Some(target) => Ok(target.clone()),
            None => free
                .next()
                .ok_or_else(|| "no free disk target left (vda..vdz)".to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_form_with_every_option_parses() {
        let disk: DiskConfig = "default/data.raw,readonly,target=vdc,serial=DATA-1"
            .parse()
            .expect("parse");
        assert_eq!(
            disk.source,
            DiskSource::Volume {
                pool: "default".into(),
                volume: "data.raw".into()
            }
        );
        assert!(disk.readonly);
        assert_eq!(disk.target.as_deref(), Some("vdc"));
        assert_eq!(disk.serial.as_deref(), Some("DATA-1"));
        assert_eq!(disk.to_string().parse::<DiskConfig>(), Ok(disk));
    }

    #[test]
    fn format_and_allowed_backing_files_parse_and_print_back() {
        let disk: DiskConfig = "/srv/top.qcow2,format=qcow2,allow-backing=/srv/base.raw"
            .parse()
            .expect("parse");
        assert_eq!(disk.format, Some(ImageFormat::Qcow2));
        assert_eq!(disk.allow_backing, [PathBuf::from("/srv/base.raw")]);
        assert_eq!(disk.to_string().parse::<DiskConfig>(), Ok(disk));
    }

    #[test]
    fn a_relative_allowed_backing_file_and_an_unknown_format_are_refused() {
        let err = "default/a.qcow2,allow-backing=base.raw"
            .parse::<DiskConfig>()
            .expect_err("relative");
        assert!(err.contains("absolute"), "{err}");
        let err = "default/a,format=vmdk"
            .parse::<DiskConfig>()
            .expect_err("unknown format");
        assert!(err.contains("raw or qcow2"), "{err}");
    }

    #[test]
    fn absolute_path_form_parses() {
        let disk: DiskConfig = "/srv/a.qcow2".parse().expect("parse");
        assert_eq!(disk.source, DiskSource::Path("/srv/a.qcow2".into()));
        assert!(!disk.readonly);
    }

    #[test]
    fn a_bare_name_is_refused_with_the_expected_form() {
        let err = "web1.qcow2".parse::<DiskConfig>().expect_err("must fail");
        assert!(err.contains("<pool>/<volume>"), "{err}");
    }

    #[test]
    fn an_unknown_option_is_named() {
        let err = "default/a.raw,cache=none"
            .parse::<DiskConfig>()
            .expect_err("must fail");
        assert!(err.contains("cache=none"), "{err}");
    }

    #[test]
    fn bad_target_and_long_serial_are_refused() {
        assert!("default/a.raw,target=sda".parse::<DiskConfig>().is_err());
        assert!("default/a.raw,target=vdaa".parse::<DiskConfig>().is_err());
        let long = format!("default/a.raw,serial={}", "x".repeat(21));
        assert!(long.parse::<DiskConfig>().is_err());
    }

    #[test]
    fn volume_names_cannot_escape_the_pool() {
        for bad in ["../x", "a/b", ".hidden", "", "-x"] {
            assert!(validate_volume_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_volume_name("web1.before-upgrade.qcow2").is_ok());
    }

    #[test]
    fn toml_round_trip_for_both_sources() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Doc {
            disks: Vec<DiskConfig>,
        }
        let doc = Doc {
            disks: vec![
                DiskConfig::volume("default", "web1.qcow2"),
                "/srv/d.raw,readonly,serial=S1".parse().expect("parse"),
            ],
        };
        let text = toml::to_string(&doc).expect("serialize");
        assert!(text.contains("volume = \"web1.qcow2\""), "{text}");
        assert!(!text.contains("readonly = false"), "{text}");
        assert_eq!(toml::from_str::<Doc>(&text).expect("parse"), doc);
    }

    #[test]
    fn toml_with_path_and_pool_is_refused() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Doc {
            disks: Vec<DiskConfig>,
        }
        let err = toml::from_str::<Doc>(
            "[[disks]]\npool = \"default\"\nvolume = \"a.raw\"\npath = \"/a\"\n",
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("keep one"), "{err}");
    }

    #[test]
    fn targets_fill_gaps_around_explicit_ones() {
        let mut second = DiskConfig::volume("default", "b.raw");
        second.target = Some("vda".into());
        let disks = vec![DiskConfig::volume("default", "a.raw"), second];
        assert_eq!(assign_targets(&disks).expect("assign"), ["vdb", "vda"]);
    }

    #[test]
    fn duplicate_targets_are_refused() {
        let mut a = DiskConfig::volume("default", "a.raw");
        a.target = Some("vdb".into());
        let b = a.clone();
        assert!(
            assign_targets(&[a, b])
                .expect_err("must fail")
                .contains("vdb")
        );
    }
}
