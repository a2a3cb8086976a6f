//! ACPI tables that describe the vmux platform (`docs/platform.md`) to the guest.
//!
//! Layout in guest memory, all inside the reserved BIOS area `0xe0000..0x100000`:
//! the RSDP (revision 2) at [`layout::RSDP_START`], then DSDT, FADT, MADT, MCFG and XSDT, each
//! 8-byte aligned. RSDP → XSDT → {FADT → DSDT, MADT, MCFG}. One file per table; the DSDT's
//! AML is split further (`legacy`, `ged`, `cpus`) so the hotplug work can grow its own parts.
//!
//! The tables are built once per boot from an [`AcpiConfig`] by [`build_tables`] (pure, for
//! tests and tooling) and written by [`create_acpi_tables`] during VM setup.

mod aml_util;
mod cpus;
mod dsdt;
mod fadt;
mod ged;
#[cfg(test)]
mod iasl;
mod legacy;
mod madt;
mod mcfg;
mod pci;

use acpi_tables::rsdp::Rsdp;
use acpi_tables::xsdt::XSDT;
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryError};

use crate::engine::layout;

/// OEM id written in every table header (and the RSDP).
const OEM_ID: [u8; 6] = *b"VMUX  ";
/// OEM revision written in every table header; bump it when the tables change meaning.
const OEM_REVISION: u32 = 1;
/// Tables start on this boundary (bytes): not required by the spec, but keeps every table's
/// 64-bit fields naturally aligned for guests that read them directly.
const TABLE_ALIGNMENT: u64 = 8;

/// What the tables must describe. Built by the engine from its `VmSpec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcpiConfig {
    /// vCPUs present at boot: APIC ids `0..vcpus` are enabled.
    pub vcpus: u32,
    /// Possible vCPUs: APIC ids `vcpus..max_vcpus` are described as online-capable (hot-add).
    pub max_vcpus: u32,
}

impl AcpiConfig {
    /// Checks `1 <= vcpus <= max_vcpus <= layout::MAX_VCPUS` (APIC ids and processor uids
    /// are one byte in the MADT; 0xff is the broadcast id).
    pub fn validate(&self) -> Result<(), AcpiError> {
        if self.vcpus == 0 || self.vcpus > self.max_vcpus || self.max_vcpus > layout::MAX_VCPUS {
            return Err(AcpiError::InvalidVcpus {
                vcpus: self.vcpus,
                max_vcpus: self.max_vcpus,
            });
        }
        Ok(())
    }
}

/// Why the ACPI tables could not be built or written.
#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    /// The vCPU counts cannot be described.
    #[error(
        "cannot describe {vcpus} boot vCPUs out of {max_vcpus} possible; \
         need 1 <= vcpus <= max_vcpus <= {max}",
        max = layout::MAX_VCPUS
    )]
    InvalidVcpus {
        /// vCPUs at boot, as given.
        vcpus: u32,
        /// Possible vCPUs, as given.
        max_vcpus: u32,
    },
    /// The tables would run past the end of the ACPI area.
    #[error(
        "ACPI table {signature} would end at {end:#x}, past the ACPI area's end {limit:#x}; \
         lower max_vcpus"
    )]
    PlaceTable {
        /// Signature of the table that did not fit.
        signature: String,
        /// Guest-physical address (exclusive) where it would have ended.
        end: u64,
        /// End (exclusive) of the area tables may use.
        limit: u64,
    },
    /// Guest memory does not cover the ACPI area.
    #[error("cannot write ACPI table {signature} at {address:#x}; guest RAM must cover 0..1 MiB")]
    WriteTable {
        /// Signature of the table being written (`RSD PTR ` for the RSDP).
        signature: String,
        /// Guest-physical address it was written to.
        address: u64,
        /// What the guest memory reported.
        #[source]
        source: GuestMemoryError,
    },
}

/// One system description table and where it lives in guest memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiTable {
    /// The table's four-byte signature (`FACP`, `APIC`, `MCFG`, `DSDT`, `XSDT`).
    pub signature: [u8; 4],
    /// Guest-physical address of its first byte.
    pub address: GuestAddress,
    /// The whole table, header and checksum included.
    pub bytes: Vec<u8>,
}

/// Every table of one VM, placed: exactly what [`create_acpi_tables`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiTables {
    rsdp: Vec<u8>,
    tables: Vec<AcpiTable>,
}

impl AcpiTables {
    /// Guest-physical address of the RSDP (always [`layout::RSDP_START`]).
    pub fn rsdp_address(&self) -> GuestAddress {
        GuestAddress(layout::RSDP_START)
    }

    /// The RSDP's 36 bytes.
    pub fn rsdp(&self) -> &[u8] {
        &self.rsdp
    }

    /// The system description tables in address order.
    pub fn tables(&self) -> &[AcpiTable] {
        &self.tables
    }

