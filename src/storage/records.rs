//! Volume records: what vmux knows about each volume of a pool that the file itself must not be
//! trusted to say, kept in `.vmux-volumes.toml` in the pool's directory (a dot file, so never
//! taken for a volume). Today that is the format, recorded when vmux creates a volume (create,
//! clone, convert, upload) or when the user records it (`vmux vol-set-format`), so a raw
//! volume stays raw whatever its guest writes into it.
//!
//! ```toml
//! # Written by vmux: the format of each volume of this pool.
//! [volumes]
//! "data" = { format = "raw" }
//! "web1.qcow2" = { format = "qcow2" }
//! ```
//!
//! Updates are read-modify-write under an `flock` on the pool directory itself and replace the
//! file atomically (`config::write_atomic`), so two vmux commands never lose each other's
//! records and a kill leaves the old file or the new one.

use super::StorageError;
use crate::config::{ImageFormat, write_atomic};
use nix::fcntl::{Flock, FlockArg, OFlag};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The records file in a pool directory.
pub const RECORDS_FILE: &str = ".vmux-volumes.toml";

/// What is recorded about one volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeRecord {
    /// The volume's format.
    pub format: ImageFormat,
}

/// The records of one pool, by volume name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeRecords {
    /// Volume name → record.
    #[serde(default)]
    pub volumes: BTreeMap<String, VolumeRecord>,
}

impl VolumeRecords {
    /// The records of the pool in `dir`; none when the file does not exist yet.
    pub fn load(dir: &Path) -> Result<VolumeRecords, StorageError> {
        let path = dir.join(RECORDS_FILE);
        let text = match read_nofollow(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(VolumeRecords::default());
            }
            Err(source) => {
                return Err(StorageError::PoolIo {
                    op: "read",
                    path,
                    source,
                });
            }
        };
        toml::from_str(&text).map_err(|e| {
            StorageError::Invalid(format!(
                "the volume records {} cannot be read: {}; fix the file, or move it away and record each volume's format again with `vmux vol-set-format`",
                path.display(),
                e.message().trim()
            ))
        })
    }

    /// The recorded format of `volume`, if any.
    pub fn format(&self, volume: &str) -> Option<ImageFormat> {
        self.volumes.get(volume).map(|r| r.format)
    }

    /// Changes the records of the pool in `dir` with `change`, under the pool's lock.
    pub fn update(dir: &Path, change: impl FnOnce(&mut VolumeRecords)) -> Result<(), StorageError> {
        let _lock = lock_dir(dir)?;
        let mut records = VolumeRecords::load(dir)?;
        let before = records.clone();
        change(&mut records);
        if records == before {
            return Ok(());
        }
        let path = dir.join(RECORDS_FILE);
        let text = format!(
            "# Written by vmux: the format of each volume of this pool (docs/storage.md).\n{}",
            toml::to_string(&records).map_err(|e| StorageError::Invalid(e.to_string()))?
        );
        write_atomic(&path, text.as_bytes()).map_err(|source| StorageError::PoolIo {
            op: "write",
            path,
            source,
        })
    }

    /// Records `format` for `volume` in the pool in `dir`.
    pub fn record(dir: &Path, volume: &str, format: ImageFormat) -> Result<(), StorageError> {
        VolumeRecords::update(dir, |records| {
            records
                .volumes
                .insert(volume.to_string(), VolumeRecord { format });
        })
    }

    /// Forgets `volume` in the pool in `dir`.
    pub fn forget(dir: &Path, volume: &str) -> Result<(), StorageError> {
        VolumeRecords::update(dir, |records| {
            records.volumes.remove(volume);
        })
    }
}

/// Reads `path` as text without following a symbolic link.
fn read_nofollow(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// Takes the exclusive `flock` on directory `dir` (waiting for other vmux commands).
fn lock_dir(dir: &Path) -> Result<Flock<File>, StorageError> {
    let io_error = |source| StorageError::PoolIo {
        op: "lock",
        path: PathBuf::from(dir),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_DIRECTORY.bits())
        .open(dir)
        .map_err(io_error)?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| io_error(std::io::Error::from(errno)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_missing_file_means_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            VolumeRecords::load(dir.path()).expect("load"),
            VolumeRecords::default()
        );
        VolumeRecords::record(dir.path(), "data", ImageFormat::Raw).expect("record");
        VolumeRecords::record(dir.path(), "web1.qcow2", ImageFormat::Qcow2).expect("record");
        VolumeRecords::forget(dir.path(), "web1.qcow2").expect("forget");

        let records = VolumeRecords::load(dir.path()).expect("load");
        assert_eq!(records.format("data"), Some(ImageFormat::Raw));
        assert_eq!(records.format("web1.qcow2"), None);
    }

    #[test]
    fn concurrent_recorders_lose_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::thread::scope(|scope| {
            for t in 0..4 {
                let dir = dir.path();
                scope.spawn(move || {
                    for i in 0..10 {
                        VolumeRecords::record(dir, &format!("v{t}-{i}"), ImageFormat::Raw)
                            .expect("record");
                    }
                });
            }
        });
        assert_eq!(
            VolumeRecords::load(dir.path()).expect("load").volumes.len(),
            40
        );
    }

    #[test]
    fn a_broken_records_file_names_itself_and_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(RECORDS_FILE), "volumes = 3").expect("write");
        let err = VolumeRecords::load(dir.path()).expect_err("broken");
        assert!(err.to_string().contains(RECORDS_FILE), "{err}");
        assert!(err.to_string().contains("vol-set-format"), "{err}");
    }

    #[test]
    fn a_records_file_that_is_a_symlink_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let elsewhere = tempfile::tempdir().expect("elsewhere");
        let target = elsewhere.path().join("x.toml");
        std::fs::write(&target, "[volumes]\n").expect("write");
        std::os::unix::fs::symlink(&target, dir.path().join(RECORDS_FILE)).expect("symlink");
        assert!(VolumeRecords::load(dir.path()).is_err());
    }
}
