//! What PCI devices need from KVM, behind a trait: MSI routes, irqfds and ioeventfds.
//!
//! `KVM_SET_GSI_ROUTING` replaces the VM's whole routing table, including the default routes
//! of the in-kernel PIC and IOAPIC that the legacy devices (COM1's irqfd on GSI 4, the GED on
//! GSI 5) depend on. [`KvmVmInterface`] therefore keeps the complete table, the default
//! irqchip routes (as KVM installs them at irqchip creation) plus one MSI route per allocated
//! GSI, and always sets it whole. GSIs of a removed device (PCI hot-remove) go back to a free
//! list and their routes leave the table.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use kvm_bindings::{
    KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KvmIrqRouting, kvm_irq_routing_entry,
    kvm_irq_routing_entry__bindgen_ty_1, kvm_irq_routing_irqchip, kvm_irq_routing_msi,
};
use kvm_ioctls::{IoEventAddress, NoDatamatch, VmFd};
use vmm_sys_util::eventfd::EventFd;

use super::PciError;
use crate::engine::layout;

/// Largest number of routing entries (and highest GSI + 1) KVM accepts on x86.
const KVM_MAX_IRQ_ROUTES: u32 = 4096;
/// Legacy ISA interrupts, routed to both the PIC pair and the IOAPIC.
const PIC_IRQS: u32 = 16;
/// Default routes: one IOAPIC route per pin plus one PIC route per ISA IRQ.
const DEFAULT_ROUTES: u32 = layout::IOAPIC_PINS + PIC_IRQS;
/// MSI GSIs start above the IOAPIC pins and stop where the table would be full.
const FIRST_MSI_GSI: u32 = layout::IOAPIC_PINS;
const MSI_GSI_END: u32 = FIRST_MSI_GSI + (KVM_MAX_IRQ_ROUTES - DEFAULT_ROUTES);

/// An MSI message: the write a device performs to interrupt a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsiMessage {
    /// Guest-physical address written (in the 0xfee0_0000 range on x86).
    pub address: u64,
    /// The 32-bit value written.
    pub data: u32,
}

/// The VM-side plumbing of PCI devices. Shared by every device and called from vCPU threads
/// (guest programs a BAR or an MSI-X entry) and VM setup.
pub trait VmInterface: Send + Sync {
    /// Reserves a GSI for one MSI-X vector.
    fn allocate_gsi(&self) -> Result<u32, PciError>;
    /// Gives back a GSI from [`allocate_gsi`](Self::allocate_gsi): its route is removed and the
    /// GSI may be handed out again. Its irqfd must be unregistered first.
    fn release_gsi(&self, gsi: u32) -> Result<(), PciError>;
    /// Points `gsi` at `message` (replacing its previous route).
    fn set_msi_route(&self, gsi: u32, message: MsiMessage) -> Result<(), PciError>;
    /// Makes a write to `event` raise `gsi` in the guest without an exit.
    fn register_irqfd(&self, event: &EventFd, gsi: u32) -> Result<(), PciError>;
    /// Undoes [`register_irqfd`](Self::register_irqfd).
    fn unregister_irqfd(&self, event: &EventFd, gsi: u32) -> Result<(), PciError>;
    /// Makes a guest write of any width to MMIO `address` signal `event` instead of exiting.
    fn register_ioevent(&self, event: &EventFd, address: u64) -> Result<(), PciError>;
    /// Undoes [`register_ioevent`](Self::register_ioevent).
    fn unregister_ioevent(&self, event: &EventFd, address: u64) -> Result<(), PciError>;
}

/// [`VmInterface`] over a KVM VM with an in-kernel irqchip (PIC + IOAPIC).
pub struct KvmVmInterface {
    vm: Arc<VmFd>,
    routes: Mutex<MsiRoutes>,
}

#[derive(Default)]
struct MsiRoutes {
    next_gsi: u32,
    /// GSIs given back, handed out again before `next_gsi`.
    free: Vec<u32>,
    /// GSI → message, for every GSI with a route.
    messages: BTreeMap<u32, MsiMessage>,
}

impl KvmVmInterface {
    /// Plumbing for `vm`, whose irqchip must already exist.
    pub fn new(vm: Arc<VmFd>) -> KvmVmInterface {
        KvmVmInterface {
            vm,
            routes: Mutex::new(MsiRoutes {
                next_gsi: FIRST_MSI_GSI,
                free: Vec::new(),
                messages: BTreeMap::new(),
            }),
        }
    }
}

