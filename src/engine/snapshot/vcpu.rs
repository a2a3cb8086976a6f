//! One vCPU's architectural state: what KVM holds for it, captured while its thread is parked
//! (not inside `KVM_RUN`) and written back to a fresh vCPU before its thread first runs.
//!
//! Captured: CPUID, general registers, special registers, the XSAVE area (`KVM_GET_XSAVE2` at
//! the size KVM asks for; it holds the x87 and SSE state too), XCRs, every MSR of
//! [`msrs`](super::msrs), the local APIC page (which carries the LAPIC timer and the x2APIC
//! registers), the multiprocessing state (runnable, halted, waiting for SIPI), pending events
//! (exceptions, interrupts, NMIs, SIPI vector, interrupt shadow) and the debug registers, and
//! the TSC frequency. Restored in the order KVM needs (Firecracker's and QEMU's): CPUID first
//! (it decides which MSRs and XSAVE features exist), multiprocessing state, registers, special
//! registers (the APIC base among them, before the APIC page), XSAVE, XCRs, debug registers,
//! local APIC, MSRs (the TSC deadline needs the APIC's timer mode), and pending events last.

use kvm_bindings::{
    CpuId, KVM_MAX_CPUID_ENTRIES, KVM_VCPUEVENT_VALID_NMI_PENDING, KVM_VCPUEVENT_VALID_SIPI_VECTOR,
    Xsave, kvm_cpuid_entry2, kvm_debugregs, kvm_lapic_state, kvm_mp_state, kvm_regs, kvm_sregs,
    kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};
use kvm_ioctls::VcpuFd;
use serde::{Deserialize, Serialize};
use zerocopy::{FromBytes, IntoBytes};

use super::blob::{Blob, BlobSizeError};
use super::msrs::{self, MsrReadError, MsrWriteError};

/// Bytes of the legacy `kvm_xsave` region (the part before `KVM_GET_XSAVE2`'s extension).
const XSAVE_LEGACY_BYTES: usize = std::mem::size_of::<kvm_xsave>();

/// What this host's KVM offers for vCPU state (checked once per VM).
#[derive(Debug, Clone, Default)]
pub struct VcpuCaps {
    /// Size of the XSAVE area `KVM_GET_XSAVE2` fills, bytes; `None` when this KVM has no XSAVE
    /// state (then VMs cannot be saved here).
    pub xsave_bytes: Option<usize>,
    /// KVM_GET_XCRS works.
    pub xcrs: bool,
    /// KVM reads the TSC frequency of a vCPU.
    pub tsc_khz: bool,
    /// KVM can set another TSC frequency.
    pub tsc_control: bool,
    /// The MSRs KVM lists as saveable (`KVM_GET_MSR_INDEX_LIST`).
    pub msr_list: Vec<u32>,
}

/// One vCPU's state in the save file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VcpuState {
    /// vCPU index (= APIC id).
    pub index: u32,
    /// The CPUID the guest saw: `kvm_cpuid_entry2` entries, back to back.
    pub cpuid: Blob,
    /// `kvm_regs`.
    pub regs: Blob,
    /// `kvm_sregs`.
    pub sregs: Blob,
    /// The XSAVE area (`kvm_xsave` and its `KVM_GET_XSAVE2` extension).
    pub xsave: Blob,
    /// `kvm_xcrs`, where KVM has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xcrs: Option<Blob>,
    /// MSR index and value pairs, in the order they are written back.
    pub msrs: Vec<(u32, u64)>,
    /// `kvm_lapic_state`: the local APIC page.
    pub lapic: Blob,
    /// `kvm_mp_state::mp_state` (runnable, halted, waiting for INIT or SIPI).
    pub mp_state: u32,
    /// `kvm_vcpu_events`.
    pub events: Blob,
    /// `kvm_debugregs`.
    pub debug_regs: Blob,
    /// TSC frequency, kHz, where KVM reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsc_khz: Option<u32>,
}

