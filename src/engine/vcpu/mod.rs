//! One virtual CPU: its KVM fd and initial state, and the thread (`vcpu<N>`) that runs it.
//!
//! Every vCPU gets its own CPUID (APIC id, topology), the boot MSRs and the virtual-wire LAPIC
//! setup. Only the boot vCPU (index 0) gets registers: the others stay parked by KVM until the
//! guest wakes them with INIT/SIPI, as on real hardware. The thread's state machine lives in
//! [`Lifecycle`]; the loop that runs the guest and dispatches its exits is in `run_loop`.

mod crash;
pub mod kick;
mod run_loop;

use super::boot::{lapic, msrs, regs};
use super::cpuid;
use super::devices::bus::Bus;
use super::lifecycle::Lifecycle;
use kick::VcpuKick;
use kvm_bindings::{CpuId, kvm_run};
use kvm_ioctls::{VcpuFd, VmFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::thread::JoinHandle;
use vm_memory::GuestMemoryMmap;

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
    /// Port I/O devices.
    pub io_bus: Bus,
    /// MMIO devices.
    pub mmio_bus: Bus,
    /// Guest RAM (for crash reports).
    pub mem: GuestMemoryMmap,
}

/// A configured vCPU not yet running. Owned by the `Vm` until `spawn` moves it to its thread.
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
    /// Creates vCPU `index` (= APIC id) on `vm` and gives it its CPUID, MSRs and LAPIC setup;
    /// with `boot_entry`, also the boot registers entering there.
    pub fn create(
        vm: &VmFd,
        index: u32,
        supported_cpuid: &CpuId,
        max_vcpus: u32,
        boot_entry: Option<u64>,
    ) -> Result<Vcpu, VcpuError> {
        let mut fd = vm
            .create_vcpu(u64::from(index))
            .map_err(|source| VcpuError::Create { index, source })?;
        let cpuid = cpuid::vcpu_cpuid(supported_cpuid, index, max_vcpus)
            .map_err(|source| VcpuError::BuildCpuid { index, source })?;
        fd.set_cpuid2(&cpuid)
            .map_err(|source| VcpuError::SetCpuid { index, source })?;
        msrs::set_boot_msrs(&fd).map_err(|source| VcpuError::SetMsrs { index, source })?;
        lapic::set_virtual_wire(&fd).map_err(|source| VcpuError::SetLapic { index, source })?;
        if let Some(entry) = boot_entry {
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

    /// The handle that kicks this vCPU out of the guest.
    pub fn kick(&self) -> Arc<VcpuKick> {
        self.kick.clone()
    }

    /// This vCPU's counters.
    pub fn stats(&self) -> Arc<VcpuStats> {
        self.stats.clone()
    }

    /// Starts the vCPU's thread, named `vcpu<index>`, running the guest until the boot ends.
    pub fn spawn(self, ctx: Arc<RunContext>) -> Result<JoinHandle<()>, VcpuError> {
        let index = self.index;
        std::thread::Builder::new()
            .name(format!("vcpu{index}"))
            .spawn(move || run_loop::run(self, &ctx))
            .map_err(|source| VcpuError::SpawnThread { index, source })
    }
}

impl Drop for Vcpu {
    fn drop(&mut self) {
        // The kvm_run page goes away with `fd`; nobody may touch it afterwards.
        self.kick.detach_run();
    }
}
