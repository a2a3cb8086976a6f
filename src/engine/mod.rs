//! The VMM: one KVM virtual machine with its vCPU threads and devices.
//!
//! This is the only module allowed `unsafe`; every block carries a `// SAFETY:` comment.
//! Callers (vmd) see three things: a [`VmSpec`] saying what to build, a [`Vm`] that owns the
//! machine, and a cloneable [`VmHandle`] for controlling it from other threads. One `Vm` is one
//! boot: a reboot or reset ends it with [`VmExit::Reset`] and vmd builds a fresh one from the
//! same spec.
//!
//! Inside: `vm` (the facade and setup order), `kvm` (opening /dev/kvm), `memory` (RAM layout,
//! e820, touched bytes), `boot` (image loading, zero page, GDT, page tables, boot registers,
//! MSRs, LAPIC), `cpuid`, `acpi` (the tables), `devices` (port/MMIO buses and the legacy
//! devices), `vcpu` (threads, kicks, exit dispatch, crash reports), `lifecycle` (the vCPU
//! state machine, pause and the exit latch), `hotplug` (vCPU hot-add and removal) and
//! `snapshot` (saving a VM to a file and building one from it).

pub mod acpi;
pub mod confine;
pub mod layout;
pub mod snapshot;
pub mod tap;

use std::path::PathBuf;
use std::sync::Arc;

/// What to boot.
#[derive(Debug, Clone, PartialEq)]
pub enum BootSpec {
    /// A kernel file on the host: Linux bzImage, ELF vmlinux, or a static ELF64 program.
    Kernel {
        /// Path to the kernel image.
        kernel: PathBuf,
        /// Optional initramfs, loaded at the top of low RAM.
        initrd: Option<PathBuf>,
        /// Kernel command line (without NUL; at most `layout::CMDLINE_MAX_SIZE - 1` bytes).
        cmdline: String,
    },
    /// A kernel (and initrd) already read into memory: what vmd read out of a disk image's own
    /// /boot for this boot. Loaded by the same code as [`BootSpec::Kernel`].
    Loaded {
        /// How errors name the kernel (`/boot/vmlinuz-6.1.0-28-amd64 in default/web1.qcow2`).
        name: String,
        /// The kernel file's bytes (bzImage, ELF vmlinux or static ELF64).
        kernel: Arc<Vec<u8>>,
        /// The initramfs bytes (several initrds already concatenated), loaded at the top of
        /// low RAM.
        initrd: Option<Arc<Vec<u8>>>,
        /// Kernel command line (without NUL; at most `layout::CMDLINE_MAX_SIZE - 1` bytes).
        cmdline: String,
    },
    /// An ELF64 image held in memory (the built-in demo guest).
    Image {
        /// The ELF file's bytes.
        elf: Arc<[u8]>,
        /// Command line placed in the zero page.
        cmdline: String,
    },
}

/// Everything the engine needs to build one VM.
#[derive(Debug, Clone, PartialEq)]
pub struct VmSpec {
    /// VM name (used in thread names and error messages).
    pub name: String,
    /// vCPUs started at boot (APIC ids `0..vcpus`).
    pub vcpus: u32,
    /// vCPUs the ACPI tables make room for (`vcpus..max_vcpus` are online-capable).
    pub max_vcpus: u32,
    /// Guest RAM in bytes (multiple of 2 MiB).
    pub memory_bytes: u64,
    /// The boot image.
    pub boot: BootSpec,
    /// virtio-blk disks, in PCI slot order (slot 1 upwards; slot 0 is the host bridge).
    pub disks: Vec<DiskSpec>,
    /// virtio-net NICs, in PCI slot order after the disks.
    pub nics: Vec<NicSpec>,
    /// A virtio-balloon device in the last PCI slot (`layout::BALLOON_SLOT`).
    pub balloon: bool,
}

