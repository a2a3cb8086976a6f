//! The Generic Event Device (`ACPI0013`, `\_SB_.GED_`): how a hardware-reduced platform
//! raises events. vmux's GED device pulses GSI `layout::GED_GSI`; the OS then runs `_EVT`,
//! which reads the event register at `layout::GED_PORT` (reading clears it) and handles each
//! set bit with a [`GedEvent`].
//!
//! Bit 1 (CPU hotplug) calls `\_SB_.CPUS.CSCN ()` (cpus.rs), bit 2 (PCI hotplug)
//! `\_SB_.PCI0.PCNT ()` (pci.rs), bit 3 notifies the power button.

use acpi_tables::aml::{
    And, Device, Equal, Field, FieldAccessType, FieldEntry, FieldLockRule, FieldUpdateRule, If,
    Interrupt, Local, Method, MethodCall, Name, Notify, OpRegion, OpRegionSpace, Path,
    ResourceTemplate, Store,
};

use super::aml_util::{Encoded, encoded};
use super::legacy::{NOTIFY_BUTTON_PRESSED, POWER_BUTTON_PATH};
use super::{cpus, pci};
use crate::engine::layout;

/// One GED event bit and the AML statements `_EVT` runs when it is set.
pub(super) struct GedEvent {
    /// The bit in the event register (`layout::GED_EVENT_*`).
    pub(super) mask: u32,
    /// AML term list to run, encoded (e.g. a `Notify` or a method call).
    pub(super) action: Encoded,
}

/// Power button pressed: `Notify (\_SB_.PWRB, 0x80)`.
pub(super) fn power_button_event() -> GedEvent {
    GedEvent {
        mask: layout::GED_EVENT_POWER_BUTTON,
        action: encoded(&Notify::new(
            &Path::new(POWER_BUTTON_PATH),
            &NOTIFY_BUTTON_PRESSED,
        )),
    }
}

/// CPU hotplug: `\_SB_.CPUS.CSCN ()` scans the processor slots.
pub(super) fn cpu_hotplug_event() -> GedEvent {
    GedEvent {
        mask: layout::GED_EVENT_CPU_HOTPLUG,
        action: encoded(&MethodCall::new(Path::new(cpus::SCAN_METHOD_PATH), vec![])),
    }
}

/// PCI hotplug: `\_SB_.PCI0.PCNT ()` reports plugged and unplugged slots.
pub(super) fn pci_hotplug_event() -> GedEvent {
    GedEvent {
        mask: layout::GED_EVENT_PCI_HOTPLUG,
        action: encoded(&MethodCall::new(Path::new(pci::SCAN_METHOD_PATH), vec![])),
    }
}

/// `Device (GED_)`, to be placed in `\_SB_`, handling `events` in order.
pub(super) fn device(events: &[GedEvent]) -> Encoded {
    // ResourceConsumer, Edge, ActiveHigh, Exclusive: the GED device pulses its line.
    let interrupt = Interrupt::new(true, true, false, false, layout::GED_GSI);
    let resources = ResourceTemplate::new(vec![&interrupt]);
    let port = u32::from(layout::GED_PORT);
    let port_count = u32::from(layout::GED_PORT_SIZE);
    let region = OpRegion::new(
        Path::new("GDST"),
        OpRegionSpace::SystemIO,
        &port,
        &port_count,
    );
    let field = Field::new(
        Path::new("GDST"),
        FieldAccessType::DWord,
        FieldLockRule::NoLock,
        FieldUpdateRule::Preserve,
        vec![FieldEntry::Named(*b"GDAT", 32)],
    );
    let evt = evt_method(events);
    encoded(&Device::new(
        Path::new("GED_"),
        vec![
            &Name::new(Path::new("_HID"), &"ACPI0013"),
            &Name::new(Path::new("_UID"), &0u8),
            &Name::new(Path::new("_CRS"), &resources),
            &region,
            &field,
            &evt,
        ],
    ))
}

/// `Method (_EVT, 1, Serialized)`: read the register once (it clears on read), then test
/// each event's bit.
fn evt_method(events: &[GedEvent]) -> Encoded {
    let pending = Local(0);
    let bit = Local(1);
    let register = Path::new("GDAT");
    let read = Store::new(&pending, &register);
    let tests: Vec<(And, Equal)> = events
        .iter()
        .map(|event| {
            (
                And::new(&bit, &pending, &event.mask),
                Equal::new(&bit, &event.mask),
            )
        })
        .collect();
    let branches: Vec<If> = tests
        .iter()
        .zip(events)
        .map(|((_, is_set), event)| If::new(is_set, vec![&event.action]))
        .collect();
    let mut body: Vec<&dyn acpi_tables::Aml> = vec![&read];
    for ((mask, _), branch) in tests.iter().zip(&branches) {
        body.push(mask);
        body.push(branch);
    }
    encoded(&Method::new(Path::new("_EVT"), 1, true, body))
}

#[cfg(test)]
mod tests {
    use super::super::aml_util::encode;
    use super::super::iasl;
    use super::*;
    use acpi_tables::aml::{Method as AmlMethod, Scope};
    use acpi_tables::sdt::Sdt;

    /// A DSDT holding only the GED with `events` and a method `\TEST` each test event calls.
    fn dsdt_with(events: &[GedEvent]) -> Vec<u8> {
        let test_method = AmlMethod::new(Path::new("TEST"), 0, false, vec![]);
        let ged = device(events);
        let system_bus = Scope::new(Path::new("\\_SB_"), vec![&ged]);
        let pwrb = encode(&acpi_tables::aml::Device::new(
            Path::new("\\_SB_.PWRB"),
            vec![&Name::new(Path::new("_UID"), &0u8)],
        ));
        let mut dsdt = Sdt::new(*b"DSDT", 36, 6, *b"VMUX  ", *b"VMUXTEST", 1);
        let mut body = encode(&test_method);
        body.extend(pwrb);
        body.extend(encode(&system_bus));
        dsdt.append_slice(&body);
        dsdt.as_slice().to_vec()
    }

    #[test]
    fn each_event_bit_gets_its_own_branch_after_one_read() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let cpu_event = GedEvent {
            mask: layout::GED_EVENT_CPU_HOTPLUG,
            action: encoded(&acpi_tables::aml::MethodCall::new(
                Path::new("\\TEST"),
                vec![],
            )),
        };
        let dsl = iasl::disassemble(&dsdt_with(&[cpu_event, power_button_event()]));

        assert_eq!(dsl.matches("= GDAT").count(), 1, "{dsl}");
        assert!(dsl.contains("(Local0 & 0x02)"), "{dsl}");
        assert!(dsl.contains("\\TEST ()"), "{dsl}");
        assert!(dsl.contains("(Local0 & 0x08)"), "{dsl}");
        let report = iasl::compile(&dsl);
        assert_eq!(report.errors, 0, "{}", report.output);
    }
}