/// Why a vCPU's state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum VcpuStateError {
    /// One KVM ioctl failed.
    #[error("cannot {op} of vCPU {index}")]
    Kvm {
        /// What was being done ("read the registers").
        op: &'static str,
        /// vCPU index.
        index: u32,
        /// What KVM said.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The MSRs could not be read.
    #[error("cannot read the MSRs of vCPU {index}")]
    ReadMsrs {
        /// vCPU index.
        index: u32,
        /// Why.
        #[source]
        source: MsrReadError,
    },
    /// The MSRs could not be written.
    #[error("cannot restore the MSRs of vCPU {index}")]
    WriteMsrs {
        /// vCPU index.
        index: u32,
        /// Why (names the MSR).
        #[source]
        source: MsrWriteError,
    },
    /// A saved structure has the wrong size for this vmux.
    #[error("the state of vCPU {index} does not fit this vmux")]
    Size {
        /// vCPU index.
        index: u32,
        /// Which structure and sizes.
        #[source]
        source: BlobSizeError,
    },
    /// The saved XSAVE area and this host's differ in size (0: no XSAVE state in KVM).
    #[error(
        "vCPU {index}'s XSAVE area is {saved} bytes in the save but this host's KVM uses {here} \
         (0: this KVM cannot save the FPU state at all): save and restore on hosts with the same \
         CPU features"
    )]
    XsaveSize {
        /// vCPU index.
        index: u32,
        /// Bytes in the save.
        saved: usize,
        /// Bytes here (0: no XSAVE).
        here: usize,
    },
    /// The saved CPUID table is malformed or too large.
    #[error("the saved CPUID of vCPU {index} is not a list of CPUID entries")]
    Cpuid {
        /// vCPU index.
        index: u32,
    },
    /// The saved vCPU used CPU features this host's KVM does not offer.
    #[error(
        "vCPU {index} ran with CPU features this host does not offer (CPUID leaf {leaf:#x} \
         {register} bits {missing:#x}): restore on the host that saved it or one with the same \
         CPU"
    )]
    CpuFeatures {
        /// vCPU index.
        index: u32,
        /// CPUID leaf (and subleaf in the high half for leaf 7 and 0xd).
        leaf: u32,
        /// "eax", "ebx", "ecx" or "edx".
        register: &'static str,
        /// The bits missing here.
        missing: u32,
    },
    /// The TSC cannot run at the saved frequency here.
    #[error(
        "vCPU {index} ran with a TSC of {saved} kHz and this host's KVM cannot set it (here: \
         {here} kHz); restore on the host that saved it or one with TSC scaling"
    )]
    TscFrequency {
        /// vCPU index.
        index: u32,
        /// Saved frequency, kHz.
        saved: u32,
        /// This host's, kHz.
        here: u32,
    },
}

fn kvm(op: &'static str, index: u32) -> impl FnOnce(kvm_ioctls::Error) -> VcpuStateError {
    move |source| VcpuStateError::Kvm { op, index, source }
}

fn sized(index: u32) -> impl FnOnce(BlobSizeError) -> VcpuStateError {
    move |source| VcpuStateError::Size { index, source }
}

