//! The DSDT: the AML namespace of a vmux VM.
//!
//! ```text
//! \_S5_             Package {5, 0, 0, 0}: SLP_TYP for soft-off (the sleep control register)
//! \_SB_.COM1        16550 UART (legacy.rs)
//! \_SB_.PWRB        power button (legacy.rs)
//! \_SB_.GED_        event device: bit 1 scans CPUS, bit 2 scans PCI0's slots, bit 3
//!                   notifies PWRB (ged.rs)
//! \_SB_.CPUS        CPU hotplug registers and methods (CSCN, CSTA, CEJ0, CTFY) (cpus.rs)
//! \_SB_.CPUS.Cnnn   one processor per possible vCPU (cpus.rs)
//! \_SB_.PCI0        PCI root bridge, segment 0 bus 0, with 32 hotplug slots (pci.rs)
//! \_SB_.PHPR        PCI hotplug registers and the eject method (pci.rs)
//! \_SB_.MBRD        motherboard resources: the ECAM window (pci.rs)
//! ```
//! Parts are encoded by their own modules and concatenated here.

use acpi_tables::aml::{Name, Package, Path, Scope, ZERO};
use acpi_tables::sdt::Sdt;

use super::aml_util::{Encoded, encode, encoded};
use super::{AcpiConfig, OEM_ID, OEM_REVISION, cpus, ged, legacy, oem_table_id, pci};
use crate::engine::layout;

/// DSDT revision 2 and above means 64-bit AML integers.
const DSDT_REVISION: u8 = 6;
/// Length of a bare table header.
const HEADER_LEN: u32 = 36;

/// The encoded DSDT for `cfg`.
pub(super) fn build(cfg: &AcpiConfig) -> Vec<u8> {
    let ged_events = [
        ged::cpu_hotplug_event(),
        ged::pci_hotplug_event(),
        ged::power_button_event(),
    ];
    let devices = [
        legacy::com1(),
        legacy::power_button(),
        ged::device(&ged_events),
        cpus::container(cfg),
        pci::hotplug_controller(),
        pci::root_bridge(),
        pci::motherboard_resources(),
    ];
    let system_bus = Scope::new(
        Path::new("\\_SB_"),
        devices.iter().map(|d| d as &dyn acpi_tables::Aml).collect(),
    );

    let mut dsdt = Sdt::new(
        *b"DSDT",
        HEADER_LEN,
        DSDT_REVISION,
        OEM_ID,
        oem_table_id(b"DSDT"),
        OEM_REVISION,
    );
    let mut body = encode(&s5());
    body.extend(encode(&system_bus));
    dsdt.append_slice(&body);
    dsdt.as_slice().to_vec()
}

