//! Hot-adding and removing vCPUs and disks in a running VM, the ACPI way Linux already
//! supports (DESIGN.md §3).
//!
//! CPU hotplug: [`cpu::CpuHotplug`] keeps each possible vCPU's slot state and serves the
//! register block the DSDT's `\_SB_.CPUS` methods read; [`vcpus::VcpuSet`] owns the vCPUs and
//! their threads. [`resize`] changes the number of plugged vCPUs: new ones are created, parked
//! for INIT/SIPI and started, surplus ones are marked for removal, and the GED's CPU event tells
//! the guest to scan. The guest ejects a removed vCPU itself (`_EJ0`), which stops its thread.
//!
//! Disk hotplug: [`pci::PciHotplug`] plugs virtio-blk functions into free slots of the root
//! bus and serves the slot registers (slots up, slots down, eject) the DSDT's root bridge
//! methods read after the GED's PCI event; an ejected disk leaves the bus and its image is
//! closed.

pub mod cpu;
pub mod pci;
pub mod vcpus;

use super::devices::virtio::blk::BackendError;
use super::layout;
use super::pci::PlatformError;
use super::vcpu::VcpuError;
use cpu::{CpuHotplug, ResizePlan};
use vcpus::VcpuSet;

/// Why a hotplug request failed.
#[derive(Debug, thiserror::Error)]
pub enum HotplugError {
    /// The vCPU count is outside `1..=max_vcpus`.
    #[error(
        "cannot run {requested} vCPUs: this boot allows 1 to {max_vcpus} (its max_vcpus); \
         raise max_vcpus in the definition and restart the VM for more"
    )]
    VcpuCount {
        /// What was asked for.
        requested: u32,
        /// The boot's `max_vcpus`.
        max_vcpus: u32,
    },
    /// The boot has ended.
    #[error("the VM is not running")]
    NotRunning,
    /// A vCPU could not be created or started.
    #[error("cannot add vCPU {index}")]
    AddVcpu {
        /// The vCPU index.
        index: u32,
        /// Why.
        #[source]
        source: VcpuError,
    },
    /// The guest could not be interrupted.
    #[error("cannot raise the hotplug interrupt")]
    Notify(#[source] std::io::Error),
    /// A disk image could not be opened (the message names the file and the fix).
    #[error(transparent)]
    OpenDisk(BackendError),
    /// A disk could not be plugged into the root bus (no free slot, no BAR space).
    #[error("cannot plug the disk into the VM")]
    PlugDisk(#[source] PlatformError),
    /// No disk is plugged in that PCI slot.
    #[error("no disk is plugged in PCI slot {slot}")]
    NoDisk {
        /// The slot asked for.
        slot: u8,
    },
}

/// Changes the plugged vCPUs of a running boot to `count`: adds the missing ones (`count`
/// above the plugged ones), asks the guest to eject the surplus ones, and raises the GED's
/// CPU hotplug event when anything changed. vCPUs added before a failure stay plugged and
/// the guest is still told about them.
pub fn resize(
    set: &mut VcpuSet,
    cpus: &CpuHotplug,
    count: u32,
) -> Result<ResizePlan, HotplugError> {
    let max_vcpus = cpus.max_vcpus();
    if count == 0 || count > max_vcpus || count > layout::MAX_VCPUS {
        return Err(HotplugError::VcpuCount {
            requested: count,
            max_vcpus,
        });
    }
    let plan = cpus.plan_resize(count);
    let mut failure = None;
    for &index in &plan.add {
        if let Err(source) = set.hot_add(index) {
            failure = Some(HotplugError::AddVcpu { index, source });
            break;
        }
    }
    let added_any = plan.add.first().is_some_and(|&i| cpus.is_plugged(i));
    if added_any || !plan.remove.is_empty() || !plan.kept.is_empty() {
        cpus.notify_guest().map_err(HotplugError::Notify)?;
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(plan),
    }
}
