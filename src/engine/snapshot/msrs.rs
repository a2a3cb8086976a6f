//! Which model-specific registers a save records: every MSR KVM says it can save and restore
//! (`KVM_GET_MSR_INDEX_LIST`: the hardware MSRs it virtualizes and the ones it emulates, such
//! as kvmclock's), plus the ones the guest's CPUID enables that KVM does not list: the MTRRs
//! (fixed, variable, default type), PAT, the machine-check registers and banks, and the TSC
//! deadline and adjust registers. The x2APIC range is left out: the local APIC state carries
//! it.
//!
//! The list is a superset on purpose: [`read`] drops any MSR KVM refuses to read for this
//! vCPU (one whose feature the CPUID does not offer), so what is saved is exactly what this
//! vCPU has, and a restore that cannot write one of them says which.

use kvm_bindings::{CpuId, Msrs, kvm_msr_entry};
use kvm_ioctls::VcpuFd;

/// First and last MSR of the x2APIC register range (saved as the local APIC state).
const X2APIC_FIRST: u32 = 0x800;
const X2APIC_LAST: u32 = 0x8ff;
const MSR_IA32_TSC_ADJUST: u32 = 0x3b;
const MSR_MTRRCAP: u32 = 0xfe;
const MSR_IA32_MCG_CAP: u32 = 0x179;
const MSR_IA32_MCG_STATUS: u32 = 0x17a;
const MSR_IA32_MCG_CTL: u32 = 0x17b;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_MTRR_PHYS_BASE0: u32 = 0x200;
const MSR_MTRR_FIX_64K: u32 = 0x250;
const MSR_MTRR_FIX_16K: [u32; 2] = [0x258, 0x259];
const MSR_MTRR_FIX_4K_FIRST: u32 = 0x268;
const MSR_MTRR_FIX_4K_LAST: u32 = 0x26f;
const MSR_IA32_CR_PAT: u32 = 0x277;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
const MSR_IA32_MC0_CTL: u32 = 0x400;
const MSR_IA32_TSC_DEADLINE: u32 = 0x6e0;
const MSR_IA32_SYSENTER: [u32; 3] = [0x174, 0x175, 0x176];
const MSR_SYSCALL: [u32; 5] = [
    0xc000_0081,
    0xc000_0082,
    0xc000_0083,
    0xc000_0084,
    0xc000_0102,
];
const MSR_IA32_TSC: u32 = 0x10;

/// CPUID leaf 1 EDX: MCE, MTRR, MCA, PAT.
const LEAF1_EDX_MCE: u32 = 1 << 7;
const LEAF1_EDX_MTRR: u32 = 1 << 12;
const LEAF1_EDX_MCA: u32 = 1 << 14;
const LEAF1_EDX_PAT: u32 = 1 << 16;
/// CPUID leaf 1 ECX: TSC deadline timer.
const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;
/// CPUID leaf 7.0 EBX: IA32_TSC_ADJUST.
const LEAF7_EBX_TSC_ADJUST: u32 = 1 << 1;
/// MCG_CAP: MCG_CTL is present.
const MCG_CTL_P: u64 = 1 << 8;

/// What the CPUID of one vCPU says about the MSRs it has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsrFeatures {
    /// Memory type range registers.
    pub mtrr: bool,
    /// Page attribute table.
    pub pat: bool,
    /// Machine-check architecture (MCE and MCA).
    pub mca: bool,
    /// TSC deadline timer mode.
    pub tsc_deadline: bool,
    /// IA32_TSC_ADJUST.
    pub tsc_adjust: bool,
}

impl MsrFeatures {
    /// The features `cpuid` offers.
    pub fn of(cpuid: &CpuId) -> MsrFeatures {
        let leaf = |function: u32, index: u32| {
            cpuid
                .as_slice()
                .iter()
                .find(|e| e.function == function && e.index == index)
                .copied()
                .unwrap_or_default()
        };
        let one = leaf(1, 0);
        let seven = leaf(7, 0);
        MsrFeatures {
            mtrr: one.edx & LEAF1_EDX_MTRR != 0,
            pat: one.edx & LEAF1_EDX_PAT != 0,
            mca: one.edx & (LEAF1_EDX_MCE | LEAF1_EDX_MCA) == LEAF1_EDX_MCE | LEAF1_EDX_MCA,
            tsc_deadline: one.ecx & LEAF1_ECX_TSC_DEADLINE != 0,
            tsc_adjust: seven.ebx & LEAF7_EBX_TSC_ADJUST != 0,
        }
    }
}

