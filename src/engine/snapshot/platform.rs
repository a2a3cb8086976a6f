//! The VM-wide state KVM keeps in the kernel: the in-kernel interrupt controllers (the two
//! 8259 PICs and the IOAPIC), the PIT, and the KVM clock (kvmclock's nanoseconds since boot).
//!
//! Captured while every vCPU is parked. Restored on the fresh VM before any vCPU runs: the
//! interrupt controllers and the PIT when the VM is built, the clock last, just before the
//! vCPU threads start, so the guest's clock continues from the value it had when it was saved
//! (no time passes for the guest while it is saved, as with `virsh save`).

use kvm_bindings::{
    KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, kvm_clock_data, kvm_irqchip,
    kvm_pit_state2,
};
use kvm_ioctls::VmFd;
use serde::{Deserialize, Serialize};

use super::blob::{Blob, BlobSizeError};

/// The in-kernel devices' state in the save file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformState {
    /// `kvm_irqchip` of the master PIC.
    pub pic_master: Blob,
    /// `kvm_irqchip` of the slave PIC.
    pub pic_slave: Blob,
    /// `kvm_irqchip` of the IOAPIC.
    pub ioapic: Blob,
    /// `kvm_pit_state2`.
    pub pit: Blob,
    /// kvmclock, nanoseconds, when saved.
    pub clock_ns: u64,
}

/// Why the in-kernel state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PlatformStateError {
    /// A KVM ioctl failed.
    #[error("cannot {op}")]
    Kvm {
        /// What was being done.
        op: &'static str,
        /// What KVM said.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// A saved structure has the wrong size for this vmux.
    #[error(transparent)]
    Size(#[from] BlobSizeError),
}

fn kvm(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> PlatformStateError {
    move |source| PlatformStateError::Kvm { op, source }
}

fn chip(vm: &VmFd, chip_id: u32, op: &'static str) -> Result<Blob, PlatformStateError> {
    let mut state = kvm_irqchip {
        chip_id,
        ..Default::default()
    };
    vm.get_irqchip(&mut state).map_err(kvm(op))?;
    Ok(Blob::of(&state))
}

/// Reads the interrupt controllers, the PIT and the clock of `vm` (every vCPU parked).
pub fn capture(vm: &VmFd) -> Result<PlatformState, PlatformStateError> {
    Ok(PlatformState {
        pic_master: chip(vm, KVM_IRQCHIP_PIC_MASTER, "read the master PIC")?,
        pic_slave: chip(vm, KVM_IRQCHIP_PIC_SLAVE, "read the slave PIC")?,
        ioapic: chip(vm, KVM_IRQCHIP_IOAPIC, "read the IOAPIC")?,
        pit: Blob::of(&vm.get_pit2().map_err(kvm("read the PIT"))?),
        clock_ns: vm.get_clock().map_err(kvm("read the KVM clock"))?.clock,
    })
}

fn set_chip(
    vm: &VmFd,
    blob: &Blob,
    chip_id: u32,
    what: &'static str,
) -> Result<(), PlatformStateError> {
    let mut state: kvm_irqchip = blob.to(what)?;
    // The chip id says which controller the bytes belong to; trust our own position instead.
    state.chip_id = chip_id;
    vm.set_irqchip(&state).map_err(kvm(what))
}

/// Writes the interrupt controllers and the PIT to a fresh `vm` (its irqchip and PIT created).
pub fn restore_devices(vm: &VmFd, state: &PlatformState) -> Result<(), PlatformStateError> {
    set_chip(
        vm,
        &state.pic_master,
        KVM_IRQCHIP_PIC_MASTER,
        "set the master PIC",
    )?;
    set_chip(
        vm,
        &state.pic_slave,
        KVM_IRQCHIP_PIC_SLAVE,
        "set the slave PIC",
    )?;
    set_chip(vm, &state.ioapic, KVM_IRQCHIP_IOAPIC, "set the IOAPIC")?;
    let pit: kvm_pit_state2 = state.pit.to("PIT state")?;
    vm.set_pit2(&pit).map_err(kvm("set the PIT"))
}

/// Sets the KVM clock to the saved value; call right before the vCPUs first run.
pub fn restore_clock(vm: &VmFd, state: &PlatformState) -> Result<(), PlatformStateError> {
    let clock = kvm_clock_data {
        clock: state.clock_ns,
        ..Default::default()
    };
    vm.set_clock(&clock).map_err(kvm("set the KVM clock"))
}
