//! The PCI side of one VM: the root bus on the engine's port and MMIO buses, the BAR
//! allocator over the 32-bit window, a virtio-blk function per [`DiskSpec`], a virtio-net
//! function per [`NicSpec`], and the memory balloon in the last slot
//! ([`layout::BALLOON_SLOT`], out of the way of hot-added disks, which take the lowest free
//! slot).
//!
//! Built by `Vm::create` after the legacy devices: the configuration ports at 0xCF8, ECAM at
//! [`layout::PCI_ECAM_START`] and the BAR window at [`layout::PCI_MMIO_START`] are inserted
//! on the buses, then each disk is opened and plugged into the next free slot (00:01.0 for the
//! first), then each NIC after them. The platform keeps the root and the allocator so disks
//! can be added and removed while the VM runs (engine/hotplug/pci.rs): a removed disk leaves
//! the root bus, its BAR space goes back to the allocator, and dropping the function (outside
//! every lock) stops its worker, unregisters its ioeventfds, irqfds and MSI routes, and closes
//! its image.
//!
//! The platform keeps a typed handle on every function it plugged, so a save can quiesce and
//! record each one and a restore can rebuild the same functions in the same slots (`state`).

mod state;

use crate::engine::memory::GuestRam;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::root::SharedPciDevice;
use super::{
    AddressAllocator, PciAddress, PciConfigIo, PciConfigMmio, PciError, PciMmioWindow, PciRoot,
    VmInterface,
};
use crate::engine::devices::bus::{Bus, BusError};
use crate::engine::devices::virtio::balloon::{Balloon, VirtioBalloon};
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
    /// The balloon could not be set up.
    #[error("cannot add the memory balloon to the VM")]
    AddBalloon(#[source] VirtioPciError),
    /// The balloon's slot is taken.
    #[error("cannot plug the memory balloon into the PCI root bus")]
    PlugBalloon(#[source] PciError),
    /// A saved VM does not fit the devices the restore was given (the message says which).
    #[error("{0}")]
    Mismatch(String),
}

/// A function as the platform holds it (the root holds the same one as `dyn PciDevice`).
type Function = Arc<Mutex<VirtioPciDevice>>;

/// A disk on the root bus.
struct PluggedDisk {
    counters: Arc<DiskCounters>,
    /// BAR 0 as allocated (freed when the disk goes).
    bar: u64,
    /// Disk size, bytes.
    capacity: u64,
    function: Function,
}

/// A NIC on the root bus.
struct PluggedNic {
    slot: u8,
    mac: [u8; 6],
    function: Function,
}

/// The balloon on the root bus.
struct PluggedBalloon {
    handle: Balloon,
    function: Function,
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
    /// Each NIC's function, in the same order.
    nic_functions: Vec<PluggedNic>,
    /// The balloon, when the VM has one.
    balloon: Option<PluggedBalloon>,
}

impl PciPlatform {
    /// Puts a root bus on `io_bus` and `mmio_bus` and plugs one virtio-blk per disk, then one
    /// virtio-net per NIC, then the balloon when `balloon`.
    pub fn create(
        vm: Arc<dyn VmInterface>,
        mem: &GuestRam,
        disks: &[DiskSpec],
        nics: &[NicSpec],
        balloon: bool,
        io_bus: &mut Bus,
        mmio_bus: &mut Bus,
    ) -> Result<PciPlatform, PlatformError> {
        let mut platform = PciPlatform::empty(vm, mem, io_bus, mmio_bus)?;
        for disk in disks {
            platform.add_disk(disk)?;
        }
        for nic in nics {
            platform.add_nic(nic)?;
        }
        if balloon {
            platform.add_balloon(None)?;
        }
        Ok(platform)
    }

    /// A root bus with only the host bridge, on `io_bus` and `mmio_bus`.
    fn empty(
        vm: Arc<dyn VmInterface>,
        mem: &GuestRam,
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
        Ok(PciPlatform {
            root,
            bars: AddressAllocator::new(layout::PCI_MMIO_START, layout::PCI_MMIO_SIZE),
            vm,
            mem: mem.clone(),
            disks: BTreeMap::new(),
            plugged: 0,
            nics: Vec::new(),
            nic_functions: Vec::new(),
            balloon: None,
        })
    }

    /// Opens `disk` and plugs it into the next free slot; its worker thread is `blk<n>`.
    pub fn add_disk(&mut self, disk: &DiskSpec) -> Result<PciAddress, PlatformError> {
        self.plug_disk(disk, None)
    }

    /// Opens `disk` and plugs it into the next free slot, or at `place` (slot, BAR 0 base).
    fn plug_disk(
        &mut self,
        disk: &DiskSpec,
        place: Option<(u8, u64)>,
    ) -> Result<PciAddress, PlatformError> {
        let path = disk.path.display().to_string();
        let backend: Arc<dyn DiskBackend> = match &disk.backend {
            Some(open) => Arc::clone(open),
            None => Arc::new(
                RawFile::open(&disk.path, disk.read_only).map_err(PlatformError::OpenDisk)?,
            ),
        };
        let capacity = backend.capacity();
        let blk = VirtioBlk::new(&format!("blk{}", self.plugged), backend, &disk.serial);
        let counters = blk.counters();
        let function = self
            .build(Box::new(blk), place.map(|p| p.1))
            .map_err(|source| PlatformError::AddDisk {
                path: path.clone(),
                source,
            })?;
        let (address, function, bar) = self
            .plug(function, place.map(|p| p.0))
            .map_err(|source| PlatformError::Plug { path, source })?;
        self.plugged += 1;
        self.disks.insert(
            address.device,
            PluggedDisk {
                counters,
                bar,
                capacity,
                function,
            },
        );
        Ok(address)
    }

    /// Builds a virtio PCI function over `device`, its BAR 0 allocated or at `bar` (reserved
    /// here).
    fn build(
        &mut self,
        device: Box<dyn crate::engine::devices::virtio::VirtioDevice>,
        bar: Option<u64>,
    ) -> Result<VirtioPciDevice, VirtioPciError> {
        let Some(base) = bar else {
            return VirtioPciDevice::new(device, self.mem.clone(), self.vm.clone(), &mut self.bars);
        };
        let size = crate::engine::devices::virtio::pci::BAR_SIZE;
        if !self.bars.reserve(base, size) {
            return Err(VirtioPciError::Pci(PciError::AllocateBar { size }));
        }
        let function = VirtioPciDevice::with_bar(device, self.mem.clone(), self.vm.clone(), base);
        if function.is_err() {
            self.bars.free(base);
        }
        function
    }

    /// Plugs `function` into the lowest free slot or into `slot`; on failure its BAR space is
    /// given back. Returns its address, the handle kept here, and its BAR 0 base.
    fn plug(
        &mut self,
        function: VirtioPciDevice,
        slot: Option<u8>,
    ) -> Result<(PciAddress, Function, u64), PciError> {
        let bar = function.initial_bar_base();
        let function = Arc::new(Mutex::new(function));
        let shared: SharedPciDevice = function.clone();
        let mut root = self
            .root
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let plugged = match slot {
            Some(slot) => root.add_device_at(slot, shared),
            None => root.add_device(shared),
        };
        drop(root);
        match plugged {
            Ok(address) => Ok((address, function, bar)),
            Err(e) => {
                self.bars.free(bar);
                Err(e)
            }
        }
    }

    /// Plugs a virtio-net function over `nic`'s TAP into the next free slot; its worker
    /// thread is `net<n>`.
    pub fn add_nic(&mut self, nic: &NicSpec) -> Result<PciAddress, PlatformError> {
        self.plug_nic(nic, None)
    }

    /// Plugs a NIC into the next free slot, or at `place` (slot, BAR 0 base).
    fn plug_nic(
        &mut self,
        nic: &NicSpec,
        place: Option<(u8, u64)>,
    ) -> Result<PciAddress, PlatformError> {
        let tap = nic.tap.name().to_owned();
        let net = VirtioNet::new(
            &format!("net{}", self.nics.len()),
            nic.tap.clone(),
            nic.mac,
            &tap,
        );
        let counters = net.counters();
        let function = self
            .build(Box::new(net), place.map(|p| p.1))
            .map_err(|source| PlatformError::AddNic {
                tap: tap.clone(),
                source,
            })?;
        let (address, function, _) = self
            .plug(function, place.map(|p| p.0))
            .map_err(|source| PlatformError::PlugNic { tap, source })?;
        self.nics.push(counters);
        self.nic_functions.push(PluggedNic {
            slot: address.device,
            mac: nic.mac,
            function,
        });
        Ok(address)
    }

    /// Plugs the memory balloon into [`layout::BALLOON_SLOT`], its BAR 0 allocated or at
    /// `bar`.
    fn add_balloon(&mut self, bar: Option<u64>) -> Result<PciAddress, PlatformError> {
        let handle = Balloon::default();
        let function = self
            .build(Box::new(VirtioBalloon::new(handle.clone())), bar)
            .map_err(PlatformError::AddBalloon)?;
        let (address, function, _) = self
            .plug(function, Some(layout::BALLOON_SLOT))
            .map_err(PlatformError::PlugBalloon)?;
        self.balloon = Some(PluggedBalloon { handle, function });
        Ok(address)
    }

    /// The balloon's control handle, when the VM has one.
    pub fn balloon(&self) -> Option<Balloon> {
        self.balloon.as_ref().map(|b| b.handle.clone())
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
