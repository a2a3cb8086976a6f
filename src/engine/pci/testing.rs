//! Test doubles for the PCI layer.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use vmm_sys_util::eventfd::EventFd;

use super::{MsiMessage, PciError, VmInterface};

/// A [`VmInterface`] that records routes and ioeventfds instead of calling KVM.
#[derive(Default)]
pub(crate) struct FakeVm {
    next_gsi: AtomicU32,
    pub(crate) routes: Mutex<Vec<(u32, MsiMessage)>>,
    pub(crate) ioevents: Mutex<Vec<u64>>,
    /// GSIs with an irqfd registered.
    pub(crate) irqfds: Mutex<Vec<u32>>,
    /// GSIs given back.
    pub(crate) released: Mutex<Vec<u32>>,
}

impl VmInterface for FakeVm {
    fn allocate_gsi(&self) -> Result<u32, PciError> {
        Ok(24 + self.next_gsi.fetch_add(1, Ordering::SeqCst))
    }
    fn set_msi_route(&self, gsi: u32, message: MsiMessage) -> Result<(), PciError> {
        self.routes.lock().unwrap().push((gsi, message));
        Ok(())
    }
    fn release_gsi(&self, gsi: u32) -> Result<(), PciError> {
        self.released.lock().unwrap().push(gsi);
        Ok(())
    }
    fn register_irqfd(&self, _event: &EventFd, gsi: u32) -> Result<(), PciError> {
        self.irqfds.lock().unwrap().push(gsi);
        Ok(())
    }
    fn unregister_irqfd(&self, _event: &EventFd, gsi: u32) -> Result<(), PciError> {
        self.irqfds.lock().unwrap().retain(|g| *g != gsi);
        Ok(())
    }
    fn register_ioevent(&self, _event: &EventFd, address: u64) -> Result<(), PciError> {
        self.ioevents.lock().unwrap().push(address);
        Ok(())
    }
    fn unregister_ioevent(&self, _event: &EventFd, address: u64) -> Result<(), PciError> {
        self.ioevents.lock().unwrap().retain(|a| *a != address);
        Ok(())
    }
}