/// Reads the state of vCPU `index`, whose thread must not be inside `KVM_RUN`.
pub fn capture(vcpu: &VcpuFd, index: u32, caps: &VcpuCaps) -> Result<VcpuState, VcpuStateError> {
    let cpuid = vcpu
        .get_cpuid2(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm("read the CPUID", index))?;
    let regs = vcpu.get_regs().map_err(kvm("read the registers", index))?;
    let sregs = vcpu
        .get_sregs()
        .map_err(kvm("read the special registers", index))?;
    let bytes = caps.xsave_bytes.ok_or(VcpuStateError::XsaveSize {
        index,
        saved: 0,
        here: 0,
    })?;
    let xsave = read_xsave(vcpu, index, bytes)?;
    let xcrs = if caps.xcrs {
        Some(Blob::of(
            &vcpu.get_xcrs().map_err(kvm("read the XCRs", index))?,
        ))
    } else {
        None
    };
    let list = msrs::for_vcpu(vcpu, &caps.msr_list, &cpuid);
    let msr_values =
        msrs::read(vcpu, &list).map_err(|source| VcpuStateError::ReadMsrs { index, source })?;
    let lapic = vcpu
        .get_lapic()
        .map_err(kvm("read the local APIC", index))?;
    let mp_state = vcpu
        .get_mp_state()
        .map_err(kvm("read the multiprocessing state", index))?;
    let events = vcpu
        .get_vcpu_events()
        .map_err(kvm("read the pending events", index))?;
    let debug_regs = vcpu
        .get_debug_regs()
        .map_err(kvm("read the debug registers", index))?;
    let tsc_khz = if caps.tsc_khz {
        Some(
            vcpu.get_tsc_khz()
                .map_err(kvm("read the TSC frequency", index))?,
        )
    } else {
        None
    };
    Ok(VcpuState {
        index,
        cpuid: Blob(cpuid.as_slice().as_bytes().to_vec()),
        regs: Blob::of(&regs),
        sregs: Blob::of(&sregs),
        xsave,
        xcrs,
        msrs: msr_values,
        lapic: Blob::of(&lapic),
        mp_state: mp_state.mp_state,
        events: Blob::of(&events),
        debug_regs: Blob::of(&debug_regs),
        tsc_khz,
    })
}

/// The saved CPUID table of `state`.
pub fn saved_cpuid(state: &VcpuState) -> Result<CpuId, VcpuStateError> {
    let cpuid_error = || VcpuStateError::Cpuid { index: state.index };
    let entries =
        <[kvm_cpuid_entry2]>::ref_from_bytes(&state.cpuid.0).map_err(|_| cpuid_error())?;
    CpuId::from_entries(entries).map_err(|_| cpuid_error())
}

/// Writes `state` to a vCPU that has not run yet (created with the same index).
pub fn restore(vcpu: &VcpuFd, state: &VcpuState, caps: &VcpuCaps) -> Result<(), VcpuStateError> {
    let index = state.index;
    let regs: kvm_regs = state.regs.to("registers").map_err(sized(index))?;
    let sregs: kvm_sregs = state.sregs.to("special registers").map_err(sized(index))?;
    let lapic: kvm_lapic_state = state.lapic.to("local APIC").map_err(sized(index))?;
    let mut events: kvm_vcpu_events = state.events.to("pending events").map_err(sized(index))?;
    let debug_regs: kvm_debugregs = state
        .debug_regs
        .to("debug registers")
        .map_err(sized(index))?;
    let xcrs: Option<kvm_xcrs> = match &state.xcrs {
        Some(blob) => Some(blob.to("XCRs").map_err(sized(index))?),
        None => None,
    };
    let cpuid = saved_cpuid(state)?;
    let here = vcpu
        .get_cpuid2(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm("read the CPUID", index))?;
    check_features(index, &cpuid, &here)?;

    if let (Some(saved), true) = (state.tsc_khz, caps.tsc_khz) {
        let here = vcpu
            .get_tsc_khz()
            .map_err(kvm("read the TSC frequency", index))?;
        if here != saved {
            if !caps.tsc_control {
                return Err(VcpuStateError::TscFrequency { index, saved, here });
            }
            vcpu.set_tsc_khz(saved)
                .map_err(|_| VcpuStateError::TscFrequency { index, saved, here })?;
        }
    }
    vcpu.set_cpuid2(&cpuid)
        .map_err(kvm("set the CPUID", index))?;
    vcpu.set_mp_state(kvm_mp_state {
        mp_state: state.mp_state,
    })
    .map_err(kvm("set the multiprocessing state", index))?;
    vcpu.set_regs(&regs)
        .map_err(kvm("set the registers", index))?;
    vcpu.set_sregs(&sregs)
        .map_err(kvm("set the special registers", index))?;
    match caps.xsave_bytes {
        Some(bytes) if bytes == state.xsave.0.len() => write_xsave(vcpu, index, &state.xsave.0)?,
        here => {
            return Err(VcpuStateError::XsaveSize {
                index,
                saved: state.xsave.0.len(),
                here: here.unwrap_or(0),
            });
        }
    }
    if let Some(xcrs) = &xcrs {
        vcpu.set_xcrs(xcrs).map_err(kvm("set the XCRs", index))?;
    }
    vcpu.set_debug_regs(&debug_regs)
        .map_err(kvm("set the debug registers", index))?;
    vcpu.set_lapic(&lapic)
        .map_err(kvm("set the local APIC", index))?;
    msrs::write(vcpu, &state.msrs).map_err(|source| VcpuStateError::WriteMsrs { index, source })?;
    // The NMI-pending and SIPI-vector fields are only taken when flagged valid.
    events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
    vcpu.set_vcpu_events(&events)
        .map_err(kvm("set the pending events", index))?;
    Ok(())
}

