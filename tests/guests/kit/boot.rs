//! What the loader told us: the command line and the memory map, from either the Linux zero
//! page (vmux: RSI at `_start`) or a PVH `hvm_start_info` (QEMU: EBX at `kit_pvh_start`).
//!
//! The command line is copied into the kit at boot, because a loader may have put it in memory
//! that the program reuses (the AP trampoline page, for one).

use crate::kit::phys;
use crate::kit::sync::Once;

/// Longest command line kept, in bytes (Linux x86's `COMMAND_LINE_SIZE` less the NUL).
pub const CMDLINE_MAX: usize = 2047;

// Zero page (`struct boot_params`) offsets.
const ZP_ACPI_RSDP_ADDR: usize = 0x070;
const ZP_E820_ENTRIES: usize = 0x1e8;
const ZP_CMD_LINE_PTR: usize = 0x228;
const ZP_E820_TABLE: usize = 0x2d0;
const ZP_E820_MAX: usize = 128;
const ZP_SIZE: usize = 0x1000;

// `hvm_start_info` (xen/include/public/arch-x86/hvm/start_info.h) offsets.
const PVH_MAGIC: u32 = 0x336e_c578;
const PVH_VERSION: usize = 4;
const PVH_CMDLINE: usize = 24;
const PVH_RSDP: usize = 32;
const PVH_MEMMAP: usize = 40;
const PVH_MEMMAP_ENTRIES: usize = 48;
const PVH_SIZE: usize = 56;
const PVH_MEMMAP_MAX: usize = 128;

/// Where the boot information came from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A Linux zero page (vmux).
    ZeroPage(u64),
    /// A PVH start info structure (QEMU and other PVH loaders).
    Pvh(u64),
    /// Nothing usable: empty command line, no memory map.
    None,
}

/// One memory-map entry (e820 semantics: type 1 = usable RAM, 2 = reserved, 3 = ACPI data).
#[derive(Clone, Copy)]
pub struct Region {
    /// Start, bytes (physical address).
    pub start: u64,
    /// Size, bytes.
    pub size: u64,
    /// e820 type.
    pub kind: u32,
}

/// e820 type of usable RAM.
pub const RAM: u32 = 1;

struct Cmdline {
    bytes: [u8; CMDLINE_MAX],
    len: usize,
}

static CMDLINE: Once<Cmdline> = Once::new();

/// The boot information handed to `guest_main`.
pub struct BootInfo {
    source: Source,
}

impl BootInfo {
    /// Reads what the loader passed (`zero_page` from RSI, `pvh` from EBX; 0 = absent).
    pub fn new(zero_page: u64, pvh: u64) -> BootInfo {
        let source = if zero_page != 0 && phys::bytes(zero_page, ZP_SIZE).is_some() {
            Source::ZeroPage(zero_page)
        } else if let Some(info) = phys::bytes(pvh, PVH_SIZE)
            && phys::u32_at(info, 0) == PVH_MAGIC
        {
            Source::Pvh(pvh)
        } else {
            Source::None
        };
        let boot = BootInfo { source };
        let text = boot.loader_cmdline();
        let mut saved = Cmdline {
            bytes: [0; CMDLINE_MAX],
            len: text.len().min(CMDLINE_MAX),
        };
        for (to, from) in saved.bytes.iter_mut().zip(text) {
            *to = *from;
        }
        CMDLINE.set(saved);
        boot
    }

    /// Where the information came from.
    pub fn source(&self) -> Source {
        self.source
    }