/// The MSRs to try for a vCPU with `features`: KVM's list (`kvm_listed`), the registers every
/// x86-64 CPU has, and the CPUID-dependent ones; `mtrr_variable` pairs of variable MTRRs and
/// `mca_banks` machine-check banks (from MTRRcap and MCG_CAP). The x2APIC range is excluded;
/// duplicates are dropped, first occurrence kept (the TSC comes first).
pub fn candidates(
    kvm_listed: &[u32],
    features: MsrFeatures,
    mtrr_variable: u32,
    mca_banks: u32,
    mcg_ctl: bool,
) -> Vec<u32> {
    let mut list = vec![MSR_IA32_TSC, MSR_IA32_MISC_ENABLE];
    list.extend(MSR_IA32_SYSENTER);
    list.extend(MSR_SYSCALL);
    list.extend_from_slice(kvm_listed);
    if features.mtrr {
        list.push(MSR_MTRR_DEF_TYPE);
        list.push(MSR_MTRR_FIX_64K);
        list.extend(MSR_MTRR_FIX_16K);
        list.extend(MSR_MTRR_FIX_4K_FIRST..=MSR_MTRR_FIX_4K_LAST);
        list.extend(MSR_MTRR_PHYS_BASE0..MSR_MTRR_PHYS_BASE0 + 2 * mtrr_variable.min(32));
    }
    if features.pat {
        list.push(MSR_IA32_CR_PAT);
    }
    if features.mca {
        list.push(MSR_IA32_MCG_STATUS);
        if mcg_ctl {
            list.push(MSR_IA32_MCG_CTL);
        }
        list.extend(MSR_IA32_MC0_CTL..MSR_IA32_MC0_CTL + 4 * mca_banks.min(32));
    }
    if features.tsc_deadline {
        list.push(MSR_IA32_TSC_DEADLINE);
    }
    if features.tsc_adjust {
        list.push(MSR_IA32_TSC_ADJUST);
    }
    let mut seen = std::collections::HashSet::new();
    list.retain(|&index| !(X2APIC_FIRST..=X2APIC_LAST).contains(&index) && seen.insert(index));
    list
}

/// Reads one MSR, `None` when KVM refuses it.
fn read_one(vcpu: &VcpuFd, index: u32) -> Option<u64> {
    Some(read(vcpu, &[index]).ok()?.first()?.1)
}

/// The MSRs of `indices` that `vcpu` has, with their values, in `indices` order. KVM stops a
/// `KVM_GET_MSRS` at the first MSR it refuses: that one is skipped and the rest read on.
pub fn read(vcpu: &VcpuFd, indices: &[u32]) -> Result<Vec<(u32, u64)>, MsrReadError> {
    let mut values = Vec::with_capacity(indices.len());
    let mut rest = indices;
    while !rest.is_empty() {
        let entries: Vec<kvm_msr_entry> = rest
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&entries).map_err(MsrReadError::Build)?;
        let read = vcpu.get_msrs(&mut msrs).map_err(MsrReadError::Get)?;
        values.extend(msrs.as_slice()[..read].iter().map(|e| (e.index, e.data)));
        // The MSR at `read` (if any) was refused.
        rest = rest.get(read + 1..).unwrap_or(&[]);
    }
    Ok(values)
}

/// The full list for `vcpu`: [`candidates`] with the counts read from the vCPU itself.
pub fn for_vcpu(vcpu: &VcpuFd, kvm_listed: &[u32], cpuid: &CpuId) -> Vec<u32> {
    let features = MsrFeatures::of(cpuid);
    let mtrr_variable = if features.mtrr {
        read_one(vcpu, MSR_MTRRCAP).map_or(0, |cap| (cap & 0xff) as u32)
    } else {
        0
    };
    let mcg_cap = if features.mca {
        read_one(vcpu, MSR_IA32_MCG_CAP).unwrap_or(0)
    } else {
        0
    };
    candidates(
        kvm_listed,
        features,
        mtrr_variable,
        (mcg_cap & 0xff) as u32,
        mcg_cap & MCG_CTL_P != 0,
    )
}

