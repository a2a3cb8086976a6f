//! The CPUID each vCPU reports: what KVM supports on this host, with the topology rewritten so
//! that every vCPU is one core (one thread) of a single package of `max_vcpus` cores, and its
//! own APIC id where the guest looks for it.
//!
//! Patched leaves: 1 (initial APIC id, logical processor count, HTT, the hypervisor bit),
//! 4 (cores sharing each cache), 0xB and 0x1F (extended topology with the x2APIC id in EDX).
//! The KVM signature leaf 0x40000000 is passed through as KVM provides it.

use kvm_bindings::{CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, kvm_cpuid_entry2};

/// Leaf 1 ECX bit 31: running under a hypervisor.
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 EDX bit 28: the package holds more than one logical processor.
const LEAF1_EDX_HTT: u32 = 1 << 28;
/// Extended-topology level type: SMT (threads of a core).
const LEVEL_TYPE_SMT: u32 = 1;
/// Extended-topology level type: core.
const LEVEL_TYPE_CORE: u32 = 2;

/// Errors building a vCPU's CPUID.
#[derive(Debug, thiserror::Error)]
pub enum CpuidError {
    /// The patched table no longer fits a `kvm_cpuid2`.
    #[error("the CPUID table has too many entries")]
    TooManyEntries(#[source] vmm_sys_util::fam::Error),
}

/// Number of bits the x2APIC id shifts to reach the package level: enough for `max_vcpus`
/// core ids.
fn package_shift(max_vcpus: u32) -> u32 {
    max_vcpus.max(1).next_power_of_two().trailing_zeros()
}

/// The CPUID of vCPU `index` (its APIC id) in a VM of up to `max_vcpus` vCPUs, from the host's
/// supported table `supported`.
pub fn vcpu_cpuid(supported: &CpuId, index: u32, max_vcpus: u32) -> Result<CpuId, CpuidError> {
    let mut entries: Vec<kvm_cpuid_entry2> = Vec::with_capacity(supported.as_slice().len() + 3);
    let mut topology_leaves = Vec::new();
    for entry in supported.as_slice() {
        match entry.function {
            // Rebuilt below from scratch so every subleaf is consistent.
            0xb | 0x1f => {
                if !topology_leaves.contains(&entry.function) {
                    topology_leaves.push(entry.function);
                }
            }
            _ => entries.push(patch_entry(*entry, index, max_vcpus)),
        }
    }
    for function in topology_leaves {
        entries.extend(topology_leaf(function, index, max_vcpus));
    }
    CpuId::from_entries(&entries).map_err(CpuidError::TooManyEntries)
}

fn patch_entry(mut entry: kvm_cpuid_entry2, index: u32, max_vcpus: u32) -> kvm_cpuid_entry2 {
    match entry.function {
        1 => {
            let logical = max_vcpus.clamp(1, 255);
            entry.ebx = (entry.ebx & 0x0000_ffff) | (index << 24) | (logical << 16);
            entry.ecx |= LEAF1_ECX_HYPERVISOR;
            if max_vcpus > 1 {
                entry.edx |= LEAF1_EDX_HTT;
            } else {
                entry.edx &= !LEAF1_EDX_HTT;
            }
        }
        4 => {
            // EAX[31:26]: cores per package - 1; EAX[25:14]: logical processors sharing this
            // cache - 1. Only the last level is shared by the whole package; with one thread per
            // core, L1 and L2 are private.
            let cache_level = (entry.eax >> 5) & 0x7;
            let cores = max_vcpus.clamp(1, 64) - 1;
            let sharing = if cache_level >= 3 {
                max_vcpus.clamp(1, 4096) - 1
            } else {
                0
            };
            if entry.eax & 0x1f != 0 {
                entry.eax = (entry.eax & 0x3fff) | (cores << 26) | (sharing << 14);
            }
        }
        _ => {}
    }
    entry
}

/// The subleaves of extended-topology leaf `function` (0xB or 0x1F) for vCPU `index`: SMT
/// level (one thread), core level (`max_vcpus` cores), then the invalid terminator.
fn topology_leaf(function: u32, index: u32, max_vcpus: u32) -> [kvm_cpuid_entry2; 3] {
    let entry = |subleaf: u32, eax: u32, ebx: u32, level_type: u32| kvm_cpuid_entry2 {
        function,
        index: subleaf,
        flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
        eax,
        ebx,
        ecx: (level_type << 8) | subleaf,
        edx: index,
        ..Default::default()
    };
    [
        entry(0, 0, 1, LEVEL_TYPE_SMT),
        entry(
            1,
            package_shift(max_vcpus),
            max_vcpus.max(1),
            LEVEL_TYPE_CORE,
        ),
        entry(2, 0, 0, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(function: u32, index: u32, eax: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax,
            ..Default::default()
        }
    }

    fn find(cpuid: &CpuId, function: u32, index: u32) -> kvm_cpuid_entry2 {
        *cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == function && e.index == index)
            .expect("leaf present")
    }

    fn host() -> CpuId {
        CpuId::from_entries(&[
            kvm_cpuid_entry2 {
                ebx: 0x0000_0800,
                ..leaf(1, 0, 0x000a_0f12)
            },
            // L1 data cache (type 1, level 1) and L3 (type 3, level 3).
            leaf(4, 0, (1 << 5) | 1),
            leaf(4, 1, (3 << 5) | 3),
            leaf(0xb, 0, 1),
            leaf(0xb, 1, 4),
            leaf(0x4000_0000, 0, 0x4000_0001),
        ])
        .expect("small table")
    }

    #[test]
    fn leaf1_reports_apic_id_and_logical_count() {
        let cpuid = vcpu_cpuid(&host(), 3, 8).expect("cpuid");
        let ebx = find(&cpuid, 1, 0).ebx;
        assert_eq!(ebx >> 24, 3);
        assert_eq!((ebx >> 16) & 0xff, 8);
        assert_eq!(ebx & 0xffff, 0x0800, "brand and clflush bits kept");
    }

    #[test]
    fn leaf1_sets_the_hypervisor_bit() {
        let cpuid = vcpu_cpuid(&host(), 0, 1).expect("cpuid");
        assert_ne!(find(&cpuid, 1, 0).ecx & (1 << 31), 0);
    }

    #[test]
    fn leaf4_shares_only_the_last_level_cache() {
        let cpuid = vcpu_cpuid(&host(), 0, 4).expect("cpuid");
        let l1 = find(&cpuid, 4, 0).eax;
        let l3 = find(&cpuid, 4, 1).eax;
        assert_eq!((l1 >> 26, (l1 >> 14) & 0xfff), (3, 0));
        assert_eq!((l3 >> 26, (l3 >> 14) & 0xfff), (3, 3));
    }

    #[test]
    fn leaf_b_describes_one_thread_per_core_and_the_x2apic_id() {
        let cpuid = vcpu_cpuid(&host(), 5, 6).expect("cpuid");
        let smt = find(&cpuid, 0xb, 0);
        let core = find(&cpuid, 0xb, 1);
        let end = find(&cpuid, 0xb, 2);
        assert_eq!((smt.eax, smt.ebx, smt.ecx, smt.edx), (0, 1, 0x100, 5));
        assert_eq!((core.eax, core.ebx, core.ecx, core.edx), (3, 6, 0x201, 5));
        assert_eq!((end.ebx, end.ecx >> 8), (0, 0));
    }

    #[test]
    fn absent_topology_leaf_1f_is_not_invented() {
        let cpuid = vcpu_cpuid(&host(), 0, 2).expect("cpuid");
        assert!(cpuid.as_slice().iter().all(|e| e.function != 0x1f));
    }

    #[test]
    fn kvm_signature_leaf_is_passed_through() {
        let cpuid = vcpu_cpuid(&host(), 1, 2).expect("cpuid");
        assert_eq!(find(&cpuid, 0x4000_0000, 0).eax, 0x4000_0001);
    }
}
