//! The PCI hotplug controller: plugs disks into the running VM's root bus, asks the guest to
//! eject them, and serves the register block (`layout::PCI_HOTPLUG_PORT`) that the DSDT's
//! slot methods (acpi/pci.rs) or the guest kit read.
//!
//! The register layout is the one Linux already drives on Cloud Hypervisor's PCI segments:
//!
//! | offset | width | what |
//! |---|---|---|
//! | 0 | 4 | `PCIU`: slots plugged since the last read (read clears) |
//! | 4 | 4 | `PCID`: slots the host wants removed since the last read (read clears) |
//! | 8 | 4 | `B0EJ`: write a bitmap of slots to eject; reads 0 |
//! | 12 | 4 | `PSEG`: the PCI segment the others talk about (only 0 exists) |
//!
//! An eject is honoured only for a slot whose removal the host requested, never for slot 0
//! (the host bridge). The ejected function leaves the root bus at once and is dropped on the
//! ejecting vCPU's thread with no lock held: that stops its worker, unregisters its
//! ioeventfds, irqfds and MSI routes, and closes the image. Then the [`VmObserver`] hears
//! `disk_removed`.
//!
//! Lock order: this controller's state, then the platform, then the root bus (and a device's
//! own lock only after the root's is released); the observer is called with no lock held.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use super::super::devices::bus::{self, BusDevice};
use super::super::devices::ged::Ged;
use super::super::layout;
use super::super::pci::{PciPlatform, PlatformError};
use super::super::{DiskSpec, VmObserver};
use super::HotplugError;

mod state;

/// Ports the register block spans.
pub const PORT_COUNT: u64 = 16;
/// Offset of `PCIU`.
pub const SLOTS_UP_OFFSET: u64 = 0;
/// Offset of `PCID`.
pub const SLOTS_DOWN_OFFSET: u64 = 4;
/// Offset of `B0EJ`.
pub const EJECT_OFFSET: u64 = 8;
/// Offset of `PSEG`.
pub const SEGMENT_OFFSET: u64 = 12;
/// Slot 0 holds the host bridge: never plugged or ejected here.
const HOST_BRIDGE: u32 = 1 << 0;

#[derive(Debug, Default)]
struct Slots {
    /// Plugged, not yet reported to the guest.
    up: u32,
    /// Removal requested, not yet reported to the guest.
    down: u32,
    /// Removal requested, not yet ejected: the guest's eject is honoured.
    removing: u32,
    /// `PSEG` as last written.
    segment: u32,
}

/// The PCI hotplug controller of one boot; shared by the register device and the VM's
/// control handle.
pub struct PciHotplug {
    state: Mutex<Slots>,
    /// The root bus and its disks; `None` once the boot has ended.
    platform: Arc<Mutex<Option<PciPlatform>>>,
    ged: Arc<Mutex<Ged>>,
    observer: RwLock<Option<Arc<dyn VmObserver>>>,
}

