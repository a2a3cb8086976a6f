//! Reading the ACPI tables: find the RSDP, check checksums, walk the XSDT (or RSDT), read the
//! MADT's local APICs and the FADT's DSDT pointer.
//!
//! Every pointer and length comes from tables another program built, so each is checked
//! against the identity map (kit/phys.rs) and a size limit before it is read.

use crate::kit::phys;

/// Where the BIOS area that may hold the RSDP starts.
const RSDP_SCAN_START: u64 = 0xe_0000;
/// End (exclusive) of the RSDP scan.
const RSDP_SCAN_END: u64 = 0x10_0000;
/// Largest table accepted, bytes (vmux's are a few KiB; a wild length must not be trusted).
const MAX_TABLE_LEN: u32 = 1 << 20;
/// Length of the common table header (signature .. creator revision).
pub const HEADER_LEN: usize = 36;

/// Sum of `bytes` modulo 256 is zero: the ACPI checksum rule.
pub fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)) == 0
}

/// The RSDP and what it says.
#[derive(Clone, Copy)]
pub struct Rsdp {
    /// Physical address.
    pub addr: u64,
    /// 0 for ACPI 1.0 (RSDT only), 2 and up for the extended structure (XSDT).
    pub revision: u8,
    /// RSDT address (32-bit).
    pub rsdt: u64,
    /// XSDT address (0 when revision < 2).
    pub xsdt: u64,
    /// Checksum of the first 20 bytes is right.
    pub v1_checksum_ok: bool,
    /// Extended checksum (whole structure) is right; `None` for revision 0.
    pub extended_checksum_ok: Option<bool>,
}

impl Rsdp {
    /// Reads and checks the RSDP at `addr` (which must start with "RSD PTR ").
    pub fn at(addr: u64) -> Option<Rsdp> {
        let v1 = phys::bytes(addr, 20)?;
        if !v1.starts_with(b"RSD PTR ") {
            return None;
        }
        let revision = phys::u8_at(v1, 15);
        let (xsdt, extended_checksum_ok) = if revision >= 2 {
            let full = phys::bytes(addr, 36)?;
            let len = phys::u32_at(full, 20).clamp(36, 1024) as usize;
            let ok = phys::bytes(addr, len).is_some_and(checksum_ok);
            (phys::u64_at(full, 24), Some(ok))
        } else {
            (0, None)
        };
        Some(Rsdp {
            addr,
            revision,
            rsdt: u64::from(phys::u32_at(v1, 16)),
            xsdt,
            v1_checksum_ok: checksum_ok(v1),
            extended_checksum_ok,
        })
    }

    /// Finds the RSDP: at `hint` (what the loader passed) if that holds one, else by scanning
    /// 0xe0000..0xfffff on 16-byte boundaries.
    pub fn find(hint: Option<u64>) -> Option<Rsdp> {
        if let Some(rsdp) = hint.and_then(Rsdp::at) {
            return Some(rsdp);
        }
        let area = phys::bytes(RSDP_SCAN_START, (RSDP_SCAN_END - RSDP_SCAN_START) as usize)?;
        (0..area.len())
            .step_by(16)
            .filter(|&at| {
                area.get(at..)
                    .is_some_and(|rest| rest.starts_with(b"RSD PTR "))
            })
            .find_map(|at| Rsdp::at(RSDP_SCAN_START + at as u64))
    }

    /// The root table (XSDT when there is one, else RSDT).
    pub fn root(&self) -> Option<Table> {
        if self.xsdt != 0 {
            Table::at(self.xsdt)
        } else {
            Table::at(self.rsdt)
        }
    }

    /// Every table the root table points to, in order.
    pub fn tables(&self) -> Tables {
        let (body, entry_size) = match self.root() {
            Some(root) => (root.body(), if root.signature == *b"XSDT" { 8 } else { 4 }),
            None => (&[][..], 8),
        };
        Tables {
            body,
            entry_size,
            next: 0,
        }
    }

    /// The first table with `signature`.
    pub fn find_table(&self, signature: &[u8; 4]) -> Option<Table> {
        self.tables().find(|t| t.signature == *signature)
    }
}

