//! [`VmHandle::save`]: writing a running (or paused) VM to a save file, as `virsh save` does.
//!
//! Order: pause every vCPU (unless paused already), end their threads so their state can be
//! read (the vCPUs stay, parked), quiesce the devices (each finishes what its driver made
//! available, then stops: nothing is in flight), flush the disks, capture every piece of
//! state, ask the owner for its record (disk fingerprints taken now, after the flush), and
//! write the file atomically. On success the VM stays stopped and the caller ends it; on any
//! failure the devices and vCPU threads start again and a VM that was running resumes, as if
//! nothing had happened (and no file is left behind).

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::{EngineError, VmHandle};
use crate::engine::devices::bus::lock;
use crate::engine::hotplug::HotplugError;
use crate::engine::memory;
use crate::engine::snapshot::{self, SaveHeader, SaveTotals, VmState};

/// What a finished save wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveReport {
    /// File size, bytes.
    pub file_bytes: u64,
    /// Guest memory in the file, bytes.
    pub memory_bytes: u64,
    /// Guest memory the host had backed when saved (the pages considered), bytes.
    pub touched_bytes: u64,
}

/// Why a save failed; the VM carries on as before.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// A vCPU's state could not be read.
    #[error("cannot read the state of the vCPUs")]
    Vcpu(#[source] snapshot::VcpuStateError),
    /// A vCPU to save has no parked thread (it was plugged while the save started).
    #[error("vCPU {index} could not be stopped for the save")]
    VcpuBusy {
        /// vCPU index.
        index: u32,
    },
    /// The in-kernel devices' state could not be read.
    #[error("cannot read the interrupt controllers, PIT or clock")]
    Platform(#[source] snapshot::PlatformStateError),
    /// A disk could not flush its completed writes.
    #[error("the disk in PCI slot {slot} cannot flush its writes")]
    Flush {
        /// The disk's slot.
        slot: u8,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The owner could not describe the VM (e.g. a disk image cannot be examined).
    #[error("{0}")]
    Owner(String),
    /// The file could not be written (no partial file is left).
    #[error(transparent)]
    File(#[from] snapshot::SaveFileError),
}

impl VmHandle {
    /// Saves the VM to `path`. `owner` is called once the VM is quiesced and its disks
    /// flushed, and returns what the VM's owner records in the file's header (its definition,
    /// disk fingerprints). On success the VM stays stopped (paused, threads ended, devices
    /// quiesced): end it with [`destroy`](Self::destroy). On failure it carries on as before.
    pub fn save(
        &self,
        path: &Path,
        owner: &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<SaveReport, EngineError> {
        let mut vcpus = lock(&self.shared.vcpus);
        let Some(set) = vcpus.as_mut() else {
            return Err(HotplugError::NotRunning.into());
        };
        if self.shared.lifecycle.exit().is_some() {
            return Err(HotplugError::NotRunning.into());
        }
        // Each stage is logged with its time, so vmd.log says where a slow save spends it.
        let started = Instant::now();
        let was_paused = self.shared.lifecycle.is_paused();
        if !was_paused {
            self.shared.lifecycle.pause()?;
        }
        log::info!("save: vCPUs paused ({} ms)", started.elapsed().as_millis());
        let parked = set.park_threads();
        log::info!(
            "save: vCPU threads {parked:?} ended ({} ms)",
            started.elapsed().as_millis()
        );
        let pci = lock(&self.shared.pci);
        if let Some(platform) = pci.as_ref() {
            platform.quiesce();
        }
        log::info!(
            "save: devices quiesced ({} ms)",
            started.elapsed().as_millis()
        );
        let result = self.capture_and_write(set, pci.as_ref(), path, owner);
        if result.is_ok() {
            return result.map_err(EngineError::Save);
        }
        if let Some(platform) = pci.as_ref() {
            platform.resume();
        }
        drop(pci);
        if let Err(e) = set.unpark_threads(&parked) {
            self.shared
                .lifecycle
                .request_exit(crate::engine::VmExit::Crashed(format!(
                    "cannot restart the vCPU threads after a failed save: {e}"
                )));
        } else if !was_paused {
            // Nobody else resumes a VM the save paused; a failure here leaves it paused.
            let _ = self.shared.lifecycle.resume();
        }
        result.map_err(EngineError::Save)
    }

    fn capture_and_write(
        &self,
        set: &crate::engine::hotplug::vcpus::VcpuSet,
        pci: Option<&crate::engine::pci::PciPlatform>,
        path: &Path,
        owner: &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<SaveReport, SaveError> {
        if let Some(platform) = pci {
            platform
                .sync()
                .map_err(|(slot, source)| SaveError::Flush { slot, source })?;
        }
        let cpu_hotplug = self.shared.cpus.save_state();
        let mut vcpu_states = Vec::new();
        for (index, slot) in cpu_hotplug.slots.iter().enumerate() {
            if !slot.plugged {
                continue;
            }
            let index = index as u32;
            let fd = set.vcpu_fd(index).ok_or(SaveError::VcpuBusy { index })?;
            vcpu_states.push(
                snapshot::capture_vcpu(fd, index, &self.shared.caps).map_err(SaveError::Vcpu)?,
            );
        }
        let state = VmState {
            vcpus: vcpu_states,
            platform: snapshot::capture_platform(set.vm_fd()).map_err(SaveError::Platform)?,
            serial: lock(&self.shared.serial).save_state(),
            ged: lock(&self.shared.ged).save_state(),
            cpu_hotplug,
            pci_hotplug: self.shared.pci_hotplug.save_state(),
            pci: pci.map(|p| p.save_state()).unwrap_or_default(),
        };
        let owner = owner().map_err(SaveError::Owner)?;
        let header = SaveHeader {
            vmux_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            memory_bytes: self.shared.memory_bytes,
            max_vcpus: self.shared.cpus.max_vcpus(),
            vcpus: state.vcpus.len() as u32,
            owner,
        };
        let mem = lock(&self.shared.mem)
            .clone()
            .ok_or(SaveError::Owner("the VM's memory is gone".into()))?;
        let touched_bytes = memory::touched_bytes(&mem);
        log::info!(
            "save: state captured, writing {} bytes of touched memory to {}",
            touched_bytes,
            path.display()
        );
        let SaveTotals { file_bytes, pages } = snapshot::file::write(path, &header, &state, &mem)?;
        Ok(SaveReport {
            file_bytes,
            memory_bytes: pages * snapshot::memory::PAGE,
            touched_bytes,
        })
    }
}