    /// The table with this signature, if there is one.
    pub fn get(&self, signature: &[u8; 4]) -> Option<&AcpiTable> {
        self.tables.iter().find(|t| &t.signature == signature)
    }
}

/// Builds every table for `cfg` and places it in the ACPI area.
pub fn build_tables(cfg: &AcpiConfig) -> Result<AcpiTables, AcpiError> {
    cfg.validate()?;
    let mut placer = Placer::new(
        layout::RSDP_START + Rsdp::len() as u64,
        layout::ACPI_TABLES_END,
    );
    let dsdt = placer.place(dsdt::build(cfg))?;
    let fadt = placer.place(fadt::build(dsdt.address))?;
    let madt = placer.place(madt::build(cfg))?;
    let mcfg = placer.place(mcfg::build())?;

    let mut xsdt = XSDT::new(OEM_ID, oem_table_id(b"XSDT"), OEM_REVISION);
    for table in [&fadt, &madt, &mcfg] {
        xsdt.add_entry(table.address.0);
    }
    let xsdt = placer.place(aml_util::encode(&xsdt))?;

    let rsdp = aml_util::encode(&Rsdp::new(OEM_ID, xsdt.address.0));
    Ok(AcpiTables {
        rsdp,
        tables: vec![dsdt, fadt, madt, mcfg, xsdt],
    })
}

/// Writes the RSDP at [`layout::RSDP_START`] and the other tables after it, below
/// [`layout::ACPI_TABLES_END`]. Returns the RSDP's address. Called once during VM setup,
/// before any vCPU runs; `mem` must cover `0..1 MiB`.
pub fn create_acpi_tables<M: GuestMemory>(
    mem: &M,
    cfg: &AcpiConfig,
) -> Result<GuestAddress, AcpiError> {
    let tables = build_tables(cfg)?;
    write(mem, b"RSD PTR ", tables.rsdp_address(), tables.rsdp())?;
    for table in tables.tables() {
        write(mem, &table.signature, table.address, &table.bytes)?;
    }
    Ok(tables.rsdp_address())
}

fn write<M: GuestMemory>(
    mem: &M,
    signature: &[u8],
    address: GuestAddress,
    bytes: &[u8],
) -> Result<(), AcpiError> {
    mem.write_slice(bytes, address)
        .map_err(|source| AcpiError::WriteTable {
            signature: String::from_utf8_lossy(signature).into_owned(),
            address: address.0,
            source,
        })
}

/// The OEM table id of a table: `VMUX` followed by its signature (`VMUXFACP`).
fn oem_table_id(signature: &[u8; 4]) -> [u8; 8] {
    let mut id = *b"VMUX    ";
    id[4..].copy_from_slice(signature);
    id
}

/// Hands out consecutive, aligned addresses inside `[next, limit)`.
struct Placer {
    next: u64,
    limit: u64,
}

impl Placer {
    fn new(start: u64, limit: u64) -> Self {
        Self { next: start, limit }
    }

