//! The processor container `\_SB_.CPUS` with one `ACPI0007` processor device per *possible*
//! vCPU (`Cnnn`, `nnn` the vCPU index in hex, `_UID` = the MADT processor uid = APIC id).
//!
//! `_STA` is fixed at build time: present and enabled (0xF) for boot vCPUs, absent (0) for the
//! rest. CPU hotplug replaces it with a method reading the CPU hotplug registers and adds the
//! `CSCN` scan method the GED calls.

use acpi_tables::aml::{Device, EISAName, Method, Name, Path, Return};

use super::AcpiConfig;
use super::aml_util::{Encoded, encoded};

/// `_STA`: present, enabled, shown in UI, functioning.
const STA_PRESENT: u8 = 0x0f;
/// `_STA`: not present.
const STA_ABSENT: u8 = 0x00;

/// `Device (CPUS)`, to be placed in `\_SB_`.
pub(super) fn container(cfg: &AcpiConfig) -> Encoded {
    let processors: Vec<Encoded> = (0..cfg.max_vcpus)
        .map(|index| processor(index, index < cfg.vcpus))
        .collect();
    let hid = Name::new(Path::new("_HID"), &"ACPI0010");
    let cid = Name::new(Path::new("_CID"), &EISAName::new("PNP0A05"));
    let mut children: Vec<&dyn acpi_tables::Aml> = vec![&hid, &cid];
    children.extend(processors.iter().map(|p| p as &dyn acpi_tables::Aml));
    encoded(&Device::new(Path::new("CPUS"), children))
}

/// `Device (Cnnn)` for vCPU `index`.
fn processor(index: u32, present: bool) -> Encoded {
    let status = if present { STA_PRESENT } else { STA_ABSENT };
    encoded(&Device::new(
        Path::new(&processor_name(index)),
        vec![
            &Name::new(Path::new("_HID"), &"ACPI0007"),
            &Name::new(Path::new("_UID"), &index),
            &Method::new(Path::new("_STA"), 0, false, vec![&Return::new(&status)]),
        ],
    ))
}

/// The four-character ACPI name of vCPU `index`: `C` and three hex digits (`C00A`).
pub(super) fn processor_name(index: u32) -> String {
    format!("C{index:03X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processor_names_are_four_characters_up_to_the_largest_vcpu() {
        assert_eq!(processor_name(0), "C000");
        assert_eq!(processor_name(10), "C00A");
        assert_eq!(processor_name(crate::engine::layout::MAX_VCPUS - 1), "C0FD");
    }
}
