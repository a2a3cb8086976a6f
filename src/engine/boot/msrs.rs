//! Model-specific registers every vCPU starts with.
//!
//! The SYSENTER/SYSCALL MSRs start at zero so that nothing left by KVM's defaults leaks into
//! the guest, the TSC starts at zero on every vCPU at once (KVM keeps vCPUs whose TSC is written
//! close together in sync), fast string operations are enabled as firmware does, and the MTRR
//! default type is write-back so that all RAM is cacheable without MTRR programming. A vCPU
//! hot-added later leaves its TSC alone: KVM synchronises a new vCPU's TSC with the running
//! ones, and a write now (long after the others') could undo that on older kernels.

use kvm_bindings::{Msrs, kvm_msr_entry};
use kvm_ioctls::VcpuFd;

const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

/// MISC_ENABLE bit 0: fast string operations.
const MISC_ENABLE_FAST_STRING: u64 = 1 << 0;
/// MTRRdefType: MTRRs enabled (bit 11), default memory type write-back (6).
const MTRR_ENABLE_WRITE_BACK: u64 = (1 << 11) | 6;

/// Errors writing the boot MSRs.
#[derive(Debug, thiserror::Error)]
pub enum MsrError {
    /// The MSR list could not be built (a FAM allocation bound).
    #[error("cannot build the boot MSR list")]
    Build(#[source] vmm_sys_util::fam::Error),
    /// KVM_SET_MSRS failed outright.
    #[error("cannot set the boot MSRs")]
    Set(#[source] kvm_ioctls::Error),
    /// KVM accepted only part of the list.
    #[error("KVM refused boot MSR {index:#x}")]
    Refused {
        /// The first MSR KVM did not set.
        index: u32,
    },
}

/// The (index, value) pairs written to every vCPU.
pub fn boot_msrs() -> Vec<(u32, u64)> {
    vec![
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        (MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WRITE_BACK),
    ]
}

/// Writes [`boot_msrs`] to `vcpu`, without the TSC unless `with_tsc`.
pub fn set_boot_msrs(vcpu: &VcpuFd, with_tsc: bool) -> Result<(), MsrError> {
    let list: Vec<(u32, u64)> = boot_msrs()
        .into_iter()
        .filter(|&(index, _)| with_tsc || index != MSR_IA32_TSC)
        .collect();
    let entries: Vec<kvm_msr_entry> = list
        .iter()
        .map(|&(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    let msrs = Msrs::from_entries(&entries).map_err(MsrError::Build)?;
    let written = vcpu.set_msrs(&msrs).map_err(MsrError::Set)?;
    match list.get(written) {
        None => Ok(()),
        Some(&(index, _)) => Err(MsrError::Refused { index }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_strings_are_enabled() {
        assert!(boot_msrs().contains(&(MSR_IA32_MISC_ENABLE, 1)));
    }

    #[test]
    fn syscall_entry_points_start_at_zero() {
        let msrs = boot_msrs();
        for index in [
            MSR_STAR,
            MSR_LSTAR,
            MSR_CSTAR,
            MSR_SYSCALL_MASK,
            MSR_KERNEL_GS_BASE,
        ] {
            assert!(msrs.contains(&(index, 0)), "{index:#x}");
        }
    }
}
