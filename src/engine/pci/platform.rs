//! The PCI side of one VM: the root bus on the engine's port and MMIO buses, the BAR
//! allocator over the 32-bit window, a virtio-blk function per [`DiskSpec`] and a virtio-net
//! function per [`NicSpec`].
//!
//! Built by `Vm::create` after the legacy devices: the configuration ports at 0xCF8, ECAM at
//! [`layout::PCI_ECAM_START`] and the BAR window at [`layout::PCI_MMIO_START`] are inserted
//! on the buses, then each disk is opened and plugged into the next free slot (00:01.0 for the
//! first), then each NIC after them. The platform keeps the root and the allocator so disks
//! can be added and removed while the VM runs (engine/hotplug/pci.rs): a removed disk leaves
//! the root bus, its BAR space goes back to the allocator, and dropping the function (outside
//! every lock) stops its worker, unregisters its ioeventfds, irqfds and MSI routes, and closes
//! its image.

use crate::engine::memory::GuestRam;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::root::SharedPciDevice;
use super::{
    AddressAllocator, PciAddress, PciConfigIo, PciConfigMmio, PciError, PciMmioWindow, PciRoot,
    VmInterface,
};
use crate::engine::devices::bus::{Bus, BusError};
use crate::engine::devices::virtio::blk::{
    BackendError, DiskBackend, DiskCounters, RawFile, VirtioBlk,
};
use crate::engine::devices::virtio::net::{NicCounters, VirtioNet};
use crate::engine::devices::virtio::pci::{VirtioPciDevice, VirtioPciError};
use crate::engine::layout;
use crate::engine::{DiskSpec, NicSpec};

/// Ports of configuration mechanism #1 (0xCF8..0xCFF).
const CONFIG_PORT_COUNT: u64 = 8;

/// Errors building a VM's PCI devices.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// A disk image could not be opened (the message names the file and the fix).
    #[error(transparent)]
    OpenDisk(BackendError),
    /// A disk could not be turned into a PCI function.
    #[error("cannot add disk {path} to the VM")]
    AddDisk {
        /// The image path.
        path: String,
        /// What went wrong.
        #[source]
        source: VirtioPciError,
    },
    /// The root bus is full.
    #[error("cannot plug disk {path} into the PCI root bus")]
    Plug {
        /// The image path.
        path: String,
        /// What the root bus said.
        #[source]
        source: PciError,
    },
    /// A NIC could not be turned into a PCI function.
    #[error("cannot add the NIC on TAP {tap} to the VM")]
    AddNic {
        /// The TAP's name.
        tap: String,
        /// What went wrong.
        #[source]
        source: VirtioPciError,
    },
    /// The root bus is full.
    #[error("cannot plug the NIC on TAP {tap} into the PCI root bus")]
    PlugNic {
        /// The TAP's name.
        tap: String,
        /// What the root bus said.
        #[source]
        source: PciError,
    },
    /// The PCI adapters overlap another device on the engine's buses (a layout bug).
    #[error("cannot place the PCI root bus on the VM's buses")]
    Place(#[source] BusError),
}

/// A disk on the root bus.
struct PluggedDisk {
    counters: Arc<DiskCounters>,
    /// BAR 0 as allocated (freed when the disk goes).
    bar: u64,
}

/// The VM's PCI root bus and what is plugged into it.
pub struct PciPlatform {
    root: Arc<Mutex<PciRoot>>,
    bars: AddressAllocator,
    vm: Arc<dyn VmInterface>,
    mem: GuestRam,
    /// Disks by slot.
    disks: BTreeMap<u8, PluggedDisk>,
    /// Disks plugged so far: names the next worker thread (`blk<n>`).
    plugged: usize,
    /// Each NIC's counters, in `VmSpec::nics` order (NICs are not hot-plugged).
    nics: Vec<Arc<NicCounters>>,
}

