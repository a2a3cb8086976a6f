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
//!
//! PCI hotplug (engine/hotplug/pci.rs has the registers), the design Linux's acpiphp already
//! drives on Cloud Hypervisor:
//!
//! ```text
//! \_SB_.PHPR              the hotplug controller: registers at layout::PCI_HOTPLUG_PORT
//!   PCIU PCID B0EJ PSEG   slots up (read clears), slots down (read clears), eject, segment
//!   BLCK                  serializes segment-select-then-access
//!   PCEJ (slot, seg)      eject: B0EJ = 1 << slot
//! \_SB_.PCI0.Snnn         32 slot objects: _ADR (slot << 16), _SUN, _EJ0 → PCEJ (not S000:
//!                         the host bridge stays)
//! \_SB_.PCI0.DVNT (b, c)  Notify (Snnn, c) for each slot in bitmap b
//! \_SB_.PCI0.PCNT ()      DVNT (PCIU, 1: device check); DVNT (PCID, 3: eject request)
//! ```
//! The GED's PCI hotplug event (bit 2) calls `\_SB_.PCI0.PCNT`.

use acpi_tables::aml::{
    Acquire, AddressSpace, AddressSpaceCacheable, And, Arg, Device, EISAName, Equal, Field,
    FieldAccessType, FieldEntry, FieldLockRule, FieldUpdateRule, IO, If, Local, Memory32Fixed,
    Method, MethodCall, Mutex, Name, Notify, ONE, OpRegion, OpRegionSpace, Path, Release,
    ResourceTemplate, Return, ShiftLeft, Store, ZERO,
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

/// Absolute path of the method the GED calls on a PCI hotplug event.
pub(super) const SCAN_METHOD_PATH: &str = "\\_SB_.PCI0.PCNT";
/// Device slots on bus 0.
const SLOTS: u8 = 32;
/// Bytes the hotplug register block spans (the controller's `PORT_COUNT`).
const HOTPLUG_REGISTER_BYTES: u32 = 16;
/// Notify code: device check (a device was plugged).
const NOTIFY_DEVICE_CHECK: u8 = 1;
/// Notify code: eject request.
const NOTIFY_EJECT_REQUEST: u8 = 3;
/// Timeout for `Acquire`: 0xFFFF waits forever.
const WAIT_FOREVER: u16 = 0xffff;

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
    let hid = Name::new(Path::new("_HID"), &EISAName::new("PNP0A08"));
    let cid = Name::new(Path::new("_CID"), &EISAName::new("PNP0A03"));
    let uid = Name::new(Path::new("_UID"), &ZERO);
    let seg = Name::new(Path::new("_SEG"), &ZERO);
    let bbn = Name::new(Path::new("_BBN"), &ZERO);
    let crs = Name::new(Path::new("_CRS"), &resources);
    let notify = slot_notify_method();
    let scan = scan_method();
    let slots: Vec<Encoded> = (0..SLOTS).map(slot).collect();
    let mut children: Vec<&dyn acpi_tables::Aml> =
        vec![&hid, &cid, &uid, &seg, &bbn, &crs, &notify, &scan];
    children.extend(slots.iter().map(|s| s as &dyn acpi_tables::Aml));
    encoded(&Device::new(Path::new("PCI0"), children))
}

/// The ACPI name of slot `slot`: `S` and three decimal digits (`S007`).
fn slot_name(slot: u8) -> String {
    format!("S{slot:03}")
}

/// `Device (Snnn)` for `slot`: its address, its number, and (but for the host bridge's slot 0)
/// the eject method.
fn slot(slot: u8) -> Encoded {
    let adr = Name::new(Path::new("_ADR"), &(u32::from(slot) << 16));
    let sun = Name::new(Path::new("_SUN"), &u32::from(slot));
    let (sun_path, seg_path) = (Path::new("_SUN"), Path::new("_SEG"));
    let eject_call = MethodCall::new(Path::new("\\_SB_.PHPR.PCEJ"), vec![&sun_path, &seg_path]);
    let eject = Method::new(Path::new("_EJ0"), 1, true, vec![&eject_call]);
    let mut children: Vec<&dyn acpi_tables::Aml> = vec![&adr, &sun];
    if slot != 0 {
        children.push(&eject);
    }
    encoded(&Device::new(Path::new(&slot_name(slot)), children))
}

