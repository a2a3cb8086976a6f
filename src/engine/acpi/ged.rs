//! The Generic Event Device (`ACPI0013`, `\_SB_.GED_`): how a hardware-reduced platform
//! raises events. vmux's GED device pulses GSI `layout::GED_GSI`; the OS then runs `_EVT`,
//! which reads the event register at `layout::GED_PORT` (reading clears it) and handles each
//! set bit with a [`GedEvent`].
//!
//! Today only the power button (bit 3) is wired. CPU hotplug (bit 1) and PCI hotplug (bit 2)
//! add their own [`GedEvent`] in `dsdt.rs` (e.g. `\_SB_.CPUS.CSCN ()`).

use acpi_tables::aml::{
    And, Device, Equal, Field, FieldAccessType, FieldEntry, FieldLockRule, FieldUpdateRule, If,
    Interrupt, Local, Method, Name, Notify, OpRegion, OpRegionSpace, Path, ResourceTemplate, Store,
};

use super::aml_util::{Encoded, encoded};
use super::legacy::{NOTIFY_BUTTON_PRESSED, POWER_BUTTON_PATH};
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

/// `Device (GED_)`, to be placed in `\_SB_`, handling `events` in order.
pub(super) fn device(events: &[GedEvent]) -> Encoded {
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