/// Feature registers compared between a save and this host: (leaf, subleaf, register index
/// 0..4 for eax..edx, bits that change at run time and are not compared).
const FEATURE_REGISTERS: [(u32, u32, usize, u32); 8] = [
    // OSXSAVE (27) follows CR4; the hypervisor bit (31) is vmux's own.
    (1, 0, 2, (1 << 27) | (1 << 31)),
    // APIC (9) follows the APIC base MSR; HTT (28) follows max_vcpus.
    (1, 0, 3, (1 << 9) | (1 << 28)),
    (7, 0, 1, 0),
    // OSPKE (4) follows CR4.
    (7, 0, 2, 1 << 4),
    (7, 0, 3, 0),
    (0xd, 1, 0, 0),
    (0x8000_0001, 0, 2, 0),
    (0x8000_0001, 0, 3, 0),
];

/// Refuses a saved CPUID that has feature bits the CPUID vmux builds here lacks.
fn check_features(index: u32, saved: &CpuId, here: &CpuId) -> Result<(), VcpuStateError> {
    let find = |table: &CpuId, leaf: u32, sub: u32| {
        table
            .as_slice()
            .iter()
            .find(|e| e.function == leaf && (e.index == sub || leaf == 1 || leaf == 0x8000_0001))
            .map(|e| [e.eax, e.ebx, e.ecx, e.edx])
    };
    const NAMES: [&str; 4] = ["eax", "ebx", "ecx", "edx"];
    for (leaf, sub, register, dynamic) in FEATURE_REGISTERS {
        let Some(saved_regs) = find(saved, leaf, sub) else {
            continue;
        };
        let here_regs = find(here, leaf, sub).unwrap_or_default();
        let missing = saved_regs[register] & !here_regs[register] & !dynamic;
        if missing != 0 {
            return Err(VcpuStateError::CpuFeatures {
                index,
                leaf,
                register: NAMES[register],
                missing,
            });
        }
    }
    Ok(())
}

/// An `Xsave` buffer of `bytes` (at least the legacy 4 KiB).
fn xsave_buffer(bytes: usize) -> Option<Xsave> {
    let extra = bytes.saturating_sub(XSAVE_LEGACY_BYTES).div_ceil(4);
    Xsave::new(extra).ok()
}

fn read_xsave(vcpu: &VcpuFd, index: u32, bytes: usize) -> Result<Blob, VcpuStateError> {
    let mut xsave = xsave_buffer(bytes).ok_or(VcpuStateError::XsaveSize {
        index,
        saved: bytes,
        here: bytes,
    })?;
    // SAFETY: `xsave` holds `bytes` bytes (the legacy region plus the extension rounded up to
    // whole u32s), which is what KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) said KVM writes; vmux
    // enables no XSTATE feature dynamically after that check.
    unsafe { vcpu.get_xsave2(&mut xsave) }.map_err(kvm("read the XSAVE area", index))?;
    let mut out = xsave.as_fam_struct_ref().xsave.region.as_bytes().to_vec();
    out.extend_from_slice(xsave.as_slice().as_bytes());
    out.truncate(bytes.max(XSAVE_LEGACY_BYTES));
    Ok(Blob(out))
}

