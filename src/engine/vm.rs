//! The VM object: building one boot of a machine from a [`VmSpec`], running it, and
//! controlling it through cloneable [`VmHandle`]s.
//!
//! [`Vm::create`] does all the work that can fail before the guest runs, in the order KVM
//! needs: the VM fd, its TSS and identity-map pages, guest RAM and its memory slots, the
//! in-kernel irqchip and PIT, the boot image and boot structures, the ACPI tables, the devices
//! and the vCPUs. [`Vm::start`] spawns one thread per vCPU; [`Vm::wait`] blocks until the boot ends
//! (power-off, reset, debug exit, destroy or crash) and joins them. While it runs,
//! [`VmHandle::set_vcpus`] hot-adds and removes vCPUs, [`VmHandle::attach_disk`] and
//! [`VmHandle::detach_disk`] disks (see `hotplug`), [`VmHandle::save`] writes the VM to a
//! file (`vm/save.rs`), [`Vm::restore`] builds one from a file (`vm/restore.rs`), and
//! [`VmHandle::set_balloon_target`] asks the guest to give memory back.

mod restore;
mod save;

pub use restore::RestoreError;
pub use save::{SaveError, SaveReport};

use super::acpi::{self, AcpiConfig, AcpiError};
use super::boot::{self, BootError};
use super::devices::bus::lock;
use super::devices::virtio::balloon::{Balloon, BalloonInfo};
use super::devices::virtio::blk::DiskCounters;
use super::devices::virtio::net::NicCounters;
use super::devices::{DeviceError, LegacyDevices, ged::Ged, serial::Serial};
use super::hotplug::cpu::{self as cpu_hotplug, CpuHotplug};
use super::hotplug::pci::{self as pci_hotplug, PciHotplug};
use super::hotplug::vcpus::VcpuSet;
use super::hotplug::{self, HotplugError};
use super::kvm::{self, KvmError};
use super::layout;
use super::lifecycle::{Lifecycle, LifecycleError};
use super::memory::{self, MemoryError};
use super::pci::{KvmVmInterface, PciPlatform, PlatformError};
use super::snapshot::VcpuCaps;
use super::vcpu::{RunContext, VcpuError, VcpuStart, kick};
use super::{DiskSpec, DiskStats, NicStats, SerialSink, VmExit, VmObserver, VmSpec};
use crate::engine::memory::GuestRam;
use kvm_bindings::kvm_userspace_memory_region;
use kvm_bindings::{KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY, kvm_pit_config};
use kvm_ioctls::{Cap, Kvm, VmFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

/// Errors building or controlling a VM.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `vcpus`/`max_vcpus` are out of range.
    #[error(
        "a VM needs 1 <= vcpus <= max_vcpus <= {max} (got vcpus {vcpus}, max_vcpus \
         {max_vcpus}): fix the VM's vCPU counts",
        max = layout::MAX_VCPUS
    )]
    InvalidVcpuCount {
        /// vCPUs asked for at boot.
        vcpus: u32,
        /// vCPUs asked for at most.
        max_vcpus: u32,
    },
    /// The host's KVM supports fewer vCPUs than `max_vcpus`.
    #[error("this host's KVM runs at most {host_max} vCPUs per VM: lower max_vcpus to {host_max}")]
    TooManyVcpus {
        /// The host's limit.
        host_max: u32,
    },
    /// Guest RAM could not be set up (the message names the fix).
    #[error(transparent)]
    Memory(MemoryError),
    /// KVM is unusable on this host (the message names the fix).
    #[error(transparent)]
    Kvm(KvmError),
    /// KVM_CREATE_VM failed.
    #[error("cannot create the KVM virtual machine")]
    CreateVm(#[source] kvm_ioctls::Error),
    /// KVM_SET_TSS_ADDR failed.
    #[error("cannot set KVM's TSS address")]
    SetTssAddress(#[source] kvm_ioctls::Error),
    /// KVM_SET_IDENTITY_MAP_ADDR failed.
    #[error("cannot set KVM's identity-map address")]
    SetIdentityMapAddress(#[source] kvm_ioctls::Error),
    /// KVM_CREATE_IRQCHIP failed.
    #[error("cannot create the in-kernel interrupt controllers")]
    CreateIrqchip(#[source] kvm_ioctls::Error),
    /// KVM_CREATE_PIT2 failed.
    #[error("cannot create the in-kernel PIT")]
    CreatePit(#[source] kvm_ioctls::Error),
    /// KVM_SET_USER_MEMORY_REGION failed.
    #[error("cannot give guest memory slot {slot} to KVM")]
    AddMemorySlot {
        /// The slot number.
        slot: u32,
        /// What KVM reported.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The boot image could not be loaded (the message names the file and the fix).
    #[error(transparent)]
    Boot(BootError),
    /// The ACPI tables could not be built or written.
    #[error("cannot create the ACPI tables")]
    Acpi(#[source] AcpiError),
    /// The devices could not be built.
    #[error("cannot set up the VM's devices")]
    Devices(#[source] DeviceError),
    /// The PCI bus or a disk could not be set up (the message names the disk and the fix).
    #[error(transparent)]
    Pci(PlatformError),
    /// KVM_GET_SUPPORTED_CPUID failed.
    #[error("cannot read the CPUID KVM supports")]
    GetSupportedCpuid(#[source] kvm_ioctls::Error),
    /// A vCPU could not be created, configured or started.
    #[error("cannot set up the VM's vCPUs")]
    Vcpu(#[source] VcpuError),
    /// The vCPU kick signal handler could not be installed.
    #[error("cannot install the vCPU kick signal handler")]
    InstallKickHandler(#[source] vmm_sys_util::errno::Error),
    /// `start` was called twice.
    #[error("VM {0} has already been started")]
    AlreadyStarted(String),
    /// The boot ended before vCPU 0 ran.
    #[error("VM {name} stopped before its first vCPU ran: {reason}")]
    Start {
        /// The VM's name.
        name: String,
        /// How the boot ended.
        reason: String,
    },
    /// A control request that does not fit the VM's state.
    #[error(transparent)]
    Control(#[from] LifecycleError),
    /// A vCPU hotplug request failed (the message names the fix).
    #[error(transparent)]
    Hotplug(#[from] HotplugError),
    /// A save failed; the VM carries on.
    #[error("cannot save the VM")]
    Save(#[source] SaveError),
    /// A save file cannot become a VM here (the message says why).
    #[error(transparent)]
    Restore(RestoreError),
    /// The balloon was asked to take all of the guest's memory.
    #[error("the balloon cannot take all {memory_mib} MiB of the guest's memory; leave it some")]
    BalloonTarget {
        /// Guest RAM, MiB.
        memory_mib: u64,
    },
    /// The VM has no memory balloon (disabled in its definition).
    #[error(
        "this VM has no memory balloon; enable it in the definition (balloon = true) and restart the VM"
    )]
    NoBalloon,
}

/// Counters of one vCPU.
#[derive(Debug, Clone, PartialEq)]
pub struct VcpuCounters {
    /// vCPU index (= APIC id).
    pub index: u32,
    /// Host thread id of its thread.
    pub tid: u32,
    /// Exits handled since boot.
    pub exits: u64,
}

/// Engine-side counters; vmd adds host-side figures (CPU time, RSS).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineStats {
    /// One entry per plugged vCPU, by index.
    pub vcpus: Vec<VcpuCounters>,
    /// Guest RAM size, bytes.
    pub memory_bytes: u64,
    /// Guest RAM resident in host memory (touched), bytes.
    pub memory_touched_bytes: u64,
    /// One entry per plugged disk, in PCI slot order (boot disks first, in `VmSpec::disks`
    /// order, then hot-added ones in the slots they took).
    pub disks: Vec<DiskStats>,
    /// One entry per NIC, in `VmSpec::nics` order.
    pub nics: Vec<NicStats>,
    /// The memory balloon, when the VM has one.
    pub balloon: Option<BalloonInfo>,
}

/// What handles share with the VM.
struct Shared {
    lifecycle: Arc<Lifecycle>,
    serial: Arc<Mutex<Serial>>,
    ged: Arc<Mutex<Ged>>,
    /// Which vCPUs are plugged and online; also the guest's CPU hotplug registers.
    cpus: Arc<CpuHotplug>,
    /// The vCPUs and their threads; taken (and joined) when the boot ends, so a handle kept
    /// afterwards holds no vCPU or VM fd.
    vcpus: Mutex<Option<VcpuSet>>,
    /// Guest RAM for the touched-bytes statistic; released when the `Vm` goes away so that a
    /// handle kept after the boot does not keep the guest's memory alive.
    mem: Mutex<Option<GuestRam>>,
    memory_bytes: u64,
    /// The PCI root bus and its disks; taken (and dropped) when the boot ends, so a handle
    /// kept afterwards holds no device or image.
    pci: Arc<Mutex<Option<PciPlatform>>>,
    /// Disk hot-add and removal; also the guest's PCI hotplug registers.
    pci_hotplug: Arc<PciHotplug>,
    /// The disks' counters when the boot ended (stats stay readable after the end).
    final_disks: Mutex<Vec<Arc<DiskCounters>>>,
    /// Each NIC's counters, in `VmSpec::nics` order (NICs are not hot-plugged).
    nics: Vec<Arc<NicCounters>>,
    /// The memory balloon's control handle, when the VM has one.
    balloon: Option<Balloon>,
    /// What this host's KVM offers for saving vCPU state.
    caps: Arc<VcpuCaps>,
}

/// What this host's KVM offers for vCPU state (XSAVE size, XCRs, TSC frequency, the MSR list).
fn vcpu_caps(kvm: &Kvm, vm: &VmFd) -> VcpuCaps {
    let xsave2 = usize::try_from(vm.check_extension_int(Cap::Xsave2)).unwrap_or(0);
    let xsave_bytes = if xsave2 > 0 {
        Some(xsave2.max(std::mem::size_of::<kvm_bindings::kvm_xsave>()))
    } else if vm.check_extension(Cap::Xsave) {
        Some(std::mem::size_of::<kvm_bindings::kvm_xsave>())
    } else {
        None
    };
    VcpuCaps {
        xsave_bytes,
        xcrs: vm.check_extension(Cap::Xcrs),
        tsc_khz: vm.check_extension(Cap::GetTscKhz),
        tsc_control: vm.check_extension(Cap::TscControl),
        msr_list: kvm
            .get_msr_index_list()
            .map(|list| list.as_slice().to_vec())
            .unwrap_or_default(),
    }
}

/// One boot of one VM; owns the KVM fds, memory, devices and vCPU threads.
///
/// Dropping a started `Vm` without [`Vm::wait`] destroys it and joins its threads.
pub struct Vm {
    name: String,
    shared: Arc<Shared>,
    ctx: Arc<RunContext>,
    started: bool,
    /// [`Vm::close_at_process_exit`] was called.
    close_at_exit: bool,
    /// The boot ended with anything but a reset: the VM will not be booted again.
    ended_for_good: bool,
    // Declared last so they are closed after the vCPUs (which `wait` or `drop` join first).
    // Shared (`Arc`) with the PCI devices, which program MSI routes and ioeventfds on it, and
    // with the vCPU set, which creates hot-added vCPUs on it. `None` once handed to the
    // process exit (see `Drop`).
    vm_fd: Option<Arc<VmFd>>,
    _kvm: Kvm,
}

/// Cloneable, thread-safe control of a [`Vm`].
#[derive(Clone)]
pub struct VmHandle {
    shared: Arc<Shared>,
}

fn validate_vcpus(spec: &VmSpec) -> Result<(), EngineError> {
    let valid =
        spec.vcpus >= 1 && spec.vcpus <= spec.max_vcpus && spec.max_vcpus <= layout::MAX_VCPUS;
    if !valid {
        return Err(EngineError::InvalidVcpuCount {
            vcpus: spec.vcpus,
            max_vcpus: spec.max_vcpus,
        });
    }
    Ok(())
}

/// Creates the VM fd with the addresses KVM wants before anything else.
fn create_vm_fd(kvm: &Kvm) -> Result<VmFd, EngineError> {
    let vm = kvm.create_vm().map_err(EngineError::CreateVm)?;
    vm.set_tss_address(layout::KVM_TSS_START as usize)
        .map_err(EngineError::SetTssAddress)?;
    vm.set_identity_map_address(layout::KVM_IDENTITY_MAP_START)
        .map_err(EngineError::SetIdentityMapAddress)?;
    Ok(vm)
}

/// Creates the in-kernel irqchip (PIC, IOAPIC, local APICs) and PIT. Called after the memory
/// slots are in place: once the irqchip's devices are on KVM's I/O buses, every memory-slot
/// change waits for an SRCU grace period (measured 2-6 ms for one slot on the development
/// machine, against 0.2 ms before), which is most of a launch.
fn create_interrupt_controllers(vm: &VmFd) -> Result<(), EngineError> {
    vm.create_irq_chip().map_err(EngineError::CreateIrqchip)?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit).map_err(EngineError::CreatePit)
}

/// Hands every region of `mem` to KVM as one memory slot.
fn add_memory_slots(vm: &VmFd, mem: &GuestRam) -> Result<(), EngineError> {
    for (slot, region) in mem.iter().enumerate() {
        let slot = slot as u32;
        let region_desc = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: region.as_ptr() as u64,
        };
        // SAFETY: the host range is a live anonymous mapping owned by `mem`'s region; the `Vm`
        // keeps a clone of `mem` (sharing the same mappings) for as long as the VM fd exists,
        // and the guest-physical ranges of the regions do not overlap.
        unsafe { vm.set_user_memory_region(region_desc) }
            .map_err(|source| EngineError::AddMemorySlot { slot, source })?;
    }
    Ok(())
}

impl Vm {
    /// Builds the VM (memory, irqchip, devices, ACPI, boot image loaded, vCPUs created) without
    /// running it.
    pub fn create(spec: &VmSpec, serial: Arc<dyn SerialSink>) -> Result<Vm, EngineError> {
        validate_vcpus(spec)?;
        memory::validate_size(spec.memory_bytes).map_err(EngineError::Memory)?;
        let kvm = kvm::open().map_err(EngineError::Kvm)?;
        let host_max = kvm.get_max_vcpus() as u32;
        if spec.max_vcpus > host_max {
            return Err(EngineError::TooManyVcpus { host_max });
        }
        let vm_fd = Arc::new(create_vm_fd(&kvm)?);
        let mem = memory::create_guest_memory(spec.memory_bytes).map_err(EngineError::Memory)?;
        add_memory_slots(&vm_fd, &mem)?;
        create_interrupt_controllers(&vm_fd)?;
        let boot = boot::load(&mem, &spec.boot, spec.memory_bytes).map_err(EngineError::Boot)?;
        let acpi_config = AcpiConfig {
            vcpus: spec.vcpus,
            max_vcpus: spec.max_vcpus,
        };
        acpi::create_acpi_tables(&mem, &acpi_config).map_err(EngineError::Acpi)?;

        let lifecycle = Arc::new(Lifecycle::new());
        let mut devices =
            LegacyDevices::create(&vm_fd, &lifecycle, serial).map_err(EngineError::Devices)?;
        let cpus = Arc::new(CpuHotplug::new(
            spec.max_vcpus,
            lifecycle.clone(),
            devices.ged.clone(),
        ));
        devices
            .io_bus
            .insert(
                Arc::new(Mutex::new(cpu_hotplug::Registers(cpus.clone()))),
                u64::from(layout::CPU_HOTPLUG_PORT),
                cpu_hotplug::PORT_COUNT,
            )
            .map_err(|e| EngineError::Devices(DeviceError::Place(e)))?;
        let pci = PciPlatform::create(
            Arc::new(KvmVmInterface::new(vm_fd.clone())),
            &mem,
            &spec.disks,
            &spec.nics,
            spec.balloon,
            &mut devices.io_bus,
            &mut devices.mmio_bus,
        )
        .map_err(EngineError::Pci)?;
        let nics = pci.nic_counters();
        let balloon = pci.balloon();
        let pci = Arc::new(Mutex::new(Some(pci)));
        let pci_hotplug = Arc::new(PciHotplug::new(pci.clone(), devices.ged.clone()));
        devices
            .io_bus
            .insert(
                Arc::new(Mutex::new(pci_hotplug::Registers(pci_hotplug.clone()))),
                u64::from(layout::PCI_HOTPLUG_PORT),
                pci_hotplug::PORT_COUNT,
            )
            .map_err(|e| EngineError::Devices(DeviceError::Place(e)))?;

        let supported = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(EngineError::GetSupportedCpuid)?;
        let ctx = Arc::new(RunContext {
            lifecycle: lifecycle.clone(),
            cpus: cpus.clone(),
            io_bus: devices.io_bus,
            mmio_bus: devices.mmio_bus,
            mem: mem.clone(),
        });
        let mut vcpus = VcpuSet::new(vm_fd.clone(), supported, spec.max_vcpus, ctx.clone());
        for index in 0..spec.vcpus {
            let start = if index == 0 {
                VcpuStart::Boot { entry: boot.entry }
            } else {
                VcpuStart::Parked
            };
            vcpus.create_boot(index, start).map_err(EngineError::Vcpu)?;
        }

        let shared = Arc::new(Shared {
            lifecycle,
            serial: devices.serial,
            ged: devices.ged,
            cpus,
            vcpus: Mutex::new(Some(vcpus)),
            mem: Mutex::new(Some(mem)),
            memory_bytes: spec.memory_bytes,
            pci,
            pci_hotplug,
            final_disks: Mutex::new(Vec::new()),
            nics,
            balloon,
            caps: Arc::new(vcpu_caps(&kvm, &vm_fd)),
        });
        Ok(Vm {
            name: spec.name.clone(),
            shared,
            ctx,
            started: false,
            close_at_exit: false,
            ended_for_good: false,
            vm_fd: Some(vm_fd),
            _kvm: kvm,
        })
    }

    /// Starts the vCPU threads; returns once vCPU 0 has entered the guest.
    pub fn start(&mut self) -> Result<(), EngineError> {
        if self.started {
            return Err(EngineError::AlreadyStarted(self.name.clone()));
        }
        kick::install_kick_handler().map_err(EngineError::InstallKickHandler)?;
        self.started = true;
        let started = lock(&self.shared.vcpus)
            .as_mut()
            .map_or(Ok(()), VcpuSet::start_idle);
        if let Err(err) = started {
            self.ctx.lifecycle.request_exit(VmExit::Crashed(format!(
                "cannot start the vCPU threads: {err}"
            )));
            return Err(EngineError::Vcpu(err));
        }
        if self.ctx.lifecycle.wait_entered(0) {
            return Ok(());
        }
        let reason = match self.ctx.lifecycle.exit() {
            Some(VmExit::Crashed(reason)) => reason,
            Some(other) => format!("{other:?}"),
            None => "vCPU 0 ended".to_owned(),
        };
        Err(EngineError::Start {
            name: self.name.clone(),
            reason,
        })
    }

    /// A control handle usable from any thread.
    pub fn handle(&self) -> VmHandle {
        VmHandle {
            shared: self.shared.clone(),
        }
    }

    /// Blocks until this boot ends, joins every vCPU thread and says why it ended. A VM that
    /// was never started ends at once ([`VmExit::Destroyed`] if a handle destroyed it).
    pub fn wait(mut self) -> VmExit {
        if !self.started {
            self.ctx.lifecycle.request_exit(VmExit::Crashed(format!(
                "VM {} was never started",
                self.name
            )));
        }
        let exit = self.ctx.lifecycle.wait_exit();
        self.join_threads();
        self.ended_for_good = exit != VmExit::Reset;
        exit
    }

    /// For a process that exits when this VM ends (`vmux run`): once a boot ends for good (not
    /// a reset), the VM's file descriptor is left open for the process exit to close instead of
    /// being closed when the `Vm` is dropped.
    ///
    /// Why: KVM tears a VM down when its last descriptor closes. Closed from a live process, the
    /// teardown also deletes KVM's private memory slots (TSS, identity map, APIC access page),
    /// each waiting for an SRCU grace period with the irqchip in place: that `close` took 9-21
    /// ms on the development machine. Closed by the exit, after the address space is gone, KVM skips that
    /// step (QEMU never closes its VM descriptor, for the same effect). The descriptor stays
    /// open at most until the process exits, once per process: call this only where the
    /// process ends with the VM.
    pub fn close_at_process_exit(&mut self) {
        self.close_at_exit = true;
    }

    /// Joins every vCPU thread and drops the vCPUs (taking them from the shared state first,
    /// so a hot-add that raced with the end has finished).
    fn join_threads(&mut self) {
        let vcpus = lock(&self.shared.vcpus).take();
        if let Some(mut vcpus) = vcpus {
            vcpus.join_all();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let running = lock(&self.shared.vcpus)
            .as_ref()
            .is_some_and(VcpuSet::has_threads);
        if running {
            self.ctx.lifecycle.request_exit(VmExit::Destroyed);
        }
        self.join_threads();
        // After the vCPUs: no guest access can reach a device any more.
        if let Some(pci) = lock(&self.shared.pci).take() {
            *lock(&self.shared.final_disks) = pci.disk_counters();
        }
        lock(&self.shared.mem).take();
        if self.close_at_exit
            && self.ended_for_good
            && let Some(vm_fd) = self.vm_fd.take()
        {
            // Deliberately never closed here: the process exit closes it (see
            // `close_at_process_exit`).
            std::mem::forget(vm_fd);
        }
    }
}

impl VmHandle {
    /// Stops every vCPU (kick with `immediate_exit` + signal) and returns once all are parked.
    pub fn pause(&self) -> Result<(), EngineError> {
        Ok(self.shared.lifecycle.pause()?)
    }

    /// Lets paused vCPUs run again.
    pub fn resume(&self) -> Result<(), EngineError> {
        Ok(self.shared.lifecycle.resume()?)
    }

    /// Whether the VM is paused.
    pub fn is_paused(&self) -> bool {
        self.shared.lifecycle.is_paused()
    }

    /// Presses the ACPI power button (GED event + interrupt).
    pub fn power_button(&self) {
        if let Err(err) = lock(&self.shared.ged).power_button() {
            log::warn!("cannot raise the power-button interrupt: {err}");
        }
    }

    /// Ends this boot with [`VmExit::Reset`].
    pub fn reset(&self) {
        self.shared.lifecycle.request_exit(VmExit::Reset);
    }

    /// Ends this boot with [`VmExit::Destroyed`].
    pub fn destroy(&self) {
        self.shared.lifecycle.request_exit(VmExit::Destroyed);
    }

    /// Queues bytes for the guest's COM1 receiver (interrupt-driven); never blocks, drops
    /// beyond an internal bound (64 KiB) and says how many were accepted.
    pub fn serial_input(&self, bytes: &[u8]) -> usize {
        lock(&self.shared.serial).queue_input(bytes)
    }

    /// vCPUs online now: those present at boot and those hot-added that the guest has started
    /// (INIT/SIPI), less those the guest has ejected.
    pub fn vcpu_count(&self) -> u32 {
        self.shared.cpus.online_count()
    }

    /// Most vCPUs this boot can run (`max_vcpus`).
    pub fn max_vcpus(&self) -> u32 {
        self.shared.cpus.max_vcpus()
    }

    /// Hot-adds or removes vCPUs so that `count` are plugged (`1..=max_vcpus`). Added vCPUs are
    /// created parked, and the guest is notified through the GED; it starts them with
    /// INIT/SIPI (then [`VmHandle::vcpu_count`] counts them). Removed vCPUs are only marked:
    /// the guest is asked to eject them and their threads end when it does. Returns once the
    /// guest has been notified, without waiting for it.
    pub fn set_vcpus(&self, count: u32) -> Result<(), EngineError> {
        let mut vcpus = lock(&self.shared.vcpus);
        let Some(set) = vcpus.as_mut() else {
            return Err(HotplugError::NotRunning.into());
        };
        if self.shared.lifecycle.exit().is_some() {
            return Err(HotplugError::NotRunning.into());
        }
        let plan = hotplug::resize(set, &self.shared.cpus, count)?;
        log::info!(
            "vCPU hotplug to {count}: adding {:?}, removing {:?}, keeping {:?}",
            plan.add,
            plan.remove,
            plan.kept
        );
        Ok(())
    }

    /// Tells `observer` about hotplug facts from now on (online vCPU count changes, ejected
    /// disks). Called on vCPU threads with no engine lock held.
    pub fn set_observer(&self, observer: Arc<dyn VmObserver>) {
        self.shared.cpus.set_observer(observer.clone());
        self.shared.pci_hotplug.set_observer(observer);
    }

    /// Hot-adds `disk` as a virtio-blk function in the lowest free PCI slot and notifies the
    /// guest through the GED; returns the slot. The guest scans the slot and drives the disk
    /// on its own.
    pub fn attach_disk(&self, disk: &DiskSpec) -> Result<u8, EngineError> {
        if self.shared.lifecycle.exit().is_some() {
            return Err(HotplugError::NotRunning.into());
        }
        let slot = self.shared.pci_hotplug.attach(disk)?;
        log::info!("disk {} plugged into PCI slot {slot}", disk.path.display());
        Ok(slot)
    }

    /// Asks the guest to eject the disk in PCI `slot`. Returns once the guest is notified;
    /// when the guest ejects it, the disk leaves the bus, its image is closed and the observer
    /// hears `disk_removed`.
    pub fn detach_disk(&self, slot: u8) -> Result<(), EngineError> {
        if self.shared.lifecycle.exit().is_some() {
            return Err(HotplugError::NotRunning.into());
        }
        self.shared.pci_hotplug.request_removal(slot)?;
        Ok(())
    }

    /// Asks the guest to give back `bytes` of its memory through the balloon (rounded down to
    /// 4 KiB pages; 0 gives everything back). The guest's driver does it when it can.
    pub fn set_balloon_target(&self, bytes: u64) -> Result<(), EngineError> {
        let balloon = self.shared.balloon.as_ref().ok_or(EngineError::NoBalloon)?;
        if bytes >= self.shared.memory_bytes {
            return Err(EngineError::BalloonTarget {
                memory_mib: self.shared.memory_bytes >> 20,
            });
        }
        balloon.set_target(bytes);
        Ok(())
    }

    /// The balloon's target, actual size, released bytes and the guest's statistics; `None`
    /// without a balloon.
    pub fn balloon(&self) -> Option<BalloonInfo> {
        self.shared.balloon.as_ref().map(Balloon::info)
    }

    /// Removes the disk in PCI `slot` at once, without asking the guest (see
    /// `PciHotplug::force_remove`); the observer hears `disk_removed` before this returns.
    pub fn force_detach_disk(&self, slot: u8) -> Result<(), EngineError> {
        if self.shared.lifecycle.exit().is_some() {
            return Err(HotplugError::NotRunning.into());
        }
        self.shared.pci_hotplug.force_remove(slot)?;
        Ok(())
    }

    /// PCI slots holding disks, ascending (boot disks first); empty once the boot has ended.
    pub fn disk_slots(&self) -> Vec<u8> {
        lock(&self.shared.pci)
            .as_ref()
            .map_or_else(Vec::new, PciPlatform::disk_slots)
    }

    /// Engine counters. Once the `Vm` is gone its memory is released and counts as untouched.
    pub fn stats(&self) -> EngineStats {
        let vcpus = self
            .shared
            .cpus
            .stats()
            .into_iter()
            .map(|(index, stats)| VcpuCounters {
                index,
                tid: stats.tid.load(Ordering::Relaxed),
                exits: stats.exits.load(Ordering::Relaxed),
            })
            .collect();
        // One lock at a time, each released before the next: a save holds `pci` while it
        // takes `mem`, so a guard of `mem` alive while `pci` is taken (as a temporary of one
        // struct expression would be) deadlocks with it. The memory is counted on a clone of
        // the map, outside the lock.
        let mem = lock(&self.shared.mem).clone();
        let memory_touched_bytes = mem.as_ref().map_or(0, memory::touched_bytes);
        drop(mem);
        let live_disks = lock(&self.shared.pci)
            .as_ref()
            .map(PciPlatform::disk_counters);
        let disks = live_disks.unwrap_or_else(|| lock(&self.shared.final_disks).clone());
        EngineStats {
            vcpus,
            memory_bytes: self.shared.memory_bytes,
            memory_touched_bytes,
            disks: disks.iter().map(|d| d.snapshot()).collect(),
            nics: self.shared.nics.iter().map(|n| n.snapshot()).collect(),
            balloon: self.balloon(),
        }
    }
}
