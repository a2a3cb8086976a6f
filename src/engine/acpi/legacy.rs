//! DSDT devices for vmux's fixed legacy hardware: COM1 and the ACPI power button.
//!
//! COM1 is described so the OS binds its 8250 driver from ACPI instead of probing ISA ports.
//! The power button has no registers of its own: the GED (`ged.rs`) notifies it when vmd asks
//! the guest to shut down, and the OS's button driver turns that into a power-off request.

use acpi_tables::aml::{Device, EISAName, IO, Name, Path, ResourceTemplate};
use acpi_tables::{Aml, AmlSink};

use super::aml_util::{Encoded, encoded};
use crate::engine::layout;

/// Absolute path of the power button device (the GED notifies it).
pub(super) const POWER_BUTTON_PATH: &str = "\\_SB_.PWRB";
/// Notify value "power button pressed" (ACPI 6.5 §5.6.6, device class button).
pub(super) const NOTIFY_BUTTON_PRESSED: u8 = 0x80;

/// Ports a 16550 UART decodes.
const UART_PORT_COUNT: u8 = 8;
/// ISA IRQ mask of COM1 for its IRQNoFlags descriptor (fails to compile if not an ISA IRQ).
const COM1_IRQ_MASK: u16 = 1 << layout::COM1_GSI;

/// `Device (COM1)`, to be placed in `\_SB_`: a PNP0501 16550 at 0x3f8, ISA IRQ 4.
pub(super) fn com1() -> Encoded {
    let ports = IO::new(layout::COM1_PORT, layout::COM1_PORT, 1, UART_PORT_COUNT);
    let irq = IrqNoFlags {
        mask: COM1_IRQ_MASK,
    };
    let resources = ResourceTemplate::new(vec![&ports, &irq]);
    encoded(&Device::new(
        Path::new("COM1"),
        vec![
            &Name::new(Path::new("_HID"), &EISAName::new("PNP0501")),
            &Name::new(Path::new("_UID"), &1u8),
            &Name::new(Path::new("_CRS"), &resources),
        ],
    ))
}

/// `Device (PWRB)`, to be placed in `\_SB_`: a control-method power button (PNP0C0C).
pub(super) fn power_button() -> Encoded {
    encoded(&Device::new(
        Path::new("PWRB"),
        vec![
            &Name::new(Path::new("_HID"), &EISAName::new("PNP0C0C")),
            &Name::new(Path::new("_UID"), &0u8),
        ],
    ))
}

/// The two-byte IRQ resource descriptor (`IRQNoFlags`): ISA IRQs in `mask`, edge-triggered,
/// active high, exclusive. The crate only offers the extended `Interrupt` descriptor; an ISA
/// UART is described with the classic ISA form, as real PC firmware does.
struct IrqNoFlags {
    mask: u16,
}

impl Aml for IrqNoFlags {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        // Small resource item: type 0x04 (IRQ) in bits 3..6, length 2 in bits 0..2.
        const IRQ_DESCRIPTOR_NO_FLAGS: u8 = (0x04 << 3) | 2;
        sink.byte(IRQ_DESCRIPTOR_NO_FLAGS);
        sink.word(self.mask);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irq_no_flags_descriptor_is_tag_0x22_and_the_mask() {
        let mut bytes = Vec::new();

        IrqNoFlags { mask: 1 << 4 }.to_aml_bytes(&mut bytes);

        assert_eq!(bytes, [0x22, 0x10, 0x00]);
    }
}