fn write_xsave(vcpu: &VcpuFd, index: u32, bytes: &[u8]) -> Result<(), VcpuStateError> {
    let size_error = VcpuStateError::XsaveSize {
        index,
        saved: bytes.len(),
        here: bytes.len(),
    };
    let mut xsave = xsave_buffer(bytes.len()).ok_or(size_error)?;
    let (legacy, extra) = bytes.split_at(XSAVE_LEGACY_BYTES.min(bytes.len()));
    // SAFETY: only the legacy XSAVE region is written; the FAM length field, which the wrapper
    // relies on for the size of its allocation, is left as `xsave_buffer` set it.
    let region = unsafe { xsave.as_mut_fam_struct() }
        .xsave
        .region
        .as_mut_bytes();
    if let Some(region) = region.get_mut(..legacy.len()) {
        region.copy_from_slice(legacy);
    }
    let tail = xsave.as_mut_slice().as_mut_bytes();
    let n = extra.len().min(tail.len());
    tail[..n].copy_from_slice(&extra[..n]);
    // SAFETY: the buffer holds as many bytes as KVM_CAP_XSAVE2 reported for this host (the
    // caller checked the saved area has exactly that size), so KVM reads inside it.
    unsafe { vcpu.set_xsave2(&xsave) }.map_err(kvm("set the XSAVE area", index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with_cpuid(cpuid: Vec<u8>) -> VcpuState {
        VcpuState {
            index: 3,
            cpuid: Blob(cpuid),
            regs: Blob::default(),
            sregs: Blob::default(),
            xsave: Blob::default(),
            xcrs: None,
            msrs: vec![(0x10, 5)],
            lapic: Blob::default(),
            mp_state: 0,
            events: Blob::default(),
            debug_regs: Blob::default(),
            tsc_khz: Some(2_000_000),
        }
    }

    #[test]
    fn the_cpuid_comes_back_entry_by_entry() {
        let entries = [
            kvm_cpuid_entry2 {
                function: 1,
                eax: 0x806f8,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xd,
                index: 1,
                ebx: 0x240,
                ..Default::default()
            },
        ];
        let state = state_with_cpuid(entries.as_bytes().to_vec());
        let cpuid = saved_cpuid(&state).expect("entries");
        assert_eq!(cpuid.as_slice(), &entries);
    }

    #[test]
    fn a_feature_this_host_lacks_is_named_and_run_time_bits_are_ignored() {
        let table = |ecx: u32, ebx7: u32| {
            CpuId::from_entries(&[
                kvm_cpuid_entry2 {
                    function: 1,
                    ecx,
                    ..Default::default()
                },
                kvm_cpuid_entry2 {
                    function: 7,
                    ebx: ebx7,
                    ..Default::default()
                },
            ])
            .expect("small table")
        };
        let host = table(1, 0b1);
        assert!(
            check_features(0, &table(1 | (1 << 27), 0b1), &host).is_ok(),
            "OSXSAVE"
        );
        let err = check_features(2, &table(1, 0b101), &host).expect_err("missing bit");
        assert!(
            matches!(
                err,
                VcpuStateError::CpuFeatures {
                    index: 2,
                    leaf: 7,
                    register: "ebx",
                    missing: 0b100
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_cpuid_blob_cut_mid_entry_is_refused() {
        let state = state_with_cpuid(vec![0; 41]);
        assert!(matches!(
            saved_cpuid(&state),
            Err(VcpuStateError::Cpuid { index: 3 })
        ));
    }

    #[test]
    fn unknown_fields_in_a_saved_vcpu_are_refused() {
        let mut json = serde_json::to_value(state_with_cpuid(Vec::new())).expect("serialize");
        json["nested_state"] = serde_json::json!("00");
        let err = serde_json::from_value::<VcpuState>(json).expect_err("unknown field");
        assert!(err.to_string().contains("nested_state"), "{err}");
    }
}