/// `Name (\_S5_, Package {SLP_TYP, 0, 0, 0})`: the value the OS writes into SLP_TYP of the
/// sleep control register to power off.
fn s5() -> Encoded {
    let slp_typ = layout::ACPI_S5_SLP_TYP;
    encoded(&Name::new(
        Path::new("\\_S5_"),
        &Package::new(vec![&slp_typ, &ZERO, &ZERO, &ZERO]),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::iasl;
    use super::*;

    const CFG: AcpiConfig = AcpiConfig {
        vcpus: 2,
        max_vcpus: 8,
    };

    #[test]
    fn dsdt_disassembles_and_names_every_device() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let dsl = iasl::disassemble(&build(&CFG));

        for needle in ["PNP0501", "PNP0C0C", "ACPI0013", "_EVT", "_S5_", "ACPI0007"] {
            assert!(dsl.contains(needle), "{needle} missing from:\n{dsl}");
        }
    }

    #[test]
    fn dsdt_disassembly_recompiles_without_errors() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let dsl = iasl::disassemble(&build(&CFG));

        let report = iasl::compile(&dsl);

        assert_eq!(report.errors, 0, "{}", report.output);
    }

    #[test]
    fn dsdt_has_one_processor_per_possible_vcpu() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let dsl = iasl::disassemble(&build(&CFG));

        assert_eq!(dsl.matches("\"ACPI0007\"").count(), 8, "{dsl}");
        assert!(dsl.contains("Device (C007)"), "{dsl}");
        assert!(!dsl.contains("Device (C008)"), "{dsl}");
    }

    #[test]
    fn ged_scans_the_cpus_on_bit_1() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let dsl = iasl::disassemble(&build(&CFG));

        assert!(dsl.contains("(Local0 & 0x02)"), "{dsl}");
        assert!(dsl.contains("\\_SB.CPUS.CSCN ()"), "{dsl}");
    }

    #[test]
    fn every_processor_reads_its_status_from_the_hotplug_registers() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let dsl = iasl::disassemble(&build(&CFG));

        assert!(
            dsl.contains("OperationRegion (PRST, SystemIO, 0x0620, 0x0C)"),
            "{dsl}"
        );
        assert_eq!(dsl.matches("Return (CSTA (").count(), 8, "{dsl}");
        assert_eq!(dsl.matches("Name (_MAT, Buffer").count(), 8, "{dsl}");
        for method in [
            "Method (CSCN, 0, Serialized)",
            "Method (CEJ0, 1, Serialized)",
        ] {
            assert!(dsl.contains(method), "{method} missing from:\n{dsl}");
        }
    }

    #[test]
    fn every_processor_but_the_first_can_be_ejected() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let dsl = iasl::disassemble(&build(&CFG));

        let cpus = &dsl[dsl.find("Device (CPUS)").expect("CPUS")..];
        let cpus = &cpus[..cpus.find("Device (PHPR)").expect("PHPR after CPUS")];
        assert_eq!(cpus.matches("Method (_EJ0, 1").count(), 7, "{cpus}");
        let c000 = &dsl[dsl.find("Device (C000)").expect("C000")..];
        let c000 = &c000[..c000.find("Device (C001)").expect("C001 after C000")];
        assert!(!c000.contains("_EJ0"), "{c000}");
    }

    #[test]
    fn dsdt_for_the_largest_vm_recompiles_without_errors() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let dsl = iasl::disassemble(&build(&AcpiConfig {
            vcpus: 1,
            max_vcpus: layout::MAX_VCPUS,
        }));

        let report = iasl::compile(&dsl);

        assert_eq!(report.errors, 0, "{}", report.output);
        assert!(dsl.contains("Device (C0FD)"));
    }

    #[test]
    fn ged_scans_the_pci_slots_on_bit_2() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let dsl = iasl::disassemble(&build(&CFG));

        assert!(dsl.contains("(Local0 & 0x04)"), "{dsl}");
        assert!(dsl.contains("\\_SB.PCI0.PCNT ()"), "{dsl}");
    }

    #[test]
    fn the_root_bridge_has_32_slots_and_all_but_the_first_eject() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let dsl = iasl::disassemble(&build(&CFG));

        let slots = (0..32)
            .filter(|s| dsl.contains(&format!("Device (S{s:03})")))
            .count();
        assert_eq!(slots, 32, "{dsl}");
        assert!(dsl.contains("Name (_ADR, 0x001F0000)"), "{dsl}");
        assert!(dsl.contains("Name (_SUN, 0x1F)"), "{dsl}");
        let ejects = dsl.matches("\\_SB.PHPR.PCEJ (_SUN, _SEG)").count();
        assert_eq!(ejects, 31, "{dsl}");
    }

    #[test]
    fn pci_hotplug_registers_are_at_0x640() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let dsl = iasl::disassemble(&build(&CFG));

        assert!(
            dsl.contains("OperationRegion (PCST, SystemIO, 0x0640, 0x10)"),
            "{dsl}"
        );
        for field in ["PCIU,   32", "PCID,   32", "B0EJ,   32", "PSEG,   32"] {
            assert!(dsl.contains(field), "{field} missing from:\n{dsl}");
        }
        assert!(dsl.contains("DVNT (\\_SB.PHPR.PCIU, One)"), "{dsl}");
        assert!(dsl.contains("DVNT (\\_SB.PHPR.PCID, 0x03)"), "{dsl}");
    }

    #[test]
    fn com1_decodes_0x3f8_with_isa_irq_4() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let dsl = iasl::disassemble(&build(&CFG));

        let com1 = &dsl[dsl.find("Device (COM1)").expect("COM1 device")..];
        let com1 = &com1[..com1.find("Device (PWRB)").expect("PWRB after COM1")];
        assert!(
            com1.contains("0x03F8,             // Range Minimum"),
            "{com1}"
        );
        assert!(com1.contains("0x08,               // Length"), "{com1}");
        assert!(
            com1.contains("IRQNoFlags ()\n                    {4}"),
            "{com1}"
        );
    }

    #[test]
    fn ged_notifies_the_power_button_on_bit_3() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let dsl = iasl::disassemble(&build(&CFG));

        assert!(dsl.contains("Local0 = GDAT"), "{dsl}");
        assert!(dsl.contains("(Local0 & 0x08)"), "{dsl}");
        assert!(dsl.contains("Notify (\\_SB.PWRB, 0x80)"), "{dsl}");
    }
}
