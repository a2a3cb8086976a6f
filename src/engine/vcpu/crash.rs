//! Turning a fatal vCPU exit into a sentence a person can act on: what happened, at which RIP,
//! and the instruction bytes there when they can be read.
//!
//! The instruction bytes come from KVM when it supplies them with an emulation failure, and
//! otherwise from guest memory at the RIP's physical address (translated with
//! `KVM_TRANSLATE` through the guest's own page tables, one page at a time).

use crate::engine::memory::GuestRam;
use kvm_bindings::{
    KVM_INTERNAL_ERROR_DELIVERY_EV, KVM_INTERNAL_ERROR_EMULATION,
    KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES, KVM_INTERNAL_ERROR_SIMUL_EX,
    KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON,
};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress};

/// Longest x86 instruction.
const MAX_INSTRUCTION_BYTES: usize = 15;
const PAGE: u64 = 0x1000;

/// Where the vCPU was: RIP and the linear address of the next instruction.
#[derive(Debug, Clone, Copy)]
struct Location {
    rip: u64,
    linear: u64,
}

fn location(vcpu: &VcpuFd) -> Option<Location> {
    let regs = vcpu.get_regs().ok()?;
    let sregs = vcpu.get_sregs().ok()?;
    // In long mode the CS base is ignored (0); in real and protected mode it is added.
    let base = if sregs.cs.l == 1 { 0 } else { sregs.cs.base };
    Some(Location {
        rip: regs.rip,
        linear: base.wrapping_add(regs.rip),
    })
}

/// "at RIP 0x...", or a note that registers could not be read.
fn at_rip(location: Option<Location>) -> String {
    match location {
        Some(loc) => format!("at RIP {:#x}", loc.rip),
        None => "at RIP unknown (registers unreadable)".to_owned(),
    }
}

/// Hex bytes separated by spaces.
pub fn format_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads up to 15 bytes at linear address `linear` through the guest's page tables.
fn read_instruction(vcpu: &VcpuFd, mem: &GuestRam, linear: u64) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(MAX_INSTRUCTION_BYTES);
    let mut addr = linear;
    while bytes.len() < MAX_INSTRUCTION_BYTES {
        let translation = vcpu.translate_gva(addr).ok()?;
        if translation.valid == 0 {
            break;
        }
        let in_page = (PAGE - (addr % PAGE)) as usize;
        let want = in_page.min(MAX_INSTRUCTION_BYTES - bytes.len());
        let mut chunk = vec![0u8; want];
        if mem
            .read_slice(&mut chunk, GuestAddress(translation.physical_address))
            .is_err()
        {
            break;
        }
        bytes.extend_from_slice(&chunk);
        addr = addr.wrapping_add(want as u64);
    }
    (!bytes.is_empty()).then_some(bytes)
}

fn instruction_text(bytes: Option<Vec<u8>>) -> String {
    match bytes {
        Some(bytes) => format!("instruction bytes: {}", format_bytes(&bytes)),
        None => "instruction bytes unavailable".to_owned(),
    }
}

fn suberror_name(suberror: u32) -> &'static str {
    match suberror {
        KVM_INTERNAL_ERROR_EMULATION => "instruction emulation failed",
        KVM_INTERNAL_ERROR_SIMUL_EX => "exception while delivering an exception",
        KVM_INTERNAL_ERROR_DELIVERY_EV => "event delivery failed",
        KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON => "unexpected hardware exit",
        _ => "unknown internal error",
    }
}

