//! The PCI root bridge `\_SB_.PCI0` and the motherboard resource device that reserves ECAM.
//!
//! The root bridge (`PNP0A08`, compatible `PNP0A03`) is segment 0, bus 0 (`_SEG`, `_BBN`);
//! its `_CRS` gives the OS the bus range 0..0, the configuration ports, the I/O windows on
//! either side of them, and the 32-bit MMIO window ([`layout::PCI_MMIO_START`],
//! [`layout::PCI_MMIO_SIZE`]) the engine allocates BARs from. The window is far larger than
//! boot-time devices need so hot-added devices fit without moving anything. No `_PRT`: vmux
//! devices interrupt through MSI-X only and report interrupt pin 0.
//!
//! Linux uses the ECAM region the MCFG describes only if firmware reserves it, in e820 or as
//! an ACPI motherboard resource; `\_SB_.MBRD` (`PNP0C02`) does the latter.

use acpi_tables::aml::{
    AddressSpace, AddressSpaceCacheable, Device, EISAName, IO, Memory32Fixed, Name, Path,
    ResourceTemplate, ZERO,
};

use super::aml_util::{Encoded, encoded};
use crate::engine::layout;

/// Ports the configuration mechanism #1 decodes (0xCF8..0xCFF).
const CONFIG_PORT_COUNT: u8 = 8;
/// Last port below the configuration ports, and first one above them.
const IO_WINDOW_LOW_END: u16 = layout::PCI_CONFIG_PORT - 1;
const IO_WINDOW_HIGH_START: u16 = layout::PCI_CONFIG_PORT + CONFIG_PORT_COUNT as u16;
/// The MMIO window as 32-bit bounds (inclusive), checked at compile time.
const MMIO_WINDOW_MIN: u32 = {
    assert!(layout::PCI_MMIO_START + layout::PCI_MMIO_SIZE <= 1 << 32);
    layout::PCI_MMIO_START as u32
};
const MMIO_WINDOW_MAX: u32 = (layout::PCI_MMIO_START + layout::PCI_MMIO_SIZE - 1) as u32;
const ECAM_START: u32 = {
    assert!(layout::PCI_ECAM_START + layout::PCI_ECAM_SIZE <= 1 << 32);
    layout::PCI_ECAM_START as u32
};

/// `Device (PCI0)`, to be placed in `\_SB_`.
pub(super) fn root_bridge() -> Encoded {
    let buses = AddressSpace::<u16>::new_bus_number(0, 0);
    let config_ports = IO::new(
        layout::PCI_CONFIG_PORT,
        layout::PCI_CONFIG_PORT,
        1,
        CONFIG_PORT_COUNT,
    );
    let io_low = AddressSpace::<u16>::new_io(0, IO_WINDOW_LOW_END, None);
    let io_high = AddressSpace::<u16>::new_io(IO_WINDOW_HIGH_START, u16::MAX, None);
    let mmio = AddressSpace::<u32>::new_memory(
        AddressSpaceCacheable::NotCacheable,
        true,
        MMIO_WINDOW_MIN,
        MMIO_WINDOW_MAX,
        None,
    );
    let resources = ResourceTemplate::new(vec![&buses, &config_ports, &io_low, &io_high, &mmio]);
    encoded(&Device::new(
        Path::new("PCI0"),
        vec![
            &Name::new(Path::new("_HID"), &EISAName::new("PNP0A08")),
            &Name::new(Path::new("_CID"), &EISAName::new("PNP0A03")),
            &Name::new(Path::new("_UID"), &ZERO),
            &Name::new(Path::new("_SEG"), &ZERO),
            &Name::new(Path::new("_BBN"), &ZERO),
            &Name::new(Path::new("_CRS"), &resources),
        ],
    ))
}

/// `Device (MBRD)`, to be placed in `\_SB_`: reserves the ECAM window.
pub(super) fn motherboard_resources() -> Encoded {
    let ecam = Memory32Fixed::new(true, ECAM_START, layout::PCI_ECAM_SIZE as u32);
    encoded(&Device::new(
        Path::new("MBRD"),
        vec![
            &Name::new(Path::new("_HID"), &EISAName::new("PNP0C02")),
            &Name::new(Path::new("_UID"), &ZERO),
            &Name::new(Path::new("_CRS"), &ResourceTemplate::new(vec![&ecam])),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::super::AcpiConfig;
    use super::super::dsdt;
    use super::super::iasl;

    const CFG: AcpiConfig = AcpiConfig {
        vcpus: 1,
        max_vcpus: 2,
    };

    /// The disassembled text of one device, from its `Device (NAME)` line to the next
    /// device or the end.
    fn device(dsl: &str, name: &str) -> String {
        let start = dsl
            .find(&format!("Device ({name})"))
            .unwrap_or_else(|| panic!("no Device ({name}) in:\n{dsl}"));
        let rest = &dsl[start + 1..];
        let end = rest.find("Device (").map_or(rest.len(), |e| e);
        rest[..end].to_owned()
    }

    #[test]
    fn root_bridge_is_a_pcie_host_bridge_on_segment_0_bus_0() {
        let dsl = iasl::disassemble(&dsdt::build(&CFG));

        let pci0 = device(&dsl, "PCI0");
        assert!(pci0.contains("EisaId (\"PNP0A08\")"), "{pci0}");
        assert!(pci0.contains("EisaId (\"PNP0A03\")"), "{pci0}");
        assert!(pci0.contains("Name (_SEG, Zero)"), "{pci0}");
        assert!(pci0.contains("Name (_BBN, Zero)"), "{pci0}");
    }

    #[test]
    fn root_bridge_resources_cover_bus_0_and_the_mmio_window() {
        let dsl = iasl::disassemble(&dsdt::build(&CFG));

        let pci0 = device(&dsl, "PCI0");
        let bus = &pci0[pci0.find("WordBusNumber").expect("bus range")..];
        assert!(
            bus.contains("0x0000,             // Range Minimum"),
            "{bus}"
        );
        assert!(
            bus.contains("0x0000,             // Range Maximum"),
            "{bus}"
        );
        let mmio = &pci0[pci0.find("DWordMemory").expect("MMIO window")..];
        assert!(
            mmio.contains("0xC0000000,         // Range Minimum"),
            "{mmio}"
        );
        assert!(
            mmio.contains("0xDFFFFFFF,         // Range Maximum"),
            "{mmio}"
        );
        assert!(
            pci0.contains("0x0CF8,             // Range Minimum"),
            "{pci0}"
        );
        assert_eq!(pci0.matches("WordIO").count(), 2, "{pci0}");
    }

    #[test]
    fn ecam_is_reserved_as_a_motherboard_resource() {
        let dsl = iasl::disassemble(&dsdt::build(&CFG));

        let mbrd = device(&dsl, "MBRD");
        assert!(mbrd.contains("EisaId (\"PNP0C02\")"), "{mbrd}");
        assert!(
            mbrd.contains("0xE0000000,         // Address Base"),
            "{mbrd}"
        );
        assert!(
            mbrd.contains("0x00100000,         // Address Length"),
            "{mbrd}"
        );
    }
}
