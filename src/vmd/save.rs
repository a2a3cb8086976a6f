//! Saving in vmd: the `save` command (`vmux save`, `managedsave`), and what vmd writes into a
//! save file's header about its VM ([`SaveRecord`]): the definition at the time of the save,
//! each disk with where it was plugged and a fingerprint of its image, and the state the VM
//! should be in after a restore.
//!
//! Disks are not copied (as `virsh save`): a restore must find every image as the save left
//! it, or the guest's idea of its disk (in its memory, in flight) would not match the disk.
//! The fingerprint is the image's size, modification time (nanoseconds) and inode, taken after
//! the engine flushed the disk; a restore refuses an image whose fingerprint differs unless
//! forced. The definition check refuses a save whose machine shape (memory, max vCPUs, NICs,
//! balloon) no longer matches the VM's definition.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::boot::error_chain;
use super::supervisor::{Supervisor, protocol_error};
use crate::config::{VmConfig, format_size};
use crate::protocol::{ErrorKind, ProtocolError, RunState, SaveInfo};

/// What vmd records in a save file (the header's `owner`, as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveRecord {
    /// The VM's name.
    pub vm: String,
    /// Its definition when it was saved.
    pub definition: VmConfig,
    /// Its disks in PCI slot order (the order a restore plugs them in).
    pub disks: Vec<DiskRecord>,
    /// Whether a restore leaves the VM paused.
    pub paused: bool,
}

/// One disk of a saved VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskRecord {
    /// Guest device name.
    pub target: String,
    /// The image (the top of its chain).
    pub path: PathBuf,
    /// Plugged read-only.
    pub read_only: bool,
    /// The serial number the guest read.
    pub serial: String,
    /// PCI slot.
    pub slot: u8,
    /// The image when saved.
    pub fingerprint: Fingerprint,
    /// A hot-added disk's recorded format (a disk of the definition opens as that says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<crate::config::ImageFormat>,
    /// A hot-added disk's backing files outside the pools (`attach-disk --allow-backing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_backing: Vec<PathBuf>,
}

/// What identifies an image's contents cheaply: a write changes the modification time, a
/// replaced file the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    /// Size, bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub modified_ns: i128,
    /// Inode number.
    pub inode: u64,
}

impl Fingerprint {
    /// The fingerprint of the file at `path` now.
    pub fn of(path: &Path) -> std::io::Result<Fingerprint> {
        let meta = std::fs::metadata(path)?;
        Ok(Fingerprint {
            size: meta.len(),
            modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            inode: meta.ino(),
        })
    }
}

impl SaveRecord {
    /// Parses the owner record of a save file.
    pub fn parse(owner: &str) -> Result<SaveRecord, String> {
        serde_json::from_str(owner).map_err(|e| {
            format!(
                "its VM record does not fit this vmux ({e}); restore it with the vmux that saved it"
            )
        })
    }

    /// Refuses a save whose machine differs from `current`, the VM's definition now: the
    /// restored guest would find other hardware than it had.
    pub fn check_definition(&self, current: &VmConfig) -> Result<(), String> {
        let saved = &self.definition;
        if self.vm != current.name {
            return Err(format!(
                "the save belongs to VM '{}', not '{}'",
                self.vm, current.name
            ));
        }
        let differs = |what: &str, then: String, now: String| {
            Err(format!(
                "VM '{}' had {what} {then} when it was saved but its definition now has {now}; \
                 change the definition back to restore it, or discard the save",
                current.name
            ))
        };
        if saved.memory != current.memory {
            return differs(
                "memory",
                format_size(saved.memory),
                format_size(current.memory),
            );
        }
        if saved.max_vcpus != current.max_vcpus {
            return differs(
                "max_vcpus",
                saved.max_vcpus.to_string(),
                current.max_vcpus.to_string(),
            );
        }
        if saved.balloon != current.balloon {
            let word = |b: bool| if b { "a balloon" } else { "no balloon" }.to_string();
            return differs("", word(saved.balloon), word(current.balloon));
        }
        let macs = |c: &VmConfig| c.nics.iter().map(|n| n.mac.to_string()).collect::<Vec<_>>();
        if macs(saved) != macs(current) {
            return differs(
                "network interfaces",
                format!("[{}]", macs(saved).join(", ")),
                format!("[{}]", macs(current).join(", ")),
            );
        }
        Ok(())
    }

    /// Refuses a save when a disk image changed since (unless `force`): names the disk and
    /// what changed.
    pub fn check_disks(&self, force: bool) -> Result<(), String> {
        for disk in &self.disks {
            let now = Fingerprint::of(&disk.path).map_err(|e| {
                format!(
                    "disk {} ({}) of the saved VM cannot be examined: {e}",
                    disk.target,
                    disk.path.display()
                )
            })?;
            if now == disk.fingerprint || force {
                continue;
            }
            let what = if now.inode != disk.fingerprint.inode {
                "was replaced by another file"
            } else if now.size != disk.fingerprint.size {
                "changed size"
            } else {
                "was written to"
            };
            return Err(format!(
                "disk {} ({}) {what} since the VM was saved, so the saved guest would not find \
                 its disk as it left it; discard the save, or restore with --force to accept \
                 the risk of file-system damage",
                disk.target,
                disk.path.display()
            ));
        }
        Ok(())
    }
}