/// Describes a `KVM_EXIT_INTERNAL_ERROR`; `vcpu` has just returned it.
pub fn internal_error(vcpu: &mut VcpuFd, mem: &GuestRam) -> String {
    let run = vcpu.get_kvm_run();
    // SAFETY: the exit reason was KVM_EXIT_INTERNAL_ERROR, for which the kernel fills the
    // `internal`/`emulation_failure` members of the union; both are plain integers, so any bit
    // pattern is a valid value.
    let (suberror, kvm_bytes) = unsafe {
        let suberror = run.__bindgen_anon_1.internal.suberror;
        let failure = run.__bindgen_anon_1.emulation_failure;
        let insn = failure.__bindgen_anon_1.__bindgen_anon_1;
        let has_bytes = suberror == KVM_INTERNAL_ERROR_EMULATION
            && failure.ndata >= 3
            && failure.flags & u64::from(KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) != 0
            && insn.insn_size > 0;
        let len = usize::from(insn.insn_size).min(MAX_INSTRUCTION_BYTES);
        (suberror, has_bytes.then(|| insn.insn_bytes[..len].to_vec()))
    };
    let loc = location(vcpu);
    let bytes = kvm_bytes.or_else(|| loc.and_then(|l| read_instruction(vcpu, mem, l.linear)));
    format!(
        "KVM internal error: {} (suberror {suberror}) {}, {}",
        suberror_name(suberror),
        at_rip(loc),
        instruction_text(bytes)
    )
}

/// Whether registers are the x86 power-on/INIT state (CS:IP f000:fff0, CS base 0xffff0000,
/// protection off): what an AMD vCPU holds after a triple fault, since KVM re-INITs the vCPU
/// on the SHUTDOWN intercept before it reports `KVM_EXIT_SHUTDOWN`.
fn is_reset_state(rip: u64, cs_selector: u16, cs_base: u64, cr0: u64) -> bool {
    const CR0_PE: u64 = 1;
    rip == 0xfff0 && cs_selector == 0xf000 && cs_base == 0xffff_0000 && cr0 & CR0_PE == 0
}

/// Describes a `KVM_EXIT_SHUTDOWN` (a triple fault).
pub fn triple_fault(vcpu: &VcpuFd, mem: &GuestRam) -> String {
    let reset = match (vcpu.get_regs(), vcpu.get_sregs()) {
        (Ok(regs), Ok(sregs)) => {
            is_reset_state(regs.rip, sregs.cs.selector, sregs.cs.base, sregs.cr0)
        }
        _ => false,
    };
    if reset {
        return "triple fault (the CPU was reset by KVM; registers at the fault are lost)"
            .to_owned();
    }
    let loc = location(vcpu);
    let bytes = loc.and_then(|l| read_instruction(vcpu, mem, l.linear));
    format!("triple fault {}, {}", at_rip(loc), instruction_text(bytes))
}

/// Describes a `KVM_EXIT_FAIL_ENTRY`.
pub fn failed_entry(vcpu: &VcpuFd, reason: u64) -> String {
    format!(
        "KVM could not enter the guest (hardware entry failure reason {reason:#x}) {}",
        at_rip(location(vcpu))
    )
}

/// Describes an exit the engine does not expect from this platform.
pub fn unexpected_exit(vcpu: &VcpuFd, what: &str) -> String {
    format!("unexpected KVM exit {what} {}", at_rip(location(vcpu)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_formatted_as_spaced_hex() {
        assert_eq!(format_bytes(&[0x0f, 0xc7, 0x0e]), "0f c7 0e");
    }

    #[test]
    fn the_reset_vector_in_real_mode_is_the_reset_state() {
        assert!(is_reset_state(0xfff0, 0xf000, 0xffff_0000, 0x6000_0010));
    }

    #[test]
    fn a_protected_mode_rip_of_fff0_is_not_the_reset_state() {
        assert!(!is_reset_state(0xfff0, 0x10, 0, 0x8005_0033));
        assert!(!is_reset_state(0xfff0, 0xf000, 0xffff_0000, 0x8005_0033));
        assert!(!is_reset_state(0x1_0000, 0xf000, 0xffff_0000, 0x10));
    }

    #[test]
    fn missing_bytes_are_said_to_be_unavailable() {
        assert_eq!(instruction_text(None), "instruction bytes unavailable");
    }

    #[test]
    fn unknown_registers_still_mention_rip() {
        assert!(at_rip(None).contains("RIP"));
    }
}
