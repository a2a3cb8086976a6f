//! Restoring in vmd: open a save file, check it belongs to this VM as defined now and that its
//! disks are as the save left them, and open those disks in the order the save plugged them.
//! The boot loop then builds the VM from the file ([`super::boot::restore`]).

use super::VmdError;
use super::disks::{self, AttachImage, DiskError, OpenDisk};
use super::save::SaveRecord;
use super::start_mode::RestoreMode;
use crate::config::Paths;
use crate::config::VmConfig;
use crate::engine::snapshot::SaveFile;
use crate::storage::StorageManager;

/// An opened, checked save file.
pub struct Saved {
    /// The file, header and state read, memory not yet.
    pub file: SaveFile,
    /// What vmd recorded in it.
    pub record: SaveRecord,
    /// How it is being restored.
    pub mode: RestoreMode,
}

impl Saved {
    /// Whether the VM is to be paused after the restore.
    pub fn paused(&self) -> bool {
        self.mode.paused.unwrap_or(self.record.paused)
    }
}

/// Opens `mode.file` and checks it against `config` (same VM, same machine) and its disks
/// against the images (unchanged, unless forced).
pub fn open(config: &VmConfig, mode: &RestoreMode) -> Result<Saved, VmdError> {
    let refuse = |reason: String| VmdError::Restore {
        file: mode.file.clone(),
        reason,
    };
    let file = SaveFile::open(&mode.file)?;
    let record = SaveRecord::parse(&file.header.owner).map_err(refuse)?;
    record.check_definition(config).map_err(refuse)?;
    record.check_disks(mode.force).map_err(refuse)?;
    Ok(Saved {
        file,
        record,
        mode: mode.clone(),
    })
}

/// Opens the saved VM's disks, in the order it had them plugged: a disk of the definition
/// as a boot opens it (its recorded format and trusted backing files, checked as for a
/// start), a hot-added one as `attach_disk` did (the format and backing files it was given,
/// the pools' files).
pub fn open_disks(
    saved: &Saved,
    paths: &Paths,
    config: &VmConfig,
) -> Result<Vec<OpenDisk>, DiskError> {
    let storage = StorageManager::new(paths.clone());
    let defined = if config.disks.is_empty() {
        Vec::new()
    } else {
        storage.resolve_vm_disks(config)?
    };
    let pools = storage.trust(&[]);
    saved
        .record
        .disks
        .iter()
        .map(|disk| {
            let how = match defined.iter().find(|d| d.path == disk.path) {
                Some(d) => AttachImage {
                    format: Some(d.format),
                    trust: d.trust.clone(),
                    allow_backing: Vec::new(),
                },
                None => AttachImage::new(disk.format, &pools, &disk.allow_backing),
            };
            disks::open_disk(
                &disk.path,
                &disk.target,
                disk.read_only,
                Some(disk.serial.clone()),
                how,
            )
        })
        .collect()
}
