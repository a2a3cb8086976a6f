//! The seam between vmd and the engine: object-safe traits over [`engine::Vm`] and
//! [`engine::VmHandle`], so the control server and boot loop can be exercised with a fake
//! machine in unit tests, and the definition → [`VmSpec`] mapping (the demo definition boots
//! the guest embedded in the binary).
//!
//! [`KvmEngine`] is the only production implementation; it forwards to the engine facade and
//! adds nothing.

use std::sync::Arc;

use super::image_boot::ImageBoot;
use crate::config::{BootConfig, VmConfig};
use crate::engine::snapshot::SaveFile;
use crate::engine::{
    self, BalloonInfo, BootSpec, DiskSpec, EngineStats, SaveReport, SerialSink, VmExit, VmObserver,
    VmSpec,
};

/// An engine failure, boxed so fakes can supply their own error types.
pub type MachineError = Box<dyn std::error::Error + Send + Sync>;

/// Builds machines (one per boot).
pub trait Engine: Send + Sync {
    /// Builds a VM from `spec` without running it; its serial output goes to `serial`.
    fn create(
        &self,
        spec: &VmSpec,
        serial: Arc<dyn SerialSink>,
    ) -> Result<Box<dyn Machine>, MachineError>;
    /// Builds the VM saved in `file` over `spec`'s disks (in the save's order) and NICs,
    /// without running it.
    fn restore(
        &self,
        spec: &VmSpec,
        serial: Arc<dyn SerialSink>,
        file: &mut SaveFile,
    ) -> Result<Box<dyn Machine>, MachineError>;
}

/// One boot of one VM, owned by the boot loop.
pub trait Machine: Send {
    /// Starts the vCPUs; returns once the guest runs.
    fn start(&mut self) -> Result<(), MachineError>;
    /// A control handle for other threads.
    fn control(&self) -> Arc<dyn MachineControl>;
    /// Blocks until this boot ends.
    fn wait(self: Box<Self>) -> VmExit;
}

/// Thread-safe control of a running [`Machine`] (mirrors [`engine::VmHandle`]).
pub trait MachineControl: Send + Sync {
    /// Stops every vCPU; returns once all are parked.
    fn pause(&self) -> Result<(), MachineError>;
    /// Lets paused vCPUs run again.
    fn resume(&self) -> Result<(), MachineError>;
    /// Presses the ACPI power button.
    fn power_button(&self);
    /// Ends this boot with [`VmExit::Reset`].
    fn reset(&self);
    /// Ends this boot with [`VmExit::Destroyed`].
    fn destroy(&self);
    /// Queues guest serial input; returns how many bytes were accepted.
    fn serial_input(&self, bytes: &[u8]) -> usize;
    /// vCPUs online now.
    fn vcpu_count(&self) -> u32;
    /// Hot-adds or removes vCPUs so that `count` are plugged; returns once the guest has been
    /// notified.
    fn set_vcpus(&self, count: u32) -> Result<(), MachineError>;
    /// Who hears hotplug facts (online vCPU count changes, ejected disks) from now on.
    fn set_observer(&self, observer: Arc<dyn VmObserver>);
    /// Hot-adds `disk` into a free PCI slot; returns the slot once the guest is notified.
    fn attach_disk(&self, disk: &DiskSpec) -> Result<u8, MachineError>;
    /// Asks the guest to eject the disk in PCI `slot`.
    fn detach_disk(&self, slot: u8) -> Result<(), MachineError>;
    /// Removes the disk in PCI `slot` without the guest's consent; the observer hears
    /// `disk_removed` before this returns.
    fn force_detach_disk(&self, slot: u8) -> Result<(), MachineError>;
    /// PCI slots holding disks, ascending.
    fn disk_slots(&self) -> Vec<u8>;
    /// Engine counters.
    fn stats(&self) -> EngineStats;
    /// Saves the VM to `path`; `owner` supplies the owner's record once the VM is quiesced.
    /// On success the VM stays stopped (destroy it); on failure it carries on.
    fn save(
        &self,
        path: &std::path::Path,
        owner: &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<SaveReport, MachineError>;
    /// Asks the guest to give back `bytes` through the balloon.
    fn set_balloon_target(&self, bytes: u64) -> Result<(), MachineError>;
    /// The balloon's state, `None` without one.
    fn balloon(&self) -> Option<BalloonInfo>;
}

/// The real engine ([`engine::Vm`] on `/dev/kvm`).
pub struct KvmEngine;

struct KvmMachine(engine::Vm);

impl Engine for KvmEngine {
    fn create(
        &self,
        spec: &VmSpec,
        serial: Arc<dyn SerialSink>,
    ) -> Result<Box<dyn Machine>, MachineError> {
        Ok(Box::new(KvmMachine(engine::Vm::create(spec, serial)?)))
    }

    fn restore(
        &self,
        spec: &VmSpec,
        serial: Arc<dyn SerialSink>,
        file: &mut SaveFile,
    ) -> Result<Box<dyn Machine>, MachineError> {
        Ok(Box::new(KvmMachine(engine::Vm::restore(
            spec, serial, file,
        )?)))
    }
}

impl Machine for KvmMachine {
    fn start(&mut self) -> Result<(), MachineError> {
        Ok(self.0.start()?)
    }

    fn control(&self) -> Arc<dyn MachineControl> {
        Arc::new(self.0.handle())
    }

