//! Local APIC wiring every vCPU starts with: LINT0 in ExtINT mode (the legacy PIC's output, as
//! firmware leaves it) and LINT1 as NMI. Linux checks this virtual-wire setup at boot.

use kvm_bindings::kvm_lapic_state;
use kvm_ioctls::VcpuFd;

/// Register offset of LVT LINT0 in the APIC page.
const APIC_LVT_LINT0: usize = 0x350;
/// Register offset of LVT LINT1.
const APIC_LVT_LINT1: usize = 0x360;
/// LVT delivery mode ExtINT.
const DELIVERY_MODE_EXTINT: u32 = 0x7;
/// LVT delivery mode NMI.
const DELIVERY_MODE_NMI: u32 = 0x4;

/// Errors programming a local APIC.
#[derive(Debug, thiserror::Error)]
pub enum LapicError {
    /// KVM_GET_LAPIC failed.
    #[error("cannot read the local APIC state")]
    Get(#[source] kvm_ioctls::Error),
    /// KVM_SET_LAPIC failed.
    #[error("cannot set the local APIC state")]
    Set(#[source] kvm_ioctls::Error),
}

fn read_reg(state: &kvm_lapic_state, offset: usize) -> u32 {
    let b = &state.regs[offset..offset + 4];
    u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
}

fn write_reg(state: &mut kvm_lapic_state, offset: usize, value: u32) {
    for (dst, src) in state.regs[offset..offset + 4]
        .iter_mut()
        .zip(value.to_le_bytes())
    {
        *dst = src as _;
    }
}

/// Sets the delivery mode (bits 8..11) of an LVT entry, keeping its other bits.
fn with_delivery_mode(lvt: u32, mode: u32) -> u32 {
    (lvt & !0x700) | (mode << 8)
}

/// `state` with LINT0 = ExtINT and LINT1 = NMI.
pub fn virtual_wire(mut state: kvm_lapic_state) -> kvm_lapic_state {
    let lint0 = read_reg(&state, APIC_LVT_LINT0);
    write_reg(
        &mut state,
        APIC_LVT_LINT0,
        with_delivery_mode(lint0, DELIVERY_MODE_EXTINT),
    );
    let lint1 = read_reg(&state, APIC_LVT_LINT1);
    write_reg(
        &mut state,
        APIC_LVT_LINT1,
        with_delivery_mode(lint1, DELIVERY_MODE_NMI),
    );
    state
}

/// Applies [`virtual_wire`] to `vcpu`'s local APIC.
pub fn set_virtual_wire(vcpu: &VcpuFd) -> Result<(), LapicError> {
    let state = vcpu.get_lapic().map_err(LapicError::Get)?;
    vcpu.set_lapic(&virtual_wire(state))
        .map_err(LapicError::Set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lint0_becomes_extint_and_lint1_nmi() {
        let mut state = kvm_lapic_state::default();
        write_reg(&mut state, APIC_LVT_LINT0, 0x0001_0000);
        let state = virtual_wire(state);
        assert_eq!(read_reg(&state, APIC_LVT_LINT0), 0x0001_0700);
        assert_eq!(read_reg(&state, APIC_LVT_LINT1), 0x0000_0400);
    }

    #[test]
    fn other_registers_are_untouched() {
        let mut state = kvm_lapic_state::default();
        write_reg(&mut state, 0x80, 0xdead_beef);
        assert_eq!(read_reg(&virtual_wire(state), 0x80), 0xdead_beef);
    }
}
