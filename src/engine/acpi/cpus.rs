//! The processor container `\_SB_.CPUS`: one `ACPI0007` processor device per *possible* vCPU
//! (`Cnnn`, `nnn` the vCPU index in hex, `_UID` = the MADT processor uid = APIC id) and the
//! CPU hotplug methods over the register block at `layout::CPU_HOTPLUG_PORT`
//! (engine/hotplug/cpu.rs documents the registers).
//!
//! ```text
//! Device (CPUS)
//!   OperationRegion (PRST, SystemIO, 0x620, 12)
//!   CSEL (dword at +0)    selects a slot
//!   CPEN CINS CRMV CEJF   flag bits of the selected slot (byte at +4)
//!   Mutex (CPLK)          serializes select-then-access
//!   CSTA (uid)            _STA of a processor: 0xF when plugged, else 0
//!   CTFY (uid, code)      Notify (Cnnn, code)
//!   CEJ0 (uid)            eject: sets CEJF of that slot
//!   CSCN ()               scan: for each slot, inserting → Notify 1 (device check) and
//!                         acknowledge; removing → Notify 3 (eject request) and acknowledge
//!   Cnnn                  _HID ACPI0007, _UID, _STA → CSTA, _MAT (enabled local APIC),
//!                         _EJ0 → CEJ0 (not on C000: vCPU 0 cannot be removed)
//! ```
//! The GED's CPU hotplug event (bit 1) calls `\_SB_.CPUS.CSCN`, as Linux expects from Cloud
//! Hypervisor and QEMU. `_MAT` carries an *enabled* local APIC entry even for slots the MADT
//! lists as online-capable: that is what the OS reads when it adds the processor.

use acpi_tables::aml::{
    Acquire, Add, Arg, BufferData, Device, EISAName, Equal, Field, FieldAccessType, FieldEntry,
    FieldLockRule, FieldUpdateRule, If, LessThan, Local, Method, MethodCall, Mutex, Name, Notify,
    ONE, OpRegion, OpRegionSpace, Path, Release, Return, Store, While, ZERO,
};

use super::AcpiConfig;
use super::aml_util::{Encoded, encoded};
use crate::engine::layout;

/// Absolute path of the scan method the GED calls on a CPU hotplug event.
pub(super) const SCAN_METHOD_PATH: &str = "\\_SB_.CPUS.CSCN";
/// `_STA`: present, enabled, shown in UI, functioning.
const STA_PRESENT: u8 = 0x0f;
/// Notify code: device check (a processor was inserted).
const NOTIFY_DEVICE_CHECK: u8 = 1;
/// Notify code: eject request (a processor should be removed).
const NOTIFY_EJECT_REQUEST: u8 = 3;
/// Bytes the register block spans (the controller's `PORT_COUNT`).
const REGISTER_BYTES: u32 = 12;
/// Timeout for `Acquire (CPLK)`: 0xFFFF waits forever.
const WAIT_FOREVER: u16 = 0xffff;
/// MADT structure type of a processor local APIC.
const MADT_LOCAL_APIC: u8 = 0;
/// MADT local APIC flag: enabled.
const MADT_ENABLED: u32 = 1;

/// `Device (CPUS)`, to be placed in `\_SB_`.
pub(super) fn container(cfg: &AcpiConfig) -> Encoded {
    let processors: Vec<Encoded> = (0..cfg.max_vcpus).map(processor).collect();
    let hid = Name::new(Path::new("_HID"), &"ACPI0010");
    let cid = Name::new(Path::new("_CID"), &EISAName::new("PNP0A05"));
    let port = u32::from(layout::CPU_HOTPLUG_PORT);
    let region = OpRegion::new(
        Path::new("PRST"),
        OpRegionSpace::SystemIO,
        &port,
        &REGISTER_BYTES,
    );
    let selector = Field::new(
        Path::new("PRST"),
        FieldAccessType::DWord,
        FieldLockRule::NoLock,
        FieldUpdateRule::Preserve,
        vec![FieldEntry::Named(*b"CSEL", 32)],
    );
    // Written as zeros: setting one flag bit must not write back the others (a read-modify-
    // write of CINS would acknowledge CRMV too).
    let flags = Field::new(
        Path::new("PRST"),
        FieldAccessType::Byte,
        FieldLockRule::NoLock,
        FieldUpdateRule::WriteAsZeroes,
        vec![
            FieldEntry::Reserved(32),
            FieldEntry::Named(*b"CPEN", 1),
            FieldEntry::Named(*b"CINS", 1),
            FieldEntry::Named(*b"CRMV", 1),
            FieldEntry::Named(*b"CEJF", 1),
            FieldEntry::Reserved(4),
        ],
    );
    let lock = Mutex::new(Path::new("CPLK"), 0);
    let methods = [
        status_method(),
        notify_method(cfg.max_vcpus),
        eject_method(),
        scan_method(cfg.max_vcpus),
    ];
    let mut children: Vec<&dyn acpi_tables::Aml> =
        vec![&hid, &cid, &region, &selector, &flags, &lock];
    children.extend(methods.iter().map(|m| m as &dyn acpi_tables::Aml));
    children.extend(processors.iter().map(|p| p as &dyn acpi_tables::Aml));
    encoded(&Device::new(Path::new("CPUS"), children))
}

