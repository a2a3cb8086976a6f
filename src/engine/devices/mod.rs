//! The VM's emulated devices and the buses that route guest accesses to them.
//!
//! [`LegacyDevices::create`] builds the fixed platform of `layout.rs`: COM1, the i8042 reset
//! line, the ACPI power-management and GED registers and the debug-exit port, each on its
//! ports, with the interrupt lines wired to KVM's in-kernel IOAPIC through irqfds. Later device
//! classes (PCI, virtio) plug into the same buses.

pub mod acpi_pm;
pub mod bus;
pub mod debug_exit;
pub mod ged;
pub mod i8042;
pub mod serial;

use super::SerialSink;
use super::layout;
use super::lifecycle::Lifecycle;
use bus::{Bus, BusError};
use kvm_ioctls::VmFd;
use std::sync::{Arc, Mutex};
use vmm_sys_util::eventfd::EventFd;

/// Errors building the devices.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// An eventfd for an interrupt line could not be created.
    #[error("cannot create an interrupt eventfd")]
    CreateEventFd(#[source] std::io::Error),
    /// KVM refused an irqfd.
    #[error("cannot connect an interrupt to GSI {gsi}")]
    RegisterIrqfd {
        /// The interrupt line.
        gsi: u32,
        /// What KVM reported.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Two devices claim the same addresses (a layout bug).
    #[error("cannot place a device on the bus")]
    Place(#[source] BusError),
}

/// The fixed devices of every VM, and the buses they sit on.
pub struct LegacyDevices {
    /// Port I/O bus with every device below.
    pub io_bus: Bus,
    /// MMIO bus (empty for now: the APICs are in the kernel).
    pub mmio_bus: Bus,
    /// COM1, also reached by `VmHandle::serial_input`.
    pub serial: Arc<Mutex<serial::Serial>>,
    /// The GED, also reached by `VmHandle::power_button`.
    pub ged: Arc<Mutex<ged::Ged>>,
}

/// An eventfd registered as irqfd on `gsi`; the returned copy raises the line.
fn irq_line(vm: &VmFd, gsi: u32) -> Result<EventFd, DeviceError> {
    let fd = EventFd::new(libc::EFD_NONBLOCK).map_err(DeviceError::CreateEventFd)?;
    vm.register_irqfd(&fd, gsi)
        .map_err(|source| DeviceError::RegisterIrqfd { gsi, source })?;
    Ok(fd)
}

impl LegacyDevices {
    /// Builds the devices on `vm` (which must already have its irqchip), ending the boot
    /// through `lifecycle` and sending serial output to `sink`.
    pub fn create(
        vm: &VmFd,
        lifecycle: &Arc<Lifecycle>,
        sink: Arc<dyn SerialSink>,
    ) -> Result<LegacyDevices, DeviceError> {
        let serial = Arc::new(Mutex::new(serial::Serial::new(
            irq_line(vm, layout::COM1_GSI)?,
            sink,
        )));
        let ged = Arc::new(Mutex::new(ged::Ged::new(irq_line(vm, layout::GED_GSI)?)));
        let mut io_bus = Bus::new();
        let mut place = |device: bus::SharedDevice, port: u16, len: u64| {
            io_bus
                .insert(device, u64::from(port), len)
                .map_err(DeviceError::Place)
        };
        place(serial.clone(), layout::COM1_PORT, serial::REGISTER_COUNT)?;
        place(
            Arc::new(Mutex::new(i8042::I8042::new(lifecycle.clone()))),
            layout::I8042_DATA_PORT,
            i8042::PORT_COUNT,
        )?;
        place(
            Arc::new(Mutex::new(acpi_pm::AcpiPm::new(lifecycle.clone()))),
            layout::ACPI_SLEEP_CONTROL_PORT,
            acpi_pm::PORT_COUNT,
        )?;
        place(ged.clone(), layout::GED_PORT, ged::PORT_COUNT)?;
        place(
            Arc::new(Mutex::new(debug_exit::DebugExit::new(lifecycle.clone()))),
            layout::DEBUG_EXIT_PORT,
            debug_exit::PORT_COUNT,
        )?;
        Ok(LegacyDevices {
            io_bus,
            mmio_bus: Bus::new(),
            serial,
            ged,
        })
    }
}