impl PciPlatform {
    /// Puts a root bus on `io_bus` and `mmio_bus` and plugs one virtio-blk per disk, then one
    /// virtio-net per NIC.
    pub fn create(
        vm: Arc<dyn VmInterface>,
        mem: &GuestRam,
        disks: &[DiskSpec],
        nics: &[NicSpec],
        io_bus: &mut Bus,
        mmio_bus: &mut Bus,
    ) -> Result<PciPlatform, PlatformError> {
        let root = Arc::new(Mutex::new(PciRoot::new()));
        io_bus
            .insert(
                Arc::new(Mutex::new(PciConfigIo::new(root.clone()))),
                u64::from(layout::PCI_CONFIG_PORT),
                CONFIG_PORT_COUNT,
            )
            .map_err(PlatformError::Place)?;
        mmio_bus
            .insert(
                Arc::new(Mutex::new(PciConfigMmio::new(root.clone()))),
                layout::PCI_ECAM_START,
                layout::PCI_ECAM_SIZE,
            )
            .map_err(PlatformError::Place)?;
        mmio_bus
            .insert(
                Arc::new(Mutex::new(PciMmioWindow::new(
                    root.clone(),
                    layout::PCI_MMIO_START,
                ))),
                layout::PCI_MMIO_START,
                layout::PCI_MMIO_SIZE,
            )
            .map_err(PlatformError::Place)?;
        let mut platform = PciPlatform {
            root,
            bars: AddressAllocator::new(layout::PCI_MMIO_START, layout::PCI_MMIO_SIZE),
            vm,
            mem: mem.clone(),
            disks: BTreeMap::new(),
            plugged: 0,
            nics: Vec::new(),
        };
        for disk in disks {
            platform.add_disk(disk)?;
        }
        for nic in nics {
            platform.add_nic(nic)?;
        }
        Ok(platform)
    }

    /// Opens `disk` and plugs it into the next free slot; its worker thread is `blk<n>`.
    pub fn add_disk(&mut self, disk: &DiskSpec) -> Result<PciAddress, PlatformError> {
        let path = disk.path.display().to_string();
        let backend: Arc<dyn DiskBackend> = match &disk.backend {
            Some(open) => Arc::clone(open),
            None => Arc::new(
                RawFile::open(&disk.path, disk.read_only).map_err(PlatformError::OpenDisk)?,
            ),
        };
        let blk = VirtioBlk::new(&format!("blk{}", self.plugged), backend, &disk.serial);
        let counters = blk.counters();
        let function = VirtioPciDevice::new(
            Box::new(blk),
            self.mem.clone(),
            self.vm.clone(),
            &mut self.bars,
        )
        .map_err(|source| PlatformError::AddDisk {
            path: path.clone(),
            source,
        })?;
        let bar = function.initial_bar_base();
        let plugged = self
            .root
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add_device(Arc::new(Mutex::new(function)));
        let address = match plugged {
            Ok(address) => address,
            Err(source) => {
                self.bars.free(bar);
                return Err(PlatformError::Plug { path, source });
            }
        };
        self.plugged += 1;
        self.disks
            .insert(address.device, PluggedDisk { counters, bar });
        Ok(address)
    }

    /// Plugs a virtio-net function over `nic`'s TAP into the next free slot; its worker
    /// thread is `net<n>`.
    pub fn add_nic(&mut self, nic: &NicSpec) -> Result<PciAddress, PlatformError> {
        let tap = nic.tap.name().to_owned();
        let net = VirtioNet::new(
            &format!("net{}", self.nics.len()),
            nic.tap.clone(),
            nic.mac,
            &tap,
        );
        let counters = net.counters();
        let function = VirtioPciDevice::new(
            Box::new(net),
            self.mem.clone(),
            self.vm.clone(),
            &mut self.bars,
        )
        .map_err(|source| PlatformError::AddNic {
            tap: tap.clone(),
            source,
        })?;
        let bar = function.initial_bar_base();
        let plugged = self
            .root
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add_device(Arc::new(Mutex::new(function)));
        let address = match plugged {
            Ok(address) => address,
            Err(source) => {
                self.bars.free(bar);
                return Err(PlatformError::PlugNic { tap, source });
            }
        };
        self.nics.push(counters);
        Ok(address)
    }

    /// The live counters of every NIC (for stats sampled without the platform).
    pub fn nic_counters(&self) -> Vec<Arc<NicCounters>> {
        self.nics.clone()
    }

    /// Unplugs the disk in `slot`: it leaves the root bus and its BAR space is free again.
    /// Returns the function for the caller to drop outside every lock (that stops its worker
    /// and closes the image), or `None` when no disk is in that slot.
    pub fn remove_disk(&mut self, slot: u8) -> Option<SharedPciDevice> {
        let disk = self.disks.remove(&slot)?;
        let function = self
            .root
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove_device(slot);
        self.bars.free(disk.bar);
        function
    }

    /// Slots holding disks, ascending.
    pub fn disk_slots(&self) -> Vec<u8> {
        self.disks.keys().copied().collect()
    }

    /// The live counters of every disk, in slot order.
    pub fn disk_counters(&self) -> Vec<Arc<DiskCounters>> {
        self.disks.values().map(|d| d.counters.clone()).collect()
    }
}