    /// Places an encoded table (its signature is its first four bytes) at the next aligned
    /// address, or refuses if it would end past the limit.
    fn place(&mut self, bytes: Vec<u8>) -> Result<AcpiTable, AcpiError> {
        let signature: [u8; 4] = bytes
            .get(..4)
            .and_then(|s| s.try_into().ok())
            .expect("every ACPI table starts with its 4-byte signature");
        let address = self.next.next_multiple_of(TABLE_ALIGNMENT);
        let end = address + bytes.len() as u64;
        if end > self.limit {
            return Err(AcpiError::PlaceTable {
                signature: String::from_utf8_lossy(&signature).into_owned(),
                end,
                limit: self.limit,
            });
        }
        self.next = end;
        Ok(AcpiTable {
            signature,
            address: GuestAddress(address),
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: AcpiConfig = AcpiConfig {
        vcpus: 2,
        max_vcpus: 8,
    };

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
    }

    fn u32_at(bytes: &[u8], offset: usize) -> u32 {
        u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
    }

    fn u64_at(bytes: &[u8], offset: usize) -> u64 {
        u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
    }

    /// The table whose first byte is at `address`.
    fn table_at(tables: &AcpiTables, address: u64) -> &AcpiTable {
        tables
            .tables()
            .iter()
            .find(|t| t.address.0 == address)
            .unwrap_or_else(|| panic!("no table at {address:#x}"))
    }

    #[test]
    fn every_table_checksum_sums_to_zero() {
        let tables = build_tables(&CFG).unwrap();

        assert_eq!(sum(&tables.rsdp()[..20]), 0, "RSDP v1 checksum");
        assert_eq!(sum(tables.rsdp()), 0, "RSDP extended checksum");
        for table in tables.tables() {
            let name = String::from_utf8_lossy(&table.signature);
            assert_eq!(sum(&table.bytes), 0, "{name} checksum");
            assert_eq!(
                u32_at(&table.bytes, 4) as usize,
                table.bytes.len(),
                "{name} length"
            );
        }
    }

    #[test]
    fn rsdp_points_at_xsdt_listing_fadt_madt_mcfg() {
        let tables = build_tables(&CFG).unwrap();
        let rsdp = tables.rsdp();

        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(rsdp[15], 2, "RSDP revision");
        assert_eq!(&rsdp[9..15], b"VMUX  ");
        let xsdt = table_at(&tables, u64_at(rsdp, 24));
        assert_eq!(&xsdt.signature, b"XSDT");
        let listed: Vec<[u8; 4]> = xsdt.bytes[36..]
            .chunks_exact(8)
            .map(|entry| table_at(&tables, u64_at(entry, 0)).signature)
            .collect();
        assert_eq!(listed, [*b"FACP", *b"APIC", *b"MCFG"]);
    }

    #[test]
    fn fadt_x_dsdt_points_at_dsdt() {
        let tables = build_tables(&CFG).unwrap();
        let fadt = tables.get(b"FACP").unwrap();

        let dsdt = table_at(&tables, u64_at(&fadt.bytes, 140));

        assert_eq!(&dsdt.signature, b"DSDT");
    }

    #[test]
    fn tables_do_not_overlap_and_stay_in_the_acpi_area() {
        let tables = build_tables(&AcpiConfig {
            vcpus: 1,
            max_vcpus: layout::MAX_VCPUS,
        })
        .unwrap();

        let mut end = layout::RSDP_START + tables.rsdp().len() as u64;
        for table in tables.tables() {
            assert!(table.address.0 >= end, "overlap at {:#x}", table.address.0);
            end = table.address.0 + table.bytes.len() as u64;
        }
        assert!(end <= layout::ACPI_TABLES_END);
    }

    #[test]
    fn zero_boot_vcpus_is_refused() {
        let err = build_tables(&AcpiConfig {
            vcpus: 0,
            max_vcpus: 4,
        })
        .unwrap_err();

        assert!(matches!(err, AcpiError::InvalidVcpus { .. }), "{err}");
    }

    #[test]
    fn more_boot_vcpus_than_possible_is_refused() {
        let err = build_tables(&AcpiConfig {
            vcpus: 5,
            max_vcpus: 4,
        })
        .unwrap_err();

        assert!(matches!(err, AcpiError::InvalidVcpus { .. }), "{err}");
    }

    #[test]
    fn more_possible_vcpus_than_apic_ids_is_refused() {
        let err = build_tables(&AcpiConfig {
            vcpus: 1,
            max_vcpus: layout::MAX_VCPUS + 1,
        })
        .unwrap_err();

        assert!(matches!(err, AcpiError::InvalidVcpus { .. }), "{err}");
    }

    #[test]
    fn table_past_the_area_end_is_refused() {
        let mut placer = Placer::new(0x1000, 0x1040);
        placer.place(vec![b'A'; 0x31]).unwrap();

        let err = placer.place(vec![b'B'; 0x10]).unwrap_err();

        assert!(
            matches!(
                err,
                AcpiError::PlaceTable {
                    end: 0x1040..,
                    limit: 0x1040,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn placed_tables_are_aligned() {
        let mut placer = Placer::new(0x1001, 0x2000);

        let first = placer.place(vec![b'A'; 37]).unwrap();
        let second = placer.place(vec![b'B'; 36]).unwrap();

        assert_eq!(first.address.0, 0x1008);
        assert_eq!(second.address.0, 0x1030);
    }

    #[test]
    fn written_tables_read_back_from_guest_memory() {
        let mem = crate::engine::memory::test_ram(0, 0x10_0000);

        let rsdp_address = create_acpi_tables(&mem, &CFG).unwrap();

        assert_eq!(rsdp_address, GuestAddress(0xe_0000));
        let mut signature = [0u8; 8];
        mem.read_slice(&mut signature, rsdp_address).unwrap();
        assert_eq!(&signature, b"RSD PTR ");
        for table in build_tables(&CFG).unwrap().tables() {
            let mut bytes = vec![0u8; table.bytes.len()];
            mem.read_slice(&mut bytes, table.address).unwrap();
            assert_eq!(bytes, table.bytes);
        }
    }

    #[test]
    fn memory_without_the_bios_area_is_refused() {
        let mem = crate::engine::memory::test_ram(0, 0x1000);

        let err = create_acpi_tables(&mem, &CFG).unwrap_err();

        assert!(
            matches!(
                &err,
                AcpiError::WriteTable {
                    address: 0xe_0000,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn every_table_disassembles_without_errors() {
        if !crate::prereq::met(&[crate::prereq::IASL]) {
            return;
        }
        let tables = build_tables(&CFG).unwrap();

        for table in tables.tables() {
            let dsl = iasl::disassemble(&table.bytes);

            let name = String::from_utf8_lossy(&table.signature).into_owned();
            assert!(dsl.contains(&format!("\"{name}\"")), "{name}:\n{dsl}");
        }
    }
}
