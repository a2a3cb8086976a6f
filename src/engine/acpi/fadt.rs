//! The FADT (`FACP`): a hardware-reduced ACPI 6.5 platform with a reset register and the
//! sleep control/status registers vmux's power device decodes (`layout::ACPI_*_PORT`).
//!
//! Hardware-reduced means no PM1 event/control blocks, no PM timer, no GPEs and no SCI: every
//! event reaches the guest through the GED in the DSDT. No FACS either (not needed without
//! the fixed hardware).

use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use vm_memory::GuestAddress;

use super::aml_util::encode;
use super::{OEM_ID, OEM_REVISION, oem_table_id};
use crate::engine::layout;

/// IA-PC boot architecture flag: no VGA hardware, so the OS must not probe for it.
const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
/// IA-PC boot architecture flag: no CMOS RTC at ports 0x70/0x71.
const IAPC_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;
// Left clear on purpose: LEGACY_DEVICES (bit 0: no ISA devices beyond those in the DSDT are
// to be probed), 8042 (bit 1: vmux's i8042 only implements reset, so Linux must not bind a
// keyboard driver to it) and MSI_NOT_SUPPORTED (bit 3: virtio-pci needs MSI-X).

/// "Hypervisor vendor identity" (ACPI 6.0+), eight bytes read as a little-endian u64.
const HYPERVISOR_VENDOR: [u8; 8] = *b"VMUX\0\0\0\0";

/// The encoded FADT pointing (64-bit `X_DSDT` only) at the DSDT at `dsdt`.
pub(super) fn build(dsdt: GuestAddress) -> Vec<u8> {
    let mut fadt = FADTBuilder::new(OEM_ID, oem_table_id(b"FACP"), OEM_REVISION)
        .dsdt_64(dsdt.0)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup)
        // Power and sleep "buttons" are control-method devices (the DSDT's PWRB), not
        // fixed-feature hardware.
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton);
    fadt.iapc_boot_arch = (IAPC_VGA_NOT_PRESENT | IAPC_CMOS_RTC_NOT_PRESENT).into();
    fadt.reset_reg = io_register_u8(layout::ACPI_RESET_PORT);
    fadt.reset_value = layout::ACPI_RESET_VALUE;
    fadt.sleep_control_reg = io_register_u8(layout::ACPI_SLEEP_CONTROL_PORT);
    fadt.sleep_status_reg = io_register_u8(layout::ACPI_SLEEP_STATUS_PORT);
    fadt.hypervisor_vendor_identity = u64::from_le_bytes(HYPERVISOR_VENDOR).into();
    encode(&fadt.finalize())
}

/// A one-byte register in I/O port space.
fn io_register_u8(port: u16) -> GAS {
    GAS::new(
        AddressSpace::SystemIo,
        8,
        0,
        AccessSize::ByteAccess,
        u64::from(port),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Field offsets from the ACPI 6.5 FADT layout (table 5.9).
    const IAPC_BOOT_ARCH: usize = 109;
    const FLAGS: usize = 112;
    const RESET_REG: usize = 116;
    const RESET_VALUE: usize = 128;
    const MINOR_VERSION: usize = 131;
    const X_DSDT: usize = 140;
    const SLEEP_CONTROL_REG: usize = 244;
    const SLEEP_STATUS_REG: usize = 256;
    const HYPERVISOR_VENDOR_IDENTITY: usize = 268;
    const HW_REDUCED_ACPI: u32 = 1 << 20;
    const RESET_REG_SUP: u32 = 1 << 10;

    fn fadt() -> Vec<u8> {
        build(GuestAddress(0xe_1000))
    }

    /// (address space, bit width, bit offset, access size, address) of a GAS at `offset`.
    fn gas_at(bytes: &[u8], offset: usize) -> (u8, u8, u8, u8, u64) {
        let address = u64::from_le_bytes(bytes[offset + 4..offset + 12].try_into().unwrap());
        (
            bytes[offset],
            bytes[offset + 1],
            bytes[offset + 2],
            bytes[offset + 3],
            address,
        )
    }

    #[test]
    fn fadt_is_hardware_reduced_with_reset_register_support() {
        let fadt = fadt();

        let flags = u32::from_le_bytes(fadt[FLAGS..FLAGS + 4].try_into().unwrap());

        assert_eq!(flags & HW_REDUCED_ACPI, HW_REDUCED_ACPI);
        assert_eq!(flags & RESET_REG_SUP, RESET_REG_SUP);
    }

    #[test]
    fn fadt_is_revision_six() {
        let fadt = fadt();

        assert_eq!(&fadt[..4], b"FACP");
        assert_eq!(fadt[8], 6, "major revision");
        assert!(fadt[MINOR_VERSION] <= 5, "minor revision");
        assert_eq!(fadt.len(), 276);
    }

    #[test]
    fn reset_register_is_io_port_0x602_writing_one() {
        let fadt = fadt();

        assert_eq!(gas_at(&fadt, RESET_REG), (1, 8, 0, 1, 0x602));
        assert_eq!(fadt[RESET_VALUE], 0x01);
    }

    #[test]
    fn sleep_registers_are_io_ports_0x600_and_0x601() {
        let fadt = fadt();

        assert_eq!(gas_at(&fadt, SLEEP_CONTROL_REG), (1, 8, 0, 1, 0x600));
        assert_eq!(gas_at(&fadt, SLEEP_STATUS_REG), (1, 8, 0, 1, 0x601));
    }

    #[test]
    fn dsdt_is_given_as_a_64_bit_address_only() {
        let fadt = fadt();

        assert_eq!(&fadt[40..44], &[0; 4], "32-bit DSDT");
        assert_eq!(
            u64::from_le_bytes(fadt[X_DSDT..X_DSDT + 8].try_into().unwrap()),
            0xe_1000
        );
    }

    #[test]
    fn boot_flags_say_no_vga_and_no_rtc_but_allow_msi() {
        let fadt = fadt();

        let boot = u16::from_le_bytes(fadt[IAPC_BOOT_ARCH..IAPC_BOOT_ARCH + 2].try_into().unwrap());

        assert_eq!(boot, IAPC_VGA_NOT_PRESENT | IAPC_CMOS_RTC_NOT_PRESENT);
    }

    #[test]
    fn hypervisor_vendor_is_vmux() {
        let fadt = fadt();

        assert_eq!(
            &fadt[HYPERVISOR_VENDOR_IDENTITY..HYPERVISOR_VENDOR_IDENTITY + 8],
            b"VMUX\0\0\0\0"
        );
    }
}
