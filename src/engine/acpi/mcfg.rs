//! The MCFG: where PCI Express enhanced configuration space (ECAM) lives.
//!
//! One allocation for PCI segment 0 covering the buses `layout::PCI_ECAM_SIZE` spans (bus 0
//! only today). The PCI root bridge in the DSDT (added with PCI support) must agree.

use acpi_tables::mcfg::MCFG;

use super::aml_util::encode;
use super::{OEM_ID, OEM_REVISION, oem_table_id};
use crate::engine::layout;

/// ECAM maps 1 MiB of configuration space per bus.
const ECAM_BUS_SIZE: u64 = 1 << 20;
/// Last bus number covered by the ECAM window.
const ECAM_END_BUS: u8 = {
    let buses = layout::PCI_ECAM_SIZE / ECAM_BUS_SIZE;
    assert!(buses >= 1 && buses <= 256);
    (buses - 1) as u8
};

/// The encoded MCFG.
pub(super) fn build() -> Vec<u8> {
    let mut mcfg = MCFG::new(OEM_ID, oem_table_id(b"MCFG"), OEM_REVISION);
    mcfg.add_ecam(layout::PCI_ECAM_START, 0, 0, ECAM_END_BUS);
    encode(&mcfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ecam_allocation_for_segment_0_bus_0_at_0xe0000000() {
        let mcfg = build();

        // Header (36) + reserved (8) + one 16-byte allocation.
        assert_eq!(mcfg.len(), 60);
        let entry = &mcfg[44..];
        assert_eq!(
            u64::from_le_bytes(entry[..8].try_into().unwrap()),
            0xe000_0000
        );
        assert_eq!(
            u16::from_le_bytes(entry[8..10].try_into().unwrap()),
            0,
            "segment"
        );
        assert_eq!((entry[10], entry[11]), (0, 0), "buses");
    }
}
