//! PCI: one root bus (segment 0, bus 0) with configuration space reachable through
//! mechanism #1 (ports 0xCF8/0xCFC) and ECAM, BARs inside the 32-bit MMIO window, and MSI-X
//! delivered through KVM irq routes.
//!
//! ```text
//!  vCPU exit ──▶ PciConfigIo (0xcf8) ─┐
//!               PciConfigMmio (ECAM) ─┼─▶ PciRoot ──▶ slot n: Arc<Mutex<dyn PciDevice>>
//!               PciMmioWindow (BARs) ─┘     (BAR map)        └─ PciConfiguration, Msix
//! ```
//! [`PciRoot`] owns the 32 device slots (slot 0 is the host bridge) and a map of where every
//! BAR decodes, refreshed after each configuration write, so a guest that moves a BAR is
//! followed without touching the engine's address buses. The three adapters are what the
//! engine inserts on its port and MMIO buses. Devices reach KVM (MSI routes, irqfds,
//! ioeventfds) only through the [`VmInterface`] trait so they can be tested without KVM.

mod allocator;
mod config;
mod device;
mod host_bridge;
mod kvm;
mod msix;
mod platform;
mod root;
#[cfg(test)]
pub(crate) mod testing;

pub use allocator::AddressAllocator;
#[cfg(test)]
pub use config::COMMAND_MEMORY_SPACE;
pub use config::{BarRegion, BarSpec, LEGACY_CONFIG_SPACE_SIZE, PciConfiguration, PciHeader};
pub use device::{PciAddress, PciDevice};
pub use host_bridge::HostBridge;
pub use kvm::{KvmVmInterface, MsiMessage, VmInterface};
pub use msix::{MSIX_CAPABILITY_ID, Msix, MsixLayout};
pub use platform::{PciPlatform, PlatformError};
pub use root::{PciConfigIo, PciConfigMmio, PciMmioWindow, PciRoot};

/// Errors building the PCI bus or its devices. Guest accesses never fail: they are absorbed.
#[derive(Debug, thiserror::Error)]
pub enum PciError {
    /// A BAR declaration is malformed (a device bug, not a guest one).
    #[error(
        "BAR {index} of {size:#x} bytes is not a power of two >= 16, aligned, in a free register"
    )]
    InvalidBar {
        /// BAR register index.
        index: usize,
        /// Size asked for, bytes.
        size: u64,
    },
    /// A capability does not fit in the 256-byte legacy configuration space.
    #[error("capability {id:#04x} of {len} bytes does not fit in configuration space")]
    CapabilitySpace {
        /// Capability id.
        id: u8,
        /// Its length, bytes.
        len: usize,
    },
    /// A restore needs a slot that is taken or does not exist.
    #[error("PCI slot {slot} is taken or does not exist")]
    SlotTaken {
        /// The slot.
        slot: u8,
    },
    /// All 31 device slots of the root bus are taken.
    #[error("the PCI root bus has no free slot: remove a device first")]
    NoFreeSlot,
    /// The MMIO window has no room for a BAR.
    #[error("no room for a {size:#x}-byte BAR in the PCI MMIO window: remove a device first")]
    AllocateBar {
        /// Size asked for, bytes.
        size: u64,
    },
    /// No GSI is left for an MSI-X vector.
    #[error("no interrupt line left for MSI-X (at most {max} GSIs)")]
    AllocateGsi {
        /// The largest GSI count KVM routes.
        max: u32,
    },
    /// Creating an eventfd failed.
    #[error("cannot create an eventfd")]
    CreateEventFd(#[source] std::io::Error),
    /// KVM refused the interrupt routing table.
    #[error("cannot set the KVM interrupt routes")]
    SetGsiRouting(#[source] kvm_ioctls::Error),
    /// KVM refused to attach an irqfd.
    #[error("cannot attach an irqfd to GSI {gsi}")]
    RegisterIrqfd {
        /// The GSI.
        gsi: u32,
        /// What KVM said.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// KVM refused to attach or detach an ioeventfd.
    #[error("cannot attach or detach an ioeventfd at {address:#x}")]
    Ioeventfd {
        /// Guest-physical address.
        address: u64,
        /// What KVM said.
        #[source]
        source: kvm_ioctls::Error,
    },
}