/// `Method (DVNT, 2, Serialized)`: `Notify (Snnn, Arg1)` for every slot set in bitmap `Arg0`.
fn slot_notify_method() -> Encoded {
    let (bitmap, code, bit) = (Arg(0), Arg(1), Local(0));
    let masks: Vec<u32> = (0..SLOTS).map(|s| 1u32 << s).collect();
    let paths: Vec<Path> = (0..SLOTS).map(|s| Path::new(&slot_name(s))).collect();
    let ands: Vec<And> = masks.iter().map(|m| And::new(&bit, &bitmap, m)).collect();
    let tests: Vec<Equal> = masks.iter().map(|m| Equal::new(&bit, m)).collect();
    let notifies: Vec<Notify> = paths.iter().map(|p| Notify::new(p, &code)).collect();
    let branches: Vec<If> = tests
        .iter()
        .zip(&notifies)
        .map(|(test, notify)| If::new(test, vec![notify]))
        .collect();
    let mut body: Vec<&dyn acpi_tables::Aml> = Vec::new();
    for (and, branch) in ands.iter().zip(&branches) {
        body.push(and);
        body.push(branch);
    }
    encoded(&Method::new(Path::new("DVNT"), 2, true, body))
}

/// `Method (PCNT, 0, Serialized)`: reports plugged slots (device check) and slots to remove
/// (eject request) to the OS.
fn scan_method() -> Encoded {
    let (pseg, pciu, pcid) = (
        Path::new("\\_SB_.PHPR.PSEG"),
        Path::new("\\_SB_.PHPR.PCIU"),
        Path::new("\\_SB_.PHPR.PCID"),
    );
    let segment = Path::new("_SEG");
    let select = Store::new(&pseg, &segment);
    let (check, eject) = (NOTIFY_DEVICE_CHECK, NOTIFY_EJECT_REQUEST);
    let plugged = MethodCall::new(Path::new("DVNT"), vec![&pciu, &check]);
    let unplugged = MethodCall::new(Path::new("DVNT"), vec![&pcid, &eject]);
    encoded(&Method::new(
        Path::new("PCNT"),
        0,
        true,
        vec![
            &Acquire::new(Path::new("\\_SB_.PHPR.BLCK"), WAIT_FOREVER),
            &select,
            &plugged,
            &unplugged,
            &Release::new(Path::new("\\_SB_.PHPR.BLCK")),
        ],
    ))
}

/// `Device (PHPR)`, to be placed in `\_SB_`: the PCI hotplug registers and the eject method.
pub(super) fn hotplug_controller() -> Encoded {
    let port = u32::from(layout::PCI_HOTPLUG_PORT);
    let region = OpRegion::new(
        Path::new("PCST"),
        OpRegionSpace::SystemIO,
        &port,
        &HOTPLUG_REGISTER_BYTES,
    );
    let fields = Field::new(
        Path::new("PCST"),
        FieldAccessType::DWord,
        FieldLockRule::NoLock,
        FieldUpdateRule::WriteAsZeroes,
        vec![
            FieldEntry::Named(*b"PCIU", 32),
            FieldEntry::Named(*b"PCID", 32),
            FieldEntry::Named(*b"B0EJ", 32),
            FieldEntry::Named(*b"PSEG", 32),
        ],
    );
    let (slot, segment) = (Arg(0), Arg(1));
    let (pseg, b0ej) = (Path::new("PSEG"), Path::new("B0EJ"));
    let select = Store::new(&pseg, &segment);
    let bit = ShiftLeft::new(&b0ej, &ONE, &slot);
    let (acquire, release) = (
        Acquire::new(Path::new("BLCK"), WAIT_FOREVER),
        Release::new(Path::new("BLCK")),
    );
    let done = Return::new(&ZERO);
    let eject = Method::new(
        Path::new("PCEJ"),
        2,
        true,
        vec![&acquire, &select, &bit, &release, &done],
    );
    let ports = IO::new(
        layout::PCI_HOTPLUG_PORT,
        layout::PCI_HOTPLUG_PORT,
        1,
        HOTPLUG_REGISTER_BYTES as u8,
    );
    let resources = ResourceTemplate::new(vec![&ports]);
    encoded(&Device::new(
        Path::new("PHPR"),
        vec![
            &Name::new(Path::new("_HID"), &EISAName::new("PNP0A06")),
            &Name::new(Path::new("_UID"), &"PCI Hotplug Controller"),
            &Name::new(Path::new("_CRS"), &resources),
            &Mutex::new(Path::new("BLCK"), 0),
            &region,
            &fields,
            &eject,
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
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let dsl = iasl::disassemble(&dsdt::build(&CFG));

        let pci0 = device(&dsl, "PCI0");
        assert!(pci0.contains("EisaId (\"PNP0A08\")"), "{pci0}");
        assert!(pci0.contains("EisaId (\"PNP0A03\")"), "{pci0}");
        assert!(pci0.contains("Name (_SEG, Zero)"), "{pci0}");
        assert!(pci0.contains("Name (_BBN, Zero)"), "{pci0}");
    }

    #[test]
    fn root_bridge_resources_cover_bus_0_and_the_mmio_window() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
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
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
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
