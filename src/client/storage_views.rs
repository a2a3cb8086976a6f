//! The plain data the storage host API ([`super::StorageHost`]) answers with: the views of
//! pools and volumes the listings show, the image source of a new VM, and import results.
//! Everything here serializes, so a remote host can send it; errors about single items
//! (a volume that cannot be read) are data too, not `StorageError`s.

use crate::storage::{PoolInfo, PoolStatus, StorageError, VolumeInfo};
use crate::tui::error_text::error_chain;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One file of a pool as a listing shows it: its name, and what it is or why it is no usable
/// volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeView {
    /// File name in the pool.
    pub name: String,
    /// Format, sizes, backing file and users; or why it cannot be used.
    pub info: Result<VolumeInfo, VolumeProblem>,
}

/// Why a file of a pool is listed but cannot be used as a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeProblem {
    /// A symbolic link: vmux never follows links in pools.
    Symlink {
        /// Where it points, when readable.
        target: Option<PathBuf>,
        /// The full explanation, with the fix.
        message: String,
    },
    /// The file cannot be read as a disk image (the message says why).
    Unreadable(String),
}

impl VolumeProblem {
    /// The problem `error` describes, as data.
    pub fn from_error(error: &StorageError) -> VolumeProblem {
        match error {
            StorageError::SymlinkVolume { target, .. } => VolumeProblem::Symlink {
                target: target.clone(),
                message: error_chain(error),
            },
            other => VolumeProblem::Unreadable(error_chain(other)),
        }
    }
}

impl std::fmt::Display for VolumeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VolumeProblem::Symlink { message, .. } | VolumeProblem::Unreadable(message) => {
                f.write_str(message)
            }
        }
    }
}

/// One pool with its figures and, when it is active, its volumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolView {
    /// Name, path, state, autostart, file system figures.
    pub info: PoolInfo,
    /// Its volumes, sorted by name (empty when inactive).
    pub volumes: Vec<VolumeView>,
    /// Why the volumes could not be listed.
    pub error: Option<String>,
}

impl PoolView {
    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.info.status.name
    }

    /// Whether volumes can be used and created now.
    pub fn active(&self) -> bool {
        self.info.status.active
    }

    /// The volume named `name`, when it could be read.
    pub fn volume(&self, name: &str) -> Option<&VolumeInfo> {
        self.volumes
            .iter()
            .find(|v| v.name == name)
            .and_then(|v| v.info.as_ref().ok())
    }

    /// Whether a file named `name` exists in the pool (readable or not).
    pub fn has(&self, name: &str) -> bool {
        self.volumes.iter().any(|v| v.name == name)
    }
}

/// Everything the storage pane shows, read in one go.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StorageSnapshot {
    /// Usable pools, sorted by name.
    pub pools: Vec<PoolView>,
    /// Pool definition files that could not be used, as messages.
    pub broken: Vec<String>,
}

/// A disk image a new VM is made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageSource {
    /// A volume of a pool.
    Volume {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
    },
    /// An image file (a downloaded cloud image), by absolute path.
    File(PathBuf),
}

impl std::fmt::Display for ImageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageSource::Volume { pool, volume } => write!(f, "{pool}/{volume}"),
            ImageSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The pools of a host, as `pool-list` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PoolList {
    /// Usable pools, sorted by name.
    pub pools: Vec<PoolStatus>,
    /// Pool definition files that could not be used, as messages.
    pub broken: Vec<String>,
}

/// A volume an image import made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedVolume {
    /// The new volume (the copy, or the qcow2 overlay of a linked import).
    pub volume: VolumeInfo,
    /// For a linked import of a file: the base volume's name in the same pool.
    pub base: Option<String>,
    /// Whether that base was there already (imported before) rather than made now.
    pub reused_base: bool,
}

impl ImportedVolume {
    /// A volume made without a base volume (a copy, or an overlay on an existing volume).
    pub fn copy(volume: VolumeInfo) -> ImportedVolume {
        ImportedVolume {
            volume,
            base: None,
            reused_base: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_in_a_pool_becomes_data_that_keeps_its_target_and_message() {
        let error = StorageError::SymlinkVolume {
            pool: "default".into(),
            volume: "evil.qcow2".into(),
            target: Some("/etc/shadow".into()),
        };
        let problem = VolumeProblem::from_error(&error);
        let text = serde_json::to_string(&problem).expect("serializes");
        let back: VolumeProblem = serde_json::from_str(&text).expect("deserializes");
        assert_eq!(back, problem);
        let VolumeProblem::Symlink { target, message } = back else {
            panic!("not a symlink: {back:?}");
        };
        assert_eq!(target.as_deref(), Some(std::path::Path::new("/etc/shadow")));
        assert_eq!(message, error.to_string());
    }

    #[test]
    fn an_unreadable_volume_carries_the_whole_cause_chain() {
        let error = StorageError::PoolIo {
            op: "read",
            path: "/pool/a.qcow2".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        let problem = VolumeProblem::from_error(&error);
        let VolumeProblem::Unreadable(message) = &problem else {
            panic!("not unreadable: {problem:?}");
        };
        assert!(
            message.starts_with("cannot read /pool/a.qcow2: "),
            "{message}"
        );
        assert!(message.contains("ermission denied"), "{message}");
    }
}