impl VmInterface for KvmVmInterface {
    fn allocate_gsi(&self) -> Result<u32, PciError> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(gsi) = routes.free.pop() {
            return Ok(gsi);
        }
        if routes.next_gsi >= MSI_GSI_END {
            return Err(PciError::AllocateGsi {
                max: KVM_MAX_IRQ_ROUTES,
            });
        }
        routes.next_gsi += 1;
        Ok(routes.next_gsi - 1)
    }

    fn set_msi_route(&self, gsi: u32, message: MsiMessage) -> Result<(), PciError> {
        // Held across the ioctl so two vCPUs reprogramming vectors cannot install their
        // tables out of order.
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.messages.insert(gsi, message);
        let table = routing_table(&routes.messages);
        self.vm
            .set_gsi_routing(&table)
            .map_err(PciError::SetGsiRouting)
    }

    fn release_gsi(&self, gsi: u32) -> Result<(), PciError> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if !(FIRST_MSI_GSI..routes.next_gsi).contains(&gsi) || routes.free.contains(&gsi) {
            return Ok(());
        }
        routes.free.push(gsi);
        if routes.messages.remove(&gsi).is_some() {
            let table = routing_table(&routes.messages);
            self.vm
                .set_gsi_routing(&table)
                .map_err(PciError::SetGsiRouting)?;
        }
        Ok(())
    }

    fn register_irqfd(&self, event: &EventFd, gsi: u32) -> Result<(), PciError> {
        self.vm
            .register_irqfd(event, gsi)
            .map_err(|source| PciError::RegisterIrqfd { gsi, source })
    }

    fn unregister_irqfd(&self, event: &EventFd, gsi: u32) -> Result<(), PciError> {
        self.vm
            .unregister_irqfd(event, gsi)
            .map_err(|source| PciError::RegisterIrqfd { gsi, source })
    }

    fn register_ioevent(&self, event: &EventFd, address: u64) -> Result<(), PciError> {
        self.vm
            .register_ioevent(event, &IoEventAddress::Mmio(address), NoDatamatch)
            .map_err(|source| PciError::Ioeventfd { address, source })
    }

    fn unregister_ioevent(&self, event: &EventFd, address: u64) -> Result<(), PciError> {
        self.vm
            .unregister_ioevent(event, &IoEventAddress::Mmio(address), NoDatamatch)
            .map_err(|source| PciError::Ioeventfd { address, source })
    }
}

/// The complete routing table: KVM's defaults for the in-kernel irqchip followed by `msi`.
fn routing_table(msi: &BTreeMap<u32, MsiMessage>) -> KvmIrqRouting {
    let mut entries = default_irqchip_routes();
    entries.extend(msi.iter().map(|(&gsi, message)| msi_route(gsi, message)));
    KvmIrqRouting::from_entries(&entries)
        .expect("allocate_gsi keeps the table within KVM_MAX_IRQ_ROUTES entries")
}

/// The routes KVM installs when it creates the irqchip (`kvm_setup_default_irq_routing`):
/// GSI n → IOAPIC pin n for every pin, and GSI n < 16 → PIC pin n % 8 as well.
fn default_irqchip_routes() -> Vec<kvm_irq_routing_entry> {
    let ioapic = (0..layout::IOAPIC_PINS).map(|pin| irqchip_route(pin, KVM_IRQCHIP_IOAPIC, pin));
    let pic = (0..PIC_IRQS).map(|irq| {
        let chip = if irq < 8 {
            KVM_IRQCHIP_PIC_MASTER
        } else {
            KVM_IRQCHIP_PIC_SLAVE
        };
        irqchip_route(irq, chip, irq % 8)
    });
    ioapic.chain(pic).collect()
}

fn irqchip_route(gsi: u32, irqchip: u32, pin: u32) -> kvm_irq_routing_entry {
    kvm_irq_routing_entry {
        gsi,
        type_: KVM_IRQ_ROUTING_IRQCHIP,
        u: kvm_irq_routing_entry__bindgen_ty_1 {
            irqchip: kvm_irq_routing_irqchip { irqchip, pin },
        },
        ..Default::default()
    }
}

fn msi_route(gsi: u32, message: &MsiMessage) -> kvm_irq_routing_entry {
    kvm_irq_routing_entry {
        gsi,
        type_: KVM_IRQ_ROUTING_MSI,
        u: kvm_irq_routing_entry__bindgen_ty_1 {
            msi: kvm_irq_routing_msi {
                address_lo: message.address as u32,
                address_hi: (message.address >> 32) as u32,
                data: message.data,
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_table_keeps_the_irqchip_defaults_before_msi_routes() {
        let mut msi = BTreeMap::new();
        msi.insert(
            24,
            MsiMessage {
                address: 0xfee0_0000,
                data: 0x4041,
            },
        );

        let table = routing_table(&msi);
        let entries = table.as_slice();

        assert_eq!(entries.len(), 24 + 16 + 1);
        let com1: Vec<u32> = entries
            .iter()
            .filter(|e| e.gsi == layout::COM1_GSI)
            .map(|e| e.type_)
            .collect();
        assert_eq!(com1, [KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_IRQCHIP]);
        let last = entries.last().unwrap();
        assert_eq!((last.gsi, last.type_), (24, KVM_IRQ_ROUTING_MSI));
        // SAFETY: the entry was built as an MSI route, so `msi` is the initialised member.
        let route = unsafe { last.u.msi };
        assert_eq!(
            (route.address_lo, route.address_hi, route.data),
            (0xfee0_0000, 0, 0x4041)
        );
    }

    #[test]
    fn a_full_routing_table_still_fits_kvm() {
        let msi: BTreeMap<u32, MsiMessage> = (FIRST_MSI_GSI..MSI_GSI_END)
            .map(|gsi| (gsi, MsiMessage::default()))
            .collect();

        let table = routing_table(&msi);

        assert_eq!(table.as_slice().len(), KVM_MAX_IRQ_ROUTES as usize);
    }

    #[test]
    fn ioapic_pins_route_to_the_same_numbered_gsi() {
        let routes = default_irqchip_routes();

        for pin in 0..layout::IOAPIC_PINS {
            let found = routes.iter().any(|e| {
                // SAFETY: irqchip routes carry the `irqchip` member.
                let chip = unsafe { e.u.irqchip };
                e.gsi == pin && chip.irqchip == KVM_IRQCHIP_IOAPIC && chip.pin == pin
            });
            assert!(found, "pin {pin}");
        }
    }
}
