//! [`Vm::restore`]: building a VM from a save file, ready to [`start`](Vm::start) where the
//! saved guest stopped.
//!
//! The order is [`Vm::create`]'s, with the saved state poured in at each step and nothing
//! loaded from a boot image: the VM fd, guest RAM read from the file (every checksum verified
//! before anything else is restored), the in-kernel interrupt controllers and PIT, COM1 and the
//! GED, the CPU hotplug slots, the PCI functions in their saved slots over the disks and NICs
//! the caller opened, the vCPUs with their registers, MSRs and local APICs, then the devices'
//! state (which starts the ones that were running), and the KVM clock last, just before any
//! vCPU can run.

use std::sync::{Arc, Mutex};

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;

use super::{
    EngineError, Shared, Vm, add_memory_slots, create_interrupt_controllers, create_vm_fd,
    validate_vcpus, vcpu_caps,
};
use crate::engine::devices::bus::lock;
use crate::engine::devices::{DeviceError, LegacyDevices};
use crate::engine::hotplug::cpu::{self as cpu_hotplug, CpuHotplug};
use crate::engine::hotplug::pci::{self as pci_hotplug, PciHotplug};
use crate::engine::hotplug::vcpus::VcpuSet;
use crate::engine::kvm;
use crate::engine::layout;
use crate::engine::lifecycle::Lifecycle;
use crate::engine::memory;
use crate::engine::pci::{KvmVmInterface, PciPlatform};
use crate::engine::snapshot::{self, SaveFile};
use crate::engine::vcpu::RunContext;
use crate::engine::{SerialSink, VmSpec};

/// Why a save file cannot become a VM here (beyond a damaged file, `SaveFile`'s errors).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The file belongs to a VM of another shape than the spec.
    #[error("{0}")]
    Mismatch(String),
    /// The file could not be read or is damaged.
    #[error(transparent)]
    File(#[from] snapshot::SaveFileError),
    /// The in-kernel devices' state could not be restored.
    #[error("cannot restore the interrupt controllers, PIT or clock")]
    Platform(#[source] snapshot::PlatformStateError),
    /// A vCPU's state could not be restored (the message names the register or MSR).
    #[error("cannot restore the vCPUs")]
    Vcpu(#[source] snapshot::VcpuStateError),
    /// COM1's state could not be restored.
    #[error("cannot restore COM1")]
    Serial(#[source] crate::engine::devices::serial::SerialStateError),
}

impl Vm {
    /// Builds the VM saved in `file` over `spec`'s disks (in the order the save lists them)
    /// and NICs, without running it. `spec` must describe the same machine: memory size,
    /// `max_vcpus`; its boot image is not used.
    pub fn restore(
        spec: &VmSpec,
        serial: Arc<dyn SerialSink>,
        file: &mut SaveFile,
    ) -> Result<Vm, EngineError> {
        let mismatch = |message: String| EngineError::Restore(RestoreError::Mismatch(message));
        if file.header.memory_bytes != spec.memory_bytes {
            return Err(mismatch(format!(
                "the save holds a VM with {} MiB of memory but this VM has {} MiB: restore it \
                 into a VM defined with {} MiB",
                file.header.memory_bytes >> 20,
                spec.memory_bytes >> 20,
                file.header.memory_bytes >> 20
            )));
        }
        if file.header.max_vcpus != spec.max_vcpus {
            return Err(mismatch(format!(
                "the save holds a VM with max_vcpus {} but this VM has {}",
                file.header.max_vcpus, spec.max_vcpus
            )));
        }
        validate_vcpus(&VmSpec {
            vcpus: 1,
            ..spec.clone()
        })?;
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
        let reading = std::time::Instant::now();
        let totals = file
            .read_memory(&mem)
            .map_err(|e| EngineError::Restore(RestoreError::File(e)))?;
        log::info!(
            "read {} MiB of guest memory in {} records in {} ms",
            (totals.pages * snapshot::memory::PAGE) >> 20,
            totals.records,
            reading.elapsed().as_millis()
        );
        let state = &file.state;
        snapshot::restore_devices(&vm_fd, &state.platform)
            .map_err(|e| EngineError::Restore(RestoreError::Platform(e)))?;

        let lifecycle = Arc::new(Lifecycle::new());
        let mut devices =
            LegacyDevices::create(&vm_fd, &lifecycle, serial).map_err(EngineError::Devices)?;
        lock(&devices.serial)
            .restore_state(&state.serial)
            .map_err(|e| EngineError::Restore(RestoreError::Serial(e)))?;
        lock(&devices.ged).restore_state(&state.ged);
        let cpus = Arc::new(CpuHotplug::new(
            spec.max_vcpus,
            lifecycle.clone(),
            devices.ged.clone(),
        ));
        let plugged = cpus.restore_state(&state.cpu_hotplug).map_err(mismatch)?;
        devices
            .io_bus
            .insert(
                Arc::new(Mutex::new(cpu_hotplug::Registers(cpus.clone()))),
                u64::from(layout::CPU_HOTPLUG_PORT),
                cpu_hotplug::PORT_COUNT,
            )
            .map_err(|e| EngineError::Devices(DeviceError::Place(e)))?;
        let platform = PciPlatform::restore(
            Arc::new(KvmVmInterface::new(vm_fd.clone())),
            &mem,
            &spec.disks,
            &spec.nics,
            &state.pci,
            &mut devices.io_bus,
            &mut devices.mmio_bus,
        )
        .map_err(EngineError::Pci)?;
        let nics = platform.nic_counters();
        let balloon = platform.balloon();
        let pci = Arc::new(Mutex::new(Some(platform)));
        let pci_hotplug = Arc::new(PciHotplug::new(pci.clone(), devices.ged.clone()));
        pci_hotplug.restore_state(&state.pci_hotplug);
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
        let caps = Arc::new(vcpu_caps(&kvm, &vm_fd));
        let ctx = Arc::new(RunContext {
            lifecycle: lifecycle.clone(),
            cpus: cpus.clone(),
            io_bus: devices.io_bus,
            mmio_bus: devices.mmio_bus,
            mem: mem.clone(),
        });
        let mut vcpus = VcpuSet::new(vm_fd.clone(), supported, spec.max_vcpus, ctx.clone());
        for index in plugged {
            let saved = state
                .vcpus
                .iter()
                .find(|v| v.index == index)
                .ok_or_else(|| mismatch(format!("the save has no state for vCPU {index}")))?;
            vcpus.create_restored(index).map_err(EngineError::Vcpu)?;
            let fd = vcpus
                .vcpu_fd(index)
                .ok_or_else(|| mismatch(format!("vCPU {index} has a thread already")))?;
            snapshot::restore_vcpu(fd, saved, &caps)
                .map_err(|e| EngineError::Restore(RestoreError::Vcpu(e)))?;
        }
        if let Some(platform) = lock(&pci).as_ref() {
            platform
                .restore_states(&state.pci)
                .map_err(EngineError::Pci)?;
        }
        snapshot::restore_clock(&vm_fd, &state.platform)
            .map_err(|e| EngineError::Restore(RestoreError::Platform(e)))?;

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
            caps,
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
}