/// One virtio-blk disk: an image the caller opened (qcow2 or raw, through the storage layer),
/// or a raw image file the engine opens itself.
#[derive(Clone)]
pub struct DiskSpec {
    /// The image file on the host (named in errors; opened as raw when `backend` is `None`);
    /// its size, rounded down to 512-byte sectors, is the disk's.
    pub path: PathBuf,
    /// The guest sees a read-only disk (`VIRTIO_BLK_F_RO`) and its writes fail; a raw file is
    /// opened read-only.
    pub read_only: bool,
    /// What the guest reads as the disk's serial number (GET_ID); at most 20 bytes are kept.
    pub serial: String,
    /// An already-open image; shared across reboots of the same vmd.
    pub backend: Option<Arc<dyn DiskBackend>>,
}

impl std::fmt::Debug for DiskSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskSpec")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .field("serial", &self.serial)
            .field("backend", &self.backend.as_ref().map(|_| "open image"))
            .finish()
    }
}

impl PartialEq for DiskSpec {
    /// Two specs are equal when they name the same image the same way (open backends are
    /// compared by identity).
    fn eq(&self, other: &DiskSpec) -> bool {
        let same_backend = match (&self.backend, &other.backend) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        self.path == other.path
            && self.read_only == other.read_only
            && self.serial == other.serial
            && same_backend
    }
}

/// One virtio-net NIC backed by a TAP.
///
/// The TAP is shared (`Arc`): every boot of the VM builds its NIC over the same device, and
/// the interface lives while any holder keeps it open (vmd keeps the original, see
/// `network::Tap`).
#[derive(Debug, Clone)]
pub struct NicSpec {
    /// The TAP the NIC's frames go through: opened with `IFF_VNET_HDR`, header size 12, no
    /// offloads, non-blocking ([`tap::TapDevice::create`] does all that).
    pub tap: Arc<tap::TapDevice>,
    /// The guest's MAC address (`VIRTIO_NET_F_MAC`).
    pub mac: [u8; 6],
}

impl PartialEq for NicSpec {
    /// The same TAP (not merely one of the same name) and the same MAC.
    fn eq(&self, other: &NicSpec) -> bool {
        Arc::ptr_eq(&self.tap, &other.tap) && self.mac == other.mac
    }
}

/// Receives the guest's serial output. Called on vCPU threads with the UART's bytes; must
/// return promptly and never block on a reader (vmd buffers into its ring buffer).
pub trait SerialSink: Send + Sync {
    /// The guest wrote `bytes` to COM1.
    fn write(&self, bytes: &[u8]);
}

/// Hears hotplug facts from a running VM ([`VmHandle::set_observer`]). Called on vCPU threads
/// with no engine lock held; must return promptly and never call back into the VM's handle
/// while blocking a vCPU for long.
pub trait VmObserver: Send + Sync {
    /// The number of online vCPUs changed: the guest started a hot-added vCPU or ejected one.
    fn vcpus_changed(&self, online: u32);
    /// The guest ejected the disk in PCI slot `slot`; its image is closed.
    fn disk_removed(&self, slot: u8);
}

/// How one boot of a VM ended ([`Vm::wait`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// The guest powered off (ACPI S5).
    PowerOff,
    /// The guest (i8042, ACPI reset register, triple fault handled as reset is *not* included:
    /// a triple fault is a crash) or [`VmHandle::reset`] asked for a reset: boot again.
    Reset,
    /// [`VmHandle::destroy`] was called.
    Destroyed,
    /// The guest wrote `code` to the debug-exit port.
    DebugExit(u32),
    /// The guest or the engine failed; names RIP and instruction bytes when known.
    Crashed(String),
}

mod boot;
mod cpuid;
mod devices;
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub mod fuzz;
mod hotplug;
mod kvm;
mod lifecycle;
mod memory;
mod pci;
mod vcpu;
mod vm;

pub use boot::{BootError, check_kernel};
pub use devices::virtio::balloon::{BalloonInfo, BalloonStats};
pub use devices::virtio::blk::{DiskBackend, DiskStats};
pub use devices::virtio::net::NicStats;
pub use hotplug::HotplugError;
pub use vm::{
    EngineError, EngineStats, RestoreError, SaveError, SaveReport, VcpuCounters, Vm, VmHandle,
};