/// Writes `values` to `vcpu`; names the first MSR KVM refuses.
pub fn write(vcpu: &VcpuFd, values: &[(u32, u64)]) -> Result<(), MsrWriteError> {
    let entries: Vec<kvm_msr_entry> = values
        .iter()
        .map(|&(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    let msrs = Msrs::from_entries(&entries).map_err(MsrWriteError::Build)?;
    let written = vcpu.set_msrs(&msrs).map_err(MsrWriteError::Set)?;
    match values.get(written) {
        None => Ok(()),
        Some(&(index, _)) => Err(MsrWriteError::Refused { index }),
    }
}

/// Why the MSRs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MsrReadError {
    /// The list is longer than KVM's limit.
    #[error("too many MSRs to read at once")]
    Build(#[source] vmm_sys_util::fam::Error),
    /// KVM_GET_MSRS failed.
    #[error("KVM_GET_MSRS failed")]
    Get(#[source] kvm_ioctls::Error),
}

/// Why the MSRs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MsrWriteError {
    /// The list is longer than KVM's limit.
    #[error("too many MSRs to write at once")]
    Build(#[source] vmm_sys_util::fam::Error),
    /// KVM_SET_MSRS failed.
    #[error("KVM_SET_MSRS failed")]
    Set(#[source] kvm_ioctls::Error),
    /// KVM refused one MSR (a feature this host's KVM lacks).
    #[error(
        "this host's KVM refuses MSR {index:#x}, which the saved vCPU had: restore on a host \
         with the same CPU features (or the same kernel)"
    )]
    Refused {
        /// The first MSR refused.
        index: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tsc_comes_first_and_duplicates_go() {
        let list = candidates(
            &[0x10, 0x174, 0x4b56_4d01],
            MsrFeatures::default(),
            0,
            0,
            false,
        );
        assert_eq!(list[0], MSR_IA32_TSC);
        assert_eq!(list.iter().filter(|&&i| i == 0x174).count(), 1);
        assert!(
            list.contains(&0x4b56_4d01),
            "kvmclock from KVM's list is kept"
        );
    }

    #[test]
    fn mtrrs_follow_the_cpuid_and_the_variable_count() {
        let without = candidates(&[], MsrFeatures::default(), 8, 0, false);
        let with = candidates(
            &[],
            MsrFeatures {
                mtrr: true,
                ..MsrFeatures::default()
            },
            8,
            0,
            false,
        );
        assert!(!without.contains(&MSR_MTRR_DEF_TYPE));
        for index in [0x2ff, 0x250, 0x258, 0x259, 0x268, 0x26f, 0x200, 0x20f] {
            assert!(with.contains(&index), "{index:#x}");
        }
        assert!(!with.contains(&0x210));
    }

    #[test]
    fn machine_check_banks_are_listed_when_the_cpu_has_mca() {
        let list = candidates(
            &[],
            MsrFeatures {
                mca: true,
                ..MsrFeatures::default()
            },
            0,
            2,
            true,
        );
        for index in [0x17a, 0x17b, 0x400, 0x403, 0x404, 0x407] {
            assert!(list.contains(&index), "{index:#x}");
        }
        assert!(!list.contains(&0x408));
    }

    #[test]
    fn the_x2apic_range_is_left_to_the_lapic_state() {
        let list = candidates(&[0x802, 0x8ff, 0x900], MsrFeatures::default(), 0, 0, false);
        assert!(!list.contains(&0x802) && !list.contains(&0x8ff));
        assert!(list.contains(&0x900));
    }

    #[test]
    fn cpuid_bits_select_the_features() {
        let cpuid = CpuId::from_entries(&[
            kvm_bindings::kvm_cpuid_entry2 {
                function: 1,
                ecx: LEAF1_ECX_TSC_DEADLINE,
                edx: LEAF1_EDX_MTRR | LEAF1_EDX_PAT | LEAF1_EDX_MCE,
                ..Default::default()
            },
            kvm_bindings::kvm_cpuid_entry2 {
                function: 7,
                ebx: LEAF7_EBX_TSC_ADJUST,
                ..Default::default()
            },
        ])
        .expect("small table");
        let features = MsrFeatures::of(&cpuid);
        assert_eq!(
            features,
            MsrFeatures {
                mtrr: true,
                pat: true,
                mca: false,
                tsc_deadline: true,
                tsc_adjust: true,
            }
        );
    }
}
