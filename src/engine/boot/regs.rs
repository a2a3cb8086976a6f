//! The boot vCPU's architectural state: 64-bit long mode with paging on the identity map, the
//! boot GDT loaded, interrupts off, RSI pointing at the zero page (the Linux 64-bit boot
//! protocol, which guest-kit programs share).
//!
//! The values are computed by pure functions (`long_mode_sregs`, `boot_regs`, `boot_fpu`) so
//! they can be checked without KVM; [`configure_boot_vcpu`] applies them.

use super::gdt;
use crate::engine::layout;
use kvm_bindings::{kvm_dtable, kvm_fpu, kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;

/// CR0: protected mode enable.
const CR0_PE: u64 = 1 << 0;
/// CR0: extension type (always 1 on modern CPUs).
const CR0_ET: u64 = 1 << 4;
/// CR0: native x87 error reporting.
const CR0_NE: u64 = 1 << 5;
/// CR0: paging.
const CR0_PG: u64 = 1 << 31;
/// CR4: physical address extension (required by long mode).
const CR4_PAE: u64 = 1 << 5;
/// EFER: long mode enable.
const EFER_LME: u64 = 1 << 8;
/// EFER: long mode active.
const EFER_LMA: u64 = 1 << 10;
/// RFLAGS bit 1 is reserved and always set; everything else (IF included) is clear.
const RFLAGS_RESERVED: u64 = 1 << 1;
/// x87 control word after FNINIT: all exceptions masked, 64-bit precision.
const FPU_CONTROL_WORD: u16 = 0x37f;
/// MXCSR after reset: all SSE exceptions masked.
const MXCSR_DEFAULT: u32 = 0x1f80;

/// Errors programming the boot vCPU.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// KVM_GET_SREGS failed.
    #[error("cannot read the boot vCPU's special registers")]
    GetSregs(#[source] kvm_ioctls::Error),
    /// KVM_SET_SREGS failed.
    #[error("cannot set the boot vCPU's special registers")]
    SetSregs(#[source] kvm_ioctls::Error),
    /// KVM_SET_REGS failed.
    #[error("cannot set the boot vCPU's registers")]
    SetRegs(#[source] kvm_ioctls::Error),
    /// KVM_SET_FPU failed.
    #[error("cannot set the boot vCPU's FPU state")]
    SetFpu(#[source] kvm_ioctls::Error),
}

/// `base` (as KVM reports it for a fresh vCPU) switched to 64-bit long mode on the boot GDT
/// and identity map.
pub fn long_mode_sregs(base: kvm_sregs) -> kvm_sregs {
    let mut sregs = base;
    let code = gdt::segment(gdt::BOOT_GDT[2], gdt::CODE_SELECTOR);
    let data = gdt::segment(gdt::BOOT_GDT[3], gdt::DATA_SELECTOR);
    let tss = gdt::segment(gdt::BOOT_GDT[4], gdt::TSS_SELECTOR);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    sregs.gdt = kvm_dtable {
        base: layout::BOOT_GDT_START,
        limit: gdt::GDT_LIMIT,
        ..Default::default()
    };
    // An empty IDT: any exception before the guest installs its own escalates to a triple
    // fault, which the engine reports as a crash with RIP.
    sregs.idt = kvm_dtable {
        base: layout::BOOT_IDT_START,
        limit: 0,
        ..Default::default()
    };
    sregs.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
    sregs.cr3 = layout::PML4_START;
    sregs.cr4 = CR4_PAE;
    sregs.efer = EFER_LME | EFER_LMA;
    sregs
}

/// General-purpose registers of the boot vCPU entering at `entry`.
pub fn boot_regs(entry: u64) -> kvm_regs {
    kvm_regs {
        rflags: RFLAGS_RESERVED,
        rip: entry,
        rsp: layout::BOOT_STACK_POINTER,
        rbp: layout::BOOT_STACK_POINTER,
        rsi: layout::ZERO_PAGE_START,
        ..Default::default()
    }
}

/// x87/SSE state after reset.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: FPU_CONTROL_WORD,
        mxcsr: MXCSR_DEFAULT,
        ..Default::default()
    }
}

/// Puts `vcpu` into the boot state, about to execute `entry`.
pub fn configure_boot_vcpu(vcpu: &VcpuFd, entry: u64) -> Result<(), RegsError> {
    let sregs = long_mode_sregs(vcpu.get_sregs().map_err(RegsError::GetSregs)?);
    vcpu.set_sregs(&sregs).map_err(RegsError::SetSregs)?;
    vcpu.set_regs(&boot_regs(entry))
        .map_err(RegsError::SetRegs)?;
    vcpu.set_fpu(&boot_fpu()).map_err(RegsError::SetFpu)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_mode_is_on_with_paging_on_the_identity_map() {
        let sregs = long_mode_sregs(kvm_sregs::default());
        assert_eq!(sregs.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
        assert_eq!(sregs.cr4 & CR4_PAE, CR4_PAE);
        assert_eq!(sregs.efer, EFER_LME | EFER_LMA);
        assert_eq!(sregs.cr3, 0x9000);
    }

    #[test]
    fn segments_use_the_boot_gdt_selectors() {
        let sregs = long_mode_sregs(kvm_sregs::default());
        assert_eq!(sregs.cs.selector, 0x10);
        assert_eq!(sregs.cs.l, 1);
        assert_eq!(
            [sregs.ds.selector, sregs.ss.selector, sregs.gs.selector],
            [0x18; 3]
        );
        assert_eq!(sregs.tr.selector, 0x20);
        assert_eq!((sregs.gdt.base, sregs.gdt.limit), (0x500, 39));
        assert_eq!((sregs.idt.base, sregs.idt.limit), (0x530, 0));
    }

    #[test]
    fn boot_registers_follow_the_linux_64_bit_protocol() {
        let regs = boot_regs(0x10_0000);
        assert_eq!(regs.rip, 0x10_0000);
        assert_eq!(regs.rsi, 0x7000);
        assert_eq!(regs.rsp, 0x8ff0);
        assert_eq!(regs.rflags, 2);
    }

    #[test]
    fn fpu_starts_with_exceptions_masked() {
        let fpu = boot_fpu();
        assert_eq!((fpu.fcw, fpu.mxcsr), (0x37f, 0x1f80));
    }
}
