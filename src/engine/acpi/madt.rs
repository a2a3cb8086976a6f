//! The MADT (`APIC`): the local APIC of every *possible* vCPU and KVM's in-kernel IOAPIC.
//!
//! vCPU `n` has APIC id `n` and ACPI processor uid `n` (the DSDT's `\_SB_.CPUS` devices use
//! the same uid). Boot vCPUs are `enabled`; the rest are `online capable`, which tells the OS
//! to reserve room for them so they can be hot-added later. That flag exists from MADT
//! revision 5 (ACPI 6.3), hence the revision.
//!
//! No interrupt source overrides: KVM's default routing sends ISA IRQ `n` to IOAPIC pin `n`,
//! which is what an OS assumes when no override is listed.

use acpi_tables::Aml;
use acpi_tables::madt::{EnabledStatus, IoApic, ProcessorLocalApic};
use acpi_tables::sdt::Sdt;

use super::{AcpiConfig, OEM_ID, OEM_REVISION, oem_table_id};
use crate::engine::layout;

/// MADT revision 5: the first with the local APIC "online capable" flag.
const MADT_REVISION: u8 = 5;
/// Header (36) + local interrupt controller address (4) + flags (4).
const MADT_HEADER_LEN: u32 = 44;
/// MADT flag: the platform also has dual 8259 PICs (KVM's in-kernel irqchip does), which the
/// OS must mask before using the IOAPIC.
const PCAT_COMPAT: u32 = 1;
/// The IOAPIC's id; KVM's in-kernel IOAPIC reports 0.
const IOAPIC_ID: u8 = 0;
/// First GSI served by the IOAPIC.
const IOAPIC_GSI_BASE: u32 = 0;

/// The encoded MADT for `cfg` (already validated: `max_vcpus <= layout::MAX_VCPUS`).
pub(super) fn build(cfg: &AcpiConfig) -> Vec<u8> {
    let mut madt = Sdt::new(
        *b"APIC",
        MADT_HEADER_LEN,
        MADT_REVISION,
        OEM_ID,
        oem_table_id(b"APIC"),
        OEM_REVISION,
    );
    madt.write_u32(36, lapic_address());
    madt.write_u32(40, PCAT_COMPAT);

    // Encode the entries first and append once: `Sdt` recomputes its checksum per append.
    let mut entries = Vec::new();
    for index in 0..cfg.max_vcpus {
        let id = u8::try_from(index).expect("validated: max_vcpus <= layout::MAX_VCPUS < 256");
        let status = if index < cfg.vcpus {
            EnabledStatus::Enabled
        } else {
            EnabledStatus::DisabledOnlineCapable
        };
        ProcessorLocalApic::new(id, id, status).to_aml_bytes(&mut entries);
    }
    IoApic::new(IOAPIC_ID, ioapic_address(), IOAPIC_GSI_BASE).to_aml_bytes(&mut entries);
    madt.append_slice(&entries);
    madt.as_slice().to_vec()
}

const fn lapic_address() -> u32 {
    const { assert!(layout::LAPIC_START <= u32::MAX as u64) };
    layout::LAPIC_START as u32
}

const fn ioapic_address() -> u32 {
    const { assert!(layout::IOAPIC_START <= u32::MAX as u64) };
    layout::IOAPIC_START as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPE_LOCAL_APIC: u8 = 0;
    const TYPE_IOAPIC: u8 = 1;
    const ENABLED: u32 = 1 << 0;
    const ONLINE_CAPABLE: u32 = 1 << 1;

    /// The MADT's interrupt controller structures as (type, body) pairs.
    fn entries(madt: &[u8]) -> Vec<(u8, &[u8])> {
        let mut entries = Vec::new();
        let mut rest = &madt[MADT_HEADER_LEN as usize..];
        while !rest.is_empty() {
            let (kind, len) = (rest[0], rest[1] as usize);
            entries.push((kind, &rest[..len]));
            rest = &rest[len..];
        }
        entries
    }

    fn two_of_eight() -> Vec<u8> {
        build(&AcpiConfig {
            vcpus: 2,
            max_vcpus: 8,
        })
    }

    #[test]
    fn madt_is_revision_5_with_the_lapic_address() {
        let madt = two_of_eight();

        assert_eq!(&madt[..4], b"APIC");
        assert!(madt[8] >= 5, "revision {}", madt[8]);
        assert_eq!(
            u32::from_le_bytes(madt[36..40].try_into().unwrap()),
            0xfee0_0000
        );
    }

    #[test]
    fn every_possible_vcpu_has_a_local_apic_with_matching_uid_and_id() {
        let madt = two_of_eight();

        let lapics: Vec<(u8, u8)> = entries(&madt)
            .into_iter()
            .filter(|(kind, _)| *kind == TYPE_LOCAL_APIC)
            .map(|(_, e)| (e[2], e[3]))
            .collect();

        assert_eq!(lapics, (0..8).map(|i| (i, i)).collect::<Vec<_>>());
    }

    #[test]
    fn boot_vcpus_are_enabled_and_the_rest_online_capable() {
        let madt = two_of_eight();

        let flags: Vec<u32> = entries(&madt)
            .into_iter()
            .filter(|(kind, _)| *kind == TYPE_LOCAL_APIC)
            .map(|(_, e)| u32::from_le_bytes(e[4..8].try_into().unwrap()))
            .collect();

        let mut expected = vec![ENABLED; 2];
        expected.extend([ONLINE_CAPABLE; 6]);
        assert_eq!(flags, expected);
    }

    #[test]
    fn one_ioapic_with_id_0_at_0xfec00000_from_gsi_0() {
        let madt = two_of_eight();

        let ioapics: Vec<&[u8]> = entries(&madt)
            .into_iter()
            .filter(|(kind, _)| *kind == TYPE_IOAPIC)
            .map(|(_, e)| e)
            .collect();

        assert_eq!(ioapics.len(), 1);
        let ioapic = ioapics[0];
        assert_eq!(ioapic[2], 0, "id");
        assert_eq!(
            u32::from_le_bytes(ioapic[4..8].try_into().unwrap()),
            0xfec0_0000
        );
        assert_eq!(u32::from_le_bytes(ioapic[8..12].try_into().unwrap()), 0);
    }

    #[test]
    fn madt_has_no_other_structures() {
        let madt = two_of_eight();

        let kinds: Vec<u8> = entries(&madt).into_iter().map(|(kind, _)| kind).collect();

        assert_eq!(kinds.len(), 9);
        assert!(
            kinds
                .iter()
                .all(|k| [TYPE_LOCAL_APIC, TYPE_IOAPIC].contains(k))
        );
    }
}