impl Supervisor {
    /// `save`: writes the VM to `path` and ends it (the exit reason says where it went).
    pub(super) fn save(
        &self,
        path: &Path,
        paused: Option<bool>,
    ) -> Result<SaveInfo, ProtocolError> {
        let started = Instant::now();
        let _serial = self.lock_commands();
        let (control, state) = self.current()?;
        let invalid = |message: String| protocol_error(ErrorKind::InvalidArgument, message);
        if !path.is_absolute() {
            return Err(invalid(format!(
                "the save file {} is not an absolute path; give the full path",
                path.display()
            )));
        }
        if !path.parent().is_some_and(Path::is_dir) {
            return Err(invalid(format!(
                "the directory of {} does not exist; create it first",
                path.display()
            )));
        }
        let definition = self.definition().ok_or_else(|| {
            protocol_error(
                ErrorKind::InvalidState,
                "this VM has no definition to record (a transient VM cannot be saved)",
            )
        })?;
        let paused = paused.unwrap_or(state == RunState::Paused);
        let disks = self.disk_records();
        let name = self.name.clone();
        let mut owner = || {
            let disks = disks
                .iter()
                .map(|disk| {
                    Ok(DiskRecord {
                        target: disk.target.clone(),
                        path: disk.path.clone(),
                        read_only: disk.read_only,
                        serial: disk.serial.clone(),
                        slot: disk.slot,
                        fingerprint: Fingerprint::of(&disk.path).map_err(|e| {
                            format!(
                                "cannot examine disk {} ({}): {e}",
                                disk.target,
                                disk.path.display()
                            )
                        })?,
                        format: disk.reopen.format,
                        allow_backing: disk.reopen.allow_backing.clone(),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let record = SaveRecord {
                vm: name.clone(),
                definition: definition.clone(),
                disks,
                paused,
            };
            serde_json::to_string(&record).map_err(|e| e.to_string())
        };
        let report = control.save(path, &mut owner).map_err(|e| {
            protocol_error(
                ErrorKind::Engine,
                format!(
                    "cannot save VM '{}' (it keeps running): {}",
                    self.name,
                    error_chain(e.as_ref())
                ),
            )
        })?;
        log::info!(
            "saved to {} ({} bytes, {} bytes of memory)",
            path.display(),
            report.file_bytes,
            report.memory_bytes
        );
        self.saved(path);
        Ok(SaveInfo {
            path: path.to_path_buf(),
            file_bytes: report.file_bytes,
            saved_memory_bytes: report.memory_bytes,
            save_ms: started.elapsed().as_millis() as u64,
            paused_after_restore: paused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BootConfig;

    fn record(definition: VmConfig) -> SaveRecord {
        SaveRecord {
            vm: definition.name.clone(),
            definition,
            disks: Vec::new(),
            paused: false,
        }
    }

    #[test]
    fn a_save_of_another_shape_is_refused_naming_the_change() {
        let saved = VmConfig::new("web", BootConfig::Demo);
        let mut now = saved.clone();
        now.memory *= 2;
        let err = record(saved).check_definition(&now).expect_err("differs");
        assert!(err.contains("memory 256M when it was saved"), "{err}");
        assert!(err.contains("now has 512M"), "{err}");
    }

    #[test]
    fn a_save_of_another_vm_is_refused() {
        let saved = VmConfig::new("web", BootConfig::Demo);
        let err = record(saved)
            .check_definition(&VmConfig::new("db", BootConfig::Demo))
            .expect_err("other VM");
        assert!(err.contains("belongs to VM 'web'"), "{err}");
    }

    #[test]
    fn a_changed_disk_is_refused_unless_forced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("disk.raw");
        std::fs::write(&path, [0u8; 512]).expect("write");
        let mut saved = record(VmConfig::new("web", BootConfig::Demo));
        saved.disks.push(DiskRecord {
            target: "vda".into(),
            path: path.clone(),
            read_only: false,
            serial: "x".into(),
            slot: 1,
            fingerprint: Fingerprint::of(&path).expect("stat"),
            format: None,
            allow_backing: Vec::new(),
        });
        assert_eq!(saved.check_disks(false), Ok(()));
        std::fs::write(&path, [0u8; 1024]).expect("grow");

        let err = saved.check_disks(false).expect_err("changed");

        assert!(
            err.contains("disk vda") && err.contains("changed size"),
            "{err}"
        );
        assert!(err.contains("--force"), "{err}");
        assert_eq!(saved.check_disks(true), Ok(()));
    }
}
