//! One virtual CPU: its KVM fd and initial state, and the thread (`vcpu<N>`) that runs it.
//!
//! Every vCPU gets its own CPUID (APIC id, topology), the boot MSRs and the virtual-wire LAPIC
//! setup. Only the boot vCPU (index 0) gets registers: the others stay parked by KVM until the
//! guest wakes them with INIT/SIPI, as on real hardware. A vCPU hot-added to a running VM is
//! set up the same way, except that its TSC is left to KVM (which synchronises a new vCPU with
//! the running ones); the LAPIC write (`KVM_SET_LAPIC`) also puts it in KVM's APIC map, without
//! which the guest's INIT/SIPI would never reach it. The thread's state machine lives in
//! [`Lifecycle`]; the loop that runs the guest and dispatches its exits is in `run_loop`. A
//! thread hands its `Vcpu` back when it ends, so a vCPU the guest ejected can be plugged again
//! (KVM cannot destroy a vCPU, and cannot create a second one with the same id).

mod crash;
pub mod kick;
mod run_loop;
pub(crate) mod syscalls;

use super::boot::{lapic, msrs, regs};
use super::confine::{self, ThreadKind};
use super::cpuid;
use super::devices::bus::Bus;
use super::hotplug::cpu::CpuHotplug;
use super::lifecycle::Lifecycle;
use crate::engine::memory::GuestRam;
use kick::VcpuKick;
use kvm_bindings::{CpuId, KVM_MP_STATE_UNINITIALIZED, kvm_mp_state, kvm_run};
use kvm_ioctls::{VcpuFd, VmFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::thread::JoinHandle;

/// Errors creating or configuring a vCPU.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// KVM_CREATE_VCPU failed.
    #[error("cannot create vCPU {index}")]
    Create {
        /// The vCPU index.
        index: u32,
        /// What KVM reported.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The CPUID table could not be built.
    #[error("cannot build the CPUID of vCPU {index}")]
    BuildCpuid {
        /// The vCPU index.
        index: u32,
        /// Why.
        #[source]
        source: cpuid::CpuidError,
    },
    /// KVM_SET_CPUID2 failed.
    #[error("cannot set the CPUID of vCPU {index}")]
    SetCpuid {
        /// The vCPU index.
        index: u32,
        /// What KVM reported.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The boot MSRs could not be written.
    #[error("cannot set the MSRs of vCPU {index}")]
    SetMsrs {
        /// The vCPU index.
        index: u32,
        /// Why.
        #[source]
        source: msrs::MsrError,
    },
    /// The LAPIC could not be programmed.
    #[error("cannot set up the local APIC of vCPU {index}")]
    SetLapic {
        /// The vCPU index.
        index: u32,
        /// Why.
        #[source]
        source: lapic::LapicError,
    },
    /// The boot registers could not be written.
    #[error("cannot set the boot registers")]
    SetBootRegisters(#[source] regs::RegsError),
    /// A vCPU plugged again could not be put back into its wait-for-INIT state.
    #[error("cannot park vCPU {index} for INIT/SIPI")]
    SetMpState {
        /// The vCPU index.
        index: u32,
        /// What KVM reported.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The thread could not be spawned.
    #[error("cannot start the thread of vCPU {index}")]
    SpawnThread {
        /// The vCPU index.
        index: u32,
        /// What the OS reported.
        #[source]
        source: std::io::Error,
    },
}

/// Counters of one vCPU, written by its thread and read by anyone.
#[derive(Debug, Default)]
pub struct VcpuStats {
    /// Returns from `KVM_RUN` (exits to userspace) since the boot started.
    pub exits: AtomicU64,
    /// Host thread id (gettid) of the vCPU thread, 0 before it starts.
    pub tid: AtomicU32,
}

/// What every vCPU thread shares: the run state, the buses and guest memory.
pub struct RunContext {
    /// The boot's run state.
    pub lifecycle: Arc<Lifecycle>,
    /// The CPU hotplug controller (told when the guest starts a vCPU).
    pub cpus: Arc<CpuHotplug>,
    /// Port I/O devices.
    pub io_bus: Bus,
    /// MMIO devices.
    pub mmio_bus: Bus,
    /// Guest RAM (for crash reports).
    pub mem: GuestRam,
}

/// How a new vCPU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcpuStart {
    /// The boot vCPU: registers set to enter the image at `entry`.
    Boot {
        /// Guest-physical entry point.
        entry: u64,
    },
    /// Another vCPU present at boot: parked until the guest's INIT/SIPI.
    Parked,
    /// A vCPU hot-added to a running VM: parked, TSC left to KVM's synchronisation.
    HotAdded,
}

/// A configured vCPU not yet running. Owned by its VM until `spawn` moves it to its thread,
/// which hands it back when it ends.
pub struct Vcpu {
    index: u32,
    fd: VcpuFd,
    run: *mut kvm_run,
    kick: Arc<VcpuKick>,
    stats: Arc<VcpuStats>,
}

// SAFETY: `run` points into the kvm_run mapping owned by `fd`, which moves with it; it is only
// dereferenced by the thread that owns the `Vcpu` (and, through `VcpuKick`, under its lock).
unsafe impl Send for Vcpu {}

impl Vcpu {
    /// Creates vCPU `index` (= APIC id) on `vm` and gives it its CPUID, MSRs and LAPIC setup,
    /// and the boot registers for [`VcpuStart::Boot`].
    pub fn create(
        vm: &VmFd,
        index: u32,
        supported_cpuid: &CpuId,
        max_vcpus: u32,
        start: VcpuStart,
    ) -> Result<Vcpu, VcpuError> {
        let mut fd = vm
            .create_vcpu(u64::from(index))
            .map_err(|source| VcpuError::Create { index, source })?;
        let cpuid = cpuid::vcpu_cpuid(supported_cpuid, index, max_vcpus)
            .map_err(|source| VcpuError::BuildCpuid { index, source })?;
        fd.set_cpuid2(&cpuid)
            .map_err(|source| VcpuError::SetCpuid { index, source })?;
        let with_tsc = start != VcpuStart::HotAdded;
        msrs::set_boot_msrs(&fd, with_tsc)
            .map_err(|source| VcpuError::SetMsrs { index, source })?;
        lapic::set_virtual_wire(&fd).map_err(|source| VcpuError::SetLapic { index, source })?;
        if let VcpuStart::Boot { entry } = start {
            regs::configure_boot_vcpu(&fd, entry).map_err(VcpuError::SetBootRegisters)?;
        }
        let run: *mut kvm_run = fd.get_kvm_run();
        Ok(Vcpu {
            index,
            fd,
            run,
            kick: Arc::new(VcpuKick::new(run)),
            stats: Arc::new(VcpuStats::default()),
        })
    }

    /// The vCPU's KVM file descriptor, for reading or writing its state while no thread runs
    /// it (a save or a restore).
    pub fn fd(&self) -> &VcpuFd {
        &self.fd
    }

    /// The handle that kicks this vCPU out of the guest.
    pub fn kick(&self) -> Arc<VcpuKick> {
        self.kick.clone()
    }

    /// This vCPU's counters.
    pub fn stats(&self) -> Arc<VcpuStats> {
        self.stats.clone()
    }

    /// Readies a vCPU whose thread ended (the guest ejected it) to be plugged again: fresh
    /// counters, no pending kick, and back in KVM's wait-for-INIT state so that the guest
    /// brings it up exactly like a new one.
    pub fn prepare_replug(&mut self) -> Result<(), VcpuError> {
        let index = self.index;
        let parked = kvm_mp_state {
            mp_state: KVM_MP_STATE_UNINITIALIZED,
        };
        self.fd
            .set_mp_state(parked)
            .map_err(|source| VcpuError::SetMpState { index, source })?;
        self.kick.set_immediate_exit(0);
        self.stats = Arc::new(VcpuStats::default());
        Ok(())
    }

    /// Starts the vCPU's thread, named `vcpu<index>` (confined as a vCPU in vmd), running the guest until the boot ends or
    /// the vCPU is stopped; the thread's result is the `Vcpu`, to be plugged again later.
    pub fn spawn(self, ctx: Arc<RunContext>) -> Result<JoinHandle<Vcpu>, VcpuError> {
        let index = self.index;
        confine::spawn(ThreadKind::Vcpu, format!("vcpu{index}"), move || {
            run_loop::run(self, &ctx)
        })
        .map_err(|source| VcpuError::SpawnThread { index, source })
    }
}

impl Drop for Vcpu {
    fn drop(&mut self) {
        // The kvm_run page goes away with `fd`; nobody may touch it afterwards.
        self.kick.detach_run();
    }
}