    fn loader_cmdline(&self) -> &'static [u8] {
        match self.source {
            Source::ZeroPage(zp) => {
                let zero_page = phys::bytes(zp, ZP_SIZE).unwrap_or(&[]);
                phys::c_string(
                    u64::from(phys::u32_at(zero_page, ZP_CMD_LINE_PTR)),
                    CMDLINE_MAX,
                )
            }
            Source::Pvh(info) => {
                let info = phys::bytes(info, PVH_SIZE).unwrap_or(&[]);
                phys::c_string(phys::u64_at(info, PVH_CMDLINE), CMDLINE_MAX)
            }
            Source::None => &[],
        }
    }

    /// The command line (as copied at boot; empty when the loader passed none).
    pub fn cmdline(&self) -> &'static [u8] {
        CMDLINE
            .get()
            .and_then(|c| c.bytes.get(..c.len))
            .unwrap_or(&[])
    }

    /// The value of `key=value` on the command line (the last occurrence wins, as in Linux).
    /// A bare `key` gives an empty value.
    pub fn arg(&self, key: &str) -> Option<&'static [u8]> {
        find_arg(self.cmdline(), key.as_bytes())
    }

    /// Iterates over the memory map.
    pub fn memory_map(&self) -> MemoryMap {
        let (table, count, stride) = match self.source {
            Source::ZeroPage(zp) => {
                let zero_page = phys::bytes(zp, ZP_SIZE).unwrap_or(&[]);
                let count = usize::from(phys::u8_at(zero_page, ZP_E820_ENTRIES)).min(ZP_E820_MAX);
                (zp + ZP_E820_TABLE as u64, count, 20)
            }
            Source::Pvh(info) => {
                let bytes = phys::bytes(info, PVH_SIZE).unwrap_or(&[]);
                if phys::u32_at(bytes, PVH_VERSION) >= 1 {
                    let count = phys::u32_at(bytes, PVH_MEMMAP_ENTRIES) as usize;
                    (
                        phys::u64_at(bytes, PVH_MEMMAP),
                        count.min(PVH_MEMMAP_MAX),
                        24,
                    )
                } else {
                    (0, 0, 24)
                }
            }
            Source::None => (0, 0, 20),
        };
        let entries = phys::bytes(table, count * stride).unwrap_or(&[]);
        MemoryMap {
            entries,
            stride,
            next: 0,
        }
    }

    /// Usable RAM in bytes (sum of the type 1 regions).
    pub fn ram_bytes(&self) -> u64 {
        self.memory_map()
            .filter(|r| r.kind == RAM)
            .map(|r| r.size)
            .sum()
    }

    /// The RSDP address the loader passed, if it passed one.
    pub fn rsdp(&self) -> Option<u64> {
        let addr = match self.source {
            Source::ZeroPage(zp) => phys::u64_at(phys::bytes(zp, ZP_SIZE)?, ZP_ACPI_RSDP_ADDR),
            Source::Pvh(info) => phys::u64_at(phys::bytes(info, PVH_SIZE)?, PVH_RSDP),
            Source::None => 0,
        };
        (addr != 0).then_some(addr)
    }
}

/// Iterator over memory-map entries (e820 entries are 20 bytes, PVH ones 24), skipping empty
/// ones.
pub struct MemoryMap {
    entries: &'static [u8],
    stride: usize,
    next: usize,
}

impl Iterator for MemoryMap {
    type Item = Region;
    fn next(&mut self) -> Option<Region> {
        loop {
            let at = self.next;
            if at + self.stride > self.entries.len() {
                return None;
            }
            self.next += self.stride;
            let region = Region {
                start: phys::u64_at(self.entries, at),
                size: phys::u64_at(self.entries, at + 8),
                kind: phys::u32_at(self.entries, at + 16),
            };
            // Empty entries say nothing (QEMU's PVH map ends with one).
            if region.size != 0 {
                return Some(region);
            }
        }
    }
}

/// Finds `key` among space-separated `key=value` words; returns the value.
fn find_arg<'a>(cmdline: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut found = None;
    for word in cmdline.split(|&b| b == b' ') {
        match word.strip_prefix(key) {
            Some([]) => found = Some(&[][..]),
            Some([b'=', value @ ..]) => found = Some(value),
            _ => {}
        }
    }
    found
}

/// Parses a decimal number, or hex with a `0x` prefix.
pub fn parse_u64(text: &[u8]) -> Option<u64> {
    let (digits, radix) = match text {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        _ => (text, 10),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &c in digits {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        if u64::from(digit) >= radix {
            return None;
        }
        value = value.checked_mul(radix)?.checked_add(u64::from(digit))?;
    }
    Some(value)
}