impl PciHotplug {
    /// A controller over `platform`, notifying through `ged`.
    pub fn new(platform: Arc<Mutex<Option<PciPlatform>>>, ged: Arc<Mutex<Ged>>) -> PciHotplug {
        PciHotplug {
            state: Mutex::new(Slots::default()),
            platform,
            ged,
            observer: RwLock::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Who hears about ejected disks from now on.
    pub fn set_observer(&self, observer: Arc<dyn VmObserver>) {
        *self
            .observer
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(observer);
    }

    fn notify_guest(&self) -> Result<(), HotplugError> {
        bus::lock(&self.ged)
            .notify(layout::GED_EVENT_PCI_HOTPLUG)
            .map_err(HotplugError::Notify)
    }

    /// Plugs `disk` into the lowest free slot, tells the guest, and returns the slot.
    pub fn attach(&self, disk: &DiskSpec) -> Result<u8, HotplugError> {
        let slot = {
            let mut platform = bus::lock(&self.platform);
            let platform = platform.as_mut().ok_or(HotplugError::NotRunning)?;
            let address = platform.add_disk(disk).map_err(|e| match e {
                PlatformError::OpenDisk(e) => HotplugError::OpenDisk(e),
                other => HotplugError::PlugDisk(other),
            })?;
            address.device
        };
        {
            let mut state = self.lock();
            let bit = 1u32 << slot;
            state.up |= bit;
            state.down &= !bit;
            state.removing &= !bit;
        }
        self.notify_guest()?;
        Ok(slot)
    }

    /// Asks the guest to eject the disk in `slot`; the disk goes when it does.
    pub fn request_removal(&self, slot: u8) -> Result<(), HotplugError> {
        let plugged = bus::lock(&self.platform)
            .as_ref()
            .ok_or(HotplugError::NotRunning)?
            .disk_slots()
            .contains(&slot);
        if !plugged || slot >= 32 {
            return Err(HotplugError::NoDisk { slot });
        }
        {
            let mut state = self.lock();
            let bit = 1u32 << slot;
            state.down |= bit;
            state.up &= !bit;
            state.removing |= bit;
        }
        self.notify_guest()
    }

    /// Takes the disk in `slot` away at once, without the guest's consent (a forced detach,
    /// like virsh's after the guest did not answer): a pending removal request is withdrawn,
    /// and the disk leaves the bus and is dropped as if the guest had ejected it. Runs on the
    /// caller's thread with no lock of this controller held while the disk is dropped. The
    /// guest finds the slot empty; a driver still using it sees its device gone.
    pub fn force_remove(&self, slot: u8) -> Result<(), HotplugError> {
        let plugged = bus::lock(&self.platform)
            .as_ref()
            .ok_or(HotplugError::NotRunning)?
            .disk_slots()
            .contains(&slot);
        if !plugged || slot >= 32 {
            return Err(HotplugError::NoDisk { slot });
        }
        {
            let mut state = self.lock();
            let bit = 1u32 << slot;
            state.down &= !bit;
            state.up &= !bit;
            state.removing &= !bit;
        }
        log::warn!("removing the disk in PCI slot {slot} without the guest's consent");
        self.eject(slot);
        Ok(())
    }

    /// A guest read of `data.len()` bytes at `offset` in the register block.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        let mut state = self.lock();
        for (i, out) in data.iter_mut().enumerate() {
            let Some(at) = offset.checked_add(i as u64) else {
                *out = 0;
                continue;
            };
            let (register, byte) = (at - at % 4, (at % 4) as usize);
            let shift = 8 * byte;
            *out = match register {
                SLOTS_UP_OFFSET => take_byte(&mut state.up, shift),
                SLOTS_DOWN_OFFSET => take_byte(&mut state.down, shift),
                SEGMENT_OFFSET => (state.segment >> shift) as u8,
                _ => 0,
            };
        }
    }

    /// A guest write of `data` at `offset` in the register block.
    pub fn write(&self, offset: u64, data: &[u8]) {
        let mut eject = 0u32;
        {
            let mut state = self.lock();
            for (i, &byte) in data.iter().enumerate() {
                let Some(at) = offset.checked_add(i as u64) else {
                    continue;
                };
                let shift = 8 * (at % 4) as u32;
                match at - at % 4 {
                    EJECT_OFFSET => eject |= u32::from(byte) << shift,
                    SEGMENT_OFFSET => {
                        state.segment =
                            (state.segment & !(0xff << shift)) | (u32::from(byte) << shift);
                    }
                    _ => {}
                }
            }
            // Only segment 0 exists; an eject aimed at another touches nothing.
            if state.segment != 0 {
                eject = 0;
            }
            let ignored = eject & !state.removing;
            if ignored != 0 {
                log::debug!("ignoring the guest's eject of slots {ignored:#x}: not requested");
            }
            eject &= state.removing & !HOST_BRIDGE;
            state.removing &= !eject;
            state.down &= !eject;
        }
        for slot in (0..32u8).filter(|s| eject & (1 << s) != 0) {
            self.eject(slot);
        }
    }

    /// Takes the ejected disk off the bus, drops it (worker stopped, image closed) and tells
    /// the observer.
    fn eject(&self, slot: u8) {
        let function = bus::lock(&self.platform)
            .as_mut()
            .and_then(|platform| platform.remove_disk(slot));
        let Some(function) = function else {
            return;
        };
        drop(function);
        log::info!("the disk in PCI slot {slot} left the bus; its image is closed");
        let observer = self
            .observer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(observer) = observer {
            observer.disk_removed(slot);
        }
    }
}

/// Byte `shift / 8` of `register`, cleared in it (read-to-clear).
fn take_byte(register: &mut u32, shift: usize) -> u8 {
    let byte = (*register >> shift) as u8;
    *register &= !(0xff << shift);
    byte
}

/// The register block on the I/O bus, at `layout::PCI_HOTPLUG_PORT`.
pub struct Registers(pub Arc<PciHotplug>);

impl BusDevice for Registers {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.0.read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.0.write(offset, data);
    }
}