    fn wait(self: Box<Self>) -> VmExit {
        self.0.wait()
    }
}

impl MachineControl for engine::VmHandle {
    fn pause(&self) -> Result<(), MachineError> {
        Ok(engine::VmHandle::pause(self)?)
    }

    fn resume(&self) -> Result<(), MachineError> {
        Ok(engine::VmHandle::resume(self)?)
    }

    fn power_button(&self) {
        engine::VmHandle::power_button(self);
    }

    fn reset(&self) {
        engine::VmHandle::reset(self);
    }

    fn destroy(&self) {
        engine::VmHandle::destroy(self);
    }

    fn serial_input(&self, bytes: &[u8]) -> usize {
        engine::VmHandle::serial_input(self, bytes)
    }

    fn vcpu_count(&self) -> u32 {
        engine::VmHandle::vcpu_count(self)
    }

    fn set_vcpus(&self, count: u32) -> Result<(), MachineError> {
        Ok(engine::VmHandle::set_vcpus(self, count)?)
    }

    fn set_observer(&self, observer: Arc<dyn VmObserver>) {
        engine::VmHandle::set_observer(self, observer);
    }

    fn attach_disk(&self, disk: &DiskSpec) -> Result<u8, MachineError> {
        Ok(engine::VmHandle::attach_disk(self, disk)?)
    }

    fn detach_disk(&self, slot: u8) -> Result<(), MachineError> {
        Ok(engine::VmHandle::detach_disk(self, slot)?)
    }

    fn force_detach_disk(&self, slot: u8) -> Result<(), MachineError> {
        Ok(engine::VmHandle::force_detach_disk(self, slot)?)
    }

    fn disk_slots(&self) -> Vec<u8> {
        engine::VmHandle::disk_slots(self)
    }

    fn stats(&self) -> EngineStats {
        engine::VmHandle::stats(self)
    }

    fn save(
        &self,
        path: &std::path::Path,
        owner: &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<SaveReport, MachineError> {
        Ok(engine::VmHandle::save(self, path, owner)?)
    }

    fn set_balloon_target(&self, bytes: u64) -> Result<(), MachineError> {
        Ok(engine::VmHandle::set_balloon_target(self, bytes)?)
    }

    fn balloon(&self) -> Option<BalloonInfo> {
        engine::VmHandle::balloon(self)
    }
}

/// Maps a definition to the engine's [`VmSpec`].
pub fn vm_spec(config: &VmConfig) -> VmSpec {
    let boot = match &config.boot {
        BootConfig::Kernel {
            kernel,
            initrd,
            cmdline,
        } => BootSpec::Kernel {
            kernel: kernel.clone(),
            initrd: initrd.clone(),
            cmdline: cmdline.clone(),
        },
        BootConfig::Demo => BootSpec::Image {
            elf: Arc::from(crate::assets::demo_guest()),
            cmdline: String::new(),
        },
        // Replaced before every boot by what the image's /boot holds then
        // (`Supervisor::prepare_boot`); an empty kernel is refused by the loader.
        BootConfig::Image { .. } => BootSpec::Loaded {
            name: "the kernel of disk vda (read from its image before each boot)".into(),
            kernel: Arc::new(Vec::new()),
            initrd: None,
            cmdline: String::new(),
        },
    };
    VmSpec {
        name: config.name.clone(),
        vcpus: config.vcpus,
        max_vcpus: config.max_vcpus,
        memory_bytes: config.memory,
        boot,
        disks: Vec::new(),
        nics: Vec::new(),
        balloon: config.balloon,
    }
}

/// How the VM boots from its disk image, for VMs defined with `--image`.
pub fn image_boot(config: &VmConfig) -> Option<ImageBoot> {
    match &config.boot {
        BootConfig::Image { cmdline_extra } => Some(ImageBoot {
            cmdline_extra: cmdline_extra.clone(),
        }),
        BootConfig::Demo | BootConfig::Kernel { .. } => None,
    }
}

/// The balloon target that leaves a guest of `config` with its `current_memory` (0: none).
pub fn initial_balloon_target(config: &VmConfig) -> u64 {
    config
        .current_memory
        .map_or(0, |current| config.memory.saturating_sub(current))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_kernel_definition_maps_every_field() {
        let mut config = VmConfig::new(
            "web1",
            BootConfig::Kernel {
                kernel: "/boot/vmlinuz".into(),
                initrd: Some("/boot/initrd".into()),
                cmdline: "console=ttyS0".into(),
            },
        );
        config.vcpus = 2;
        config.max_vcpus = 6;
        config.memory = 512 << 20;
        let spec = vm_spec(&config);
        assert_eq!(spec.name, "web1");
        assert_eq!((spec.vcpus, spec.max_vcpus), (2, 6));
        assert_eq!(spec.memory_bytes, 512 << 20);
        assert_eq!(
            spec.boot,
            BootSpec::Kernel {
                kernel: PathBuf::from("/boot/vmlinuz"),
                initrd: Some(PathBuf::from("/boot/initrd")),
                cmdline: "console=ttyS0".into(),
            }
        );
    }

    #[test]
    fn the_demo_definition_boots_the_embedded_guest() {
        let spec = vm_spec(&VmConfig::new("demo", BootConfig::Demo));
        let BootSpec::Image { elf, .. } = spec.boot else {
            panic!("the demo boots an in-memory image");
        };
        assert_eq!(&elf[..], crate::assets::demo_guest());
    }
}