/// `Method (CSTA, 1, Serialized)`: 0xF when slot `Arg0` is plugged, else 0.
fn status_method() -> Encoded {
    let status = Local(0);
    let (csel, cpen, uid) = (Path::new("CSEL"), Path::new("CPEN"), Arg(0));
    let select = Store::new(&csel, &uid);
    let clear = Store::new(&status, &ZERO);
    let present = Store::new(&status, &STA_PRESENT);
    let plugged = Equal::new(&cpen, &ONE);
    encoded(&Method::new(
        Path::new("CSTA"),
        1,
        true,
        vec![
            &Acquire::new(Path::new("CPLK"), WAIT_FOREVER),
            &select,
            &clear,
            &If::new(&plugged, vec![&present]),
            &Release::new(Path::new("CPLK")),
            &Return::new(&status),
        ],
    ))
}

/// `Method (CTFY, 2, Serialized)`: `Notify (Cnnn, Arg1)` for the processor whose uid is `Arg0`.
fn notify_method(max_vcpus: u32) -> Encoded {
    let (uid, code) = (Arg(0), Arg(1));
    let targets: Vec<(Path, u32)> = (0..max_vcpus)
        .map(|index| (Path::new(&processor_name(index)), index))
        .collect();
    let notifies: Vec<Notify> = targets
        .iter()
        .map(|(path, _)| Notify::new(path, &code))
        .collect();
    let tests: Vec<Equal> = targets
        .iter()
        .map(|(_, index)| Equal::new(&uid, index))
        .collect();
    let branches: Vec<If> = tests
        .iter()
        .zip(&notifies)
        .map(|(test, notify)| If::new(test, vec![notify]))
        .collect();
    encoded(&Method::new(
        Path::new("CTFY"),
        2,
        true,
        branches
            .iter()
            .map(|b| b as &dyn acpi_tables::Aml)
            .collect(),
    ))
}

/// `Method (CEJ0, 1, Serialized)`: ejects slot `Arg0`.
fn eject_method() -> Encoded {
    let (csel, cejf, uid) = (Path::new("CSEL"), Path::new("CEJF"), Arg(0));
    let select = Store::new(&csel, &uid);
    let eject = Store::new(&cejf, &ONE);
    encoded(&Method::new(
        Path::new("CEJ0"),
        1,
        true,
        vec![
            &Acquire::new(Path::new("CPLK"), WAIT_FOREVER),
            &select,
            &eject,
            &Release::new(Path::new("CPLK")),
        ],
    ))
}

/// `Method (CSCN, 0, Serialized)`: notifies and acknowledges every inserting and removing slot.
fn scan_method(max_vcpus: u32) -> Encoded {
    let slot = Local(0);
    let (csel, cins, crmv) = (Path::new("CSEL"), Path::new("CINS"), Path::new("CRMV"));
    let device_check = NOTIFY_DEVICE_CHECK;
    let eject_request = NOTIFY_EJECT_REQUEST;
    let notify_inserted = MethodCall::new(Path::new("CTFY"), vec![&slot, &device_check]);
    let ack_inserted = Store::new(&cins, &ONE);
    let inserting = Equal::new(&cins, &ONE);
    let notify_removed = MethodCall::new(Path::new("CTFY"), vec![&slot, &eject_request]);
    let ack_removed = Store::new(&crmv, &ONE);
    let removing = Equal::new(&crmv, &ONE);
    let select = Store::new(&csel, &slot);
    let next = Add::new(&slot, &slot, &ONE);
    let more = LessThan::new(&slot, &max_vcpus);
    let on_insert = If::new(&inserting, vec![&notify_inserted, &ack_inserted]);
    let on_remove = If::new(&removing, vec![&notify_removed, &ack_removed]);
    let each_slot = While::new(&more, vec![&select, &on_insert, &on_remove, &next]);
    let start = Store::new(&slot, &ZERO);
    encoded(&Method::new(
        Path::new("CSCN"),
        0,
        true,
        vec![
            &Acquire::new(Path::new("CPLK"), WAIT_FOREVER),
            &start,
            &each_slot,
            &Release::new(Path::new("CPLK")),
        ],
    ))
}

/// `Device (Cnnn)` for vCPU `index`.
fn processor(index: u32) -> Encoded {
    let hid = Name::new(Path::new("_HID"), &"ACPI0007");
    let uid = Name::new(Path::new("_UID"), &index);
    let status_call = MethodCall::new(Path::new("CSTA"), vec![&index]);
    let status_return = Return::new(&status_call);
    let status = Method::new(Path::new("_STA"), 0, false, vec![&status_return]);
    let mat = Name::new(Path::new("_MAT"), &BufferData::new(local_apic_entry(index)));
    let eject_call = MethodCall::new(Path::new("CEJ0"), vec![&index]);
    let eject = Method::new(Path::new("_EJ0"), 1, false, vec![&eject_call]);
    let mut children: Vec<&dyn acpi_tables::Aml> = vec![&hid, &uid, &status, &mat];
    if index != 0 {
        children.push(&eject);
    }
    encoded(&Device::new(Path::new(&processor_name(index)), children))
}

/// The MADT processor local APIC structure of vCPU `index`, enabled (uid = APIC id = index).
fn local_apic_entry(index: u32) -> Vec<u8> {
    // Validated by AcpiConfig: index < max_vcpus <= layout::MAX_VCPUS < 256.
    let id = index as u8;
    let mut entry = vec![MADT_LOCAL_APIC, 8, id, id];
    entry.extend_from_slice(&MADT_ENABLED.to_le_bytes());
    entry
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

    #[test]
    fn mat_is_an_enabled_local_apic_with_the_index_as_uid_and_id() {
        assert_eq!(local_apic_entry(5), [0, 8, 5, 5, 1, 0, 0, 0]);
    }

    #[test]
    fn register_block_matches_the_controller() {
        assert_eq!(
            u64::from(REGISTER_BYTES),
            crate::engine::hotplug::cpu::PORT_COUNT
        );
    }
}