/// One ACPI table (header + body) in guest memory.
#[derive(Clone, Copy)]
pub struct Table {
    /// Physical address.
    pub addr: u64,
    /// Four-character signature ("APIC", "FACP", ...).
    pub signature: [u8; 4],
    /// The whole table, header included.
    pub bytes: &'static [u8],
}

impl Table {
    /// The table at `addr`, if its header is readable and its length is sane.
    pub fn at(addr: u64) -> Option<Table> {
        let header = phys::bytes(addr, HEADER_LEN)?;
        let len = phys::u32_at(header, 4);
        if (len as usize) < HEADER_LEN || len > MAX_TABLE_LEN {
            return None;
        }
        let bytes = phys::bytes(addr, len as usize)?;
        let signature = (phys::u32_at(header, 0)).to_le_bytes();
        Some(Table {
            addr,
            signature,
            bytes,
        })
    }

    /// Whether the table's checksum is right.
    pub fn checksum_ok(&self) -> bool {
        checksum_ok(self.bytes)
    }

    /// Everything after the header.
    pub fn body(&self) -> &'static [u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or(&[])
    }

    /// For a FADT: the DSDT (X_DSDT when present and non-zero, else the 32-bit DSDT field).
    pub fn fadt_dsdt(&self) -> Option<Table> {
        let x_dsdt = if self.bytes.len() >= 148 {
            phys::u64_at(self.bytes, 140)
        } else {
            0
        };
        let dsdt = if x_dsdt != 0 {
            x_dsdt
        } else {
            u64::from(phys::u32_at(self.bytes, 40))
        };
        Table::at(dsdt)
    }

    /// For a MADT: its processor entries (local APIC and x2APIC).
    pub fn madt_cpus(&self) -> MadtCpus {
        // The MADT body starts with the local APIC address (u32) and flags (u32).
        MadtCpus {
            entries: self.bytes.get(HEADER_LEN + 8..).unwrap_or(&[]),
            next: 0,
        }
    }
}

/// Iterator over the root table's entries.
pub struct Tables {
    body: &'static [u8],
    entry_size: usize,
    next: usize,
}

impl Iterator for Tables {
    type Item = Table;
    fn next(&mut self) -> Option<Table> {
        while self.next + self.entry_size <= self.body.len() {
            let addr = phys::le(self.body, self.next, self.entry_size);
            self.next += self.entry_size;
            if let Some(table) = Table::at(addr) {
                return Some(table);
            }
        }
        None
    }
}

/// A processor listed in the MADT.
#[derive(Clone, Copy)]
pub struct MadtCpu {
    /// Local APIC id (x2APIC id for type 9 entries).
    pub apic_id: u32,
    /// MADT flags: bit 0 enabled, bit 1 online capable.
    pub flags: u32,
}

impl MadtCpu {
    /// Present and usable at boot.
    pub fn enabled(&self) -> bool {
        self.flags & 1 != 0
    }
    /// Not present at boot but may be hot-added.
    pub fn online_capable(&self) -> bool {
        !self.enabled() && self.flags & 2 != 0
    }
}

/// Iterator over a MADT's processor entries.
pub struct MadtCpus {
    entries: &'static [u8],
    next: usize,
}

impl Iterator for MadtCpus {
    type Item = MadtCpu;
    fn next(&mut self) -> Option<MadtCpu> {
        loop {
            let at = self.next;
            let kind = *self.entries.get(at)?;
            let len = usize::from(*self.entries.get(at + 1)?);
            // A zero length would loop forever; a short or overlong entry is corrupt.
            if len < 2 || at + len > self.entries.len() {
                return None;
            }
            self.next += len;
            let entry = self.entries.get(at..at + len)?;
            match (kind, len) {
                (0, 8..) => {
                    return Some(MadtCpu {
                        apic_id: u32::from(phys::u8_at(entry, 3)),
                        flags: phys::u32_at(entry, 4),
                    });
                }
                (9, 16..) => {
                    return Some(MadtCpu {
                        apic_id: phys::u32_at(entry, 4),
                        flags: phys::u32_at(entry, 8),
                    });
                }
                _ => {}
            }
        }
    }
}
