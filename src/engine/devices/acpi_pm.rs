//! The ACPI hardware-reduced power-management registers the FADT points at: sleep control
//! (port 0x600), sleep status (0x601) and the reset register (0x602).
//!
//! Writing SLP_EN with SLP_TYP = 5 (S5, as the DSDT's `_S5_` says) powers the VM off; writing
//! the reset value to the reset register resets it. No other sleep state exists, so other
//! sleep-type writes are ignored and the status register always reads 0 (never woken).

use super::bus::BusDevice;
use crate::engine::VmExit;
use crate::engine::layout;
use crate::engine::lifecycle::Lifecycle;
use std::sync::Arc;

/// Ports the device spans (control, status, reset).
pub const PORT_COUNT: u64 = 3;
const SLEEP_CONTROL_OFFSET: u64 = 0;
const RESET_OFFSET: u64 = (layout::ACPI_RESET_PORT - layout::ACPI_SLEEP_CONTROL_PORT) as u64;
/// Sleep control bit 5: enter the sleep state in SLP_TYP.
const SLP_EN: u8 = 1 << 5;
/// Sleep control bits 2..4: the sleep type.
const SLP_TYP_SHIFT: u8 = 2;
const SLP_TYP_MASK: u8 = 0x7;

/// The power-management register block.
pub struct AcpiPm {
    lifecycle: Arc<Lifecycle>,
}

impl AcpiPm {
    /// A register block that powers off or resets through `lifecycle`.
    pub fn new(lifecycle: Arc<Lifecycle>) -> AcpiPm {
        AcpiPm { lifecycle }
    }
}

impl BusDevice for AcpiPm {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&value) = data.first() else {
            return;
        };
        match offset {
            SLEEP_CONTROL_OFFSET => {
                let sleep_type = (value >> SLP_TYP_SHIFT) & SLP_TYP_MASK;
                if value & SLP_EN != 0 && sleep_type == layout::ACPI_S5_SLP_TYP {
                    self.lifecycle.request_exit(VmExit::PowerOff);
                }
            }
            RESET_OFFSET if value == layout::ACPI_RESET_VALUE => {
                self.lifecycle.request_exit(VmExit::Reset);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> (AcpiPm, Arc<Lifecycle>) {
        let lifecycle = Arc::new(Lifecycle::new());
        (AcpiPm::new(lifecycle.clone()), lifecycle)
    }

    #[test]
    fn s5_with_slp_en_powers_off() {
        let (mut pm, lifecycle) = device();
        pm.write(0, &[0x34]);
        assert_eq!(lifecycle.exit(), Some(VmExit::PowerOff));
    }

    #[test]
    fn s5_without_slp_en_is_ignored() {
        let (mut pm, lifecycle) = device();
        pm.write(0, &[5 << 2]);
        assert_eq!(lifecycle.exit(), None);
    }

    #[test]
    fn other_sleep_types_are_ignored() {
        let (mut pm, lifecycle) = device();
        pm.write(0, &[(3 << 2) | SLP_EN]);
        assert_eq!(lifecycle.exit(), None);
    }

    #[test]
    fn reset_value_resets() {
        let (mut pm, lifecycle) = device();
        pm.write(2, &[1]);
        assert_eq!(lifecycle.exit(), Some(VmExit::Reset));
    }

    #[test]
    fn empty_write_is_ignored() {
        let (mut pm, lifecycle) = device();
        pm.write(0, &[]);
        assert_eq!(lifecycle.exit(), None);
    }
}
