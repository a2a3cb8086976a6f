//! Saving a whole VM to a file and building a VM from one (`vmux save`, `restore`,
//! `managedsave`), the way `virsh save` does: the guest stops at the save and continues from
//! the restore exactly where it was, on the same disks (which are not copied).
//!
//! What is saved ([`VmState`]): every plugged vCPU's architectural state (`vcpu`, with the
//! MSRs of `msrs`), the in-kernel interrupt controllers, PIT and KVM clock (`platform`), and
//! vmux's own devices (`devices`: COM1 with its pending input, the GED, the CPU and PCI hotplug
//! registers, and each PCI function with its transport, queues and device). Guest memory goes
//! to the file separately, only the pages the guest touched (`memory`). `file` is the format
//! and its atomic write; `blob` keeps KVM's structures as bytes.
//!
//! The save itself (pause, park the vCPU threads, quiesce the devices, capture, write, and
//! carry on if anything failed) is `VmHandle::save` in `engine/vm/save.rs`; building a VM from
//! a file is `Vm::restore` in `engine/vm/restore.rs`. [`SAVE_SYSCALLS`] is what a thread that
//! saves may call in a confined vmd.

mod blob;
mod devices;
pub mod file;
pub mod memory;
mod msrs;
mod platform;
mod vcpu;

use serde::{Deserialize, Serialize};
use syscalls::Sysno;

use crate::engine::confine::syscalls::{ArgRule, SyscallList};

pub use blob::{Blob, BlobSizeError};
pub use devices::{
    BalloonState, CpuHotplugState, CpuSlotState, DeviceState, FunctionKind, FunctionState,
    GedState, MsixEntryState, MsixState, PciHotplugState, QueueConfigState, QueueProgress,
    SerialState, TransportState,
};
pub use file::{SaveFile, SaveFileError, SaveHeader, SaveTotals};
pub use platform::{PlatformState, PlatformStateError};
pub use vcpu::{VcpuCaps, VcpuState, VcpuStateError};

pub(crate) use platform::{capture as capture_platform, restore_clock, restore_devices};
pub(crate) use vcpu::{capture as capture_vcpu, restore as restore_vcpu};

/// What the thread that runs `VmHandle::save` may call, on top of the runtime's list: the
/// vCPU, interrupt controller, PIT and clock reads are KVM ioctls (by type); flushing the disks
/// is `fdatasync`; the disk fingerprints are `statx`; the file is written atomically (list the
/// directory for stale partial files, check their writers in /proc, unlink them; create the
/// temporary file, write, seek back to the prefix, `fsync`, rename, `fsync` the directory,
/// unlink it on failure); memory pages are picked from `/proc/self/pagemap` (`openat`,
/// `pread64`); the save's report counts the touched pages with `mincore`. Closing the devices'
/// workers and parking the vCPU threads are joins (futexes, in the runtime's list). A restore
/// runs on vmd's main thread before it confines itself, so it needs no list.
pub const SAVE_SYSCALLS: SyscallList = SyscallList {
    any: &[
        Sysno::openat,
        Sysno::getdents64,
        Sysno::statx,
        Sysno::newfstatat,
        Sysno::fstat,
        Sysno::lseek,
        Sysno::pread64,
        Sysno::fsync,
        Sysno::fdatasync,
        Sysno::rename,
        Sysno::unlink,
        Sysno::mincore,
    ],
    ioctls: &[],
    args: &[ArgRule {
        call: Sysno::ioctl,
        index: 1,
        mask: crate::engine::confine::ioctls::TYPE_MASK,
        values: &[crate::engine::confine::ioctls::KVMIO << 8],
    }],
};

/// Everything but guest memory: the state section of a save file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmState {
    /// Each plugged vCPU, by index.
    pub vcpus: Vec<VcpuState>,
    /// In-kernel interrupt controllers, PIT and clock.
    pub platform: PlatformState,
    /// COM1.
    pub serial: SerialState,
    /// The GED.
    pub ged: GedState,
    /// CPU hotplug registers and which vCPUs are plugged.
    pub cpu_hotplug: CpuHotplugState,
    /// PCI hotplug registers.
    pub pci_hotplug: PciHotplugState,
    /// Every PCI function, in slot order.
    pub pci: Vec<FunctionState>,
}
