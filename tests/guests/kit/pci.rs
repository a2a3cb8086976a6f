//! PCI configuration space from the guest side: mechanism #1 (ports 0xCF8/0xCFC) and ECAM
//! (the window the ACPI MCFG names), bus 0 enumeration, BARs and the capability list.
//!
//! vmux has one root bus with single-function devices (docs/platform.md), so only bus 0,
//! function 0 of each slot is looked at.

use crate::kit::acpi::Rsdp;
use crate::kit::boot::BootInfo;
use crate::kit::cpu::{inl, outl};
use crate::kit::phys;
use core::arch::asm;
use core::fmt;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;
/// Command register bits: memory space decoding, bus mastering.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Command register bit: the device may do DMA and send MSIs.
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Capability id of MSI-X.
pub const CAP_MSIX: u8 = 0x11;
/// Capability id of vendor-specific capabilities (virtio's).
pub const CAP_VENDOR: u8 = 0x09;

/// How configuration space is reached.
#[derive(Clone, Copy)]
pub enum Config {
    /// Mechanism #1 through ports 0xCF8/0xCFC (256 bytes per function).
    Ports,
    /// ECAM at this physical address (bus 0), 4 KiB per function.
    Ecam(u64),
}

fn port_address(slot: u8, offset: u16) -> u32 {
    (1 << 31) | (u32::from(slot) << 11) | u32::from(offset & 0xfc)
}

fn outw(port: u16, value: u16) {
    // SAFETY: port I/O has no memory effects visible to Rust (as kit/cpu.rs's outb).
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
    }
}

impl Config {
    /// ECAM from the MCFG entry for segment 0 bus 0, if the firmware tables have one inside
    /// the identity map.
    pub fn from_acpi(boot: &BootInfo) -> Option<Config> {
        let mcfg = Rsdp::find(boot.rsdp())?.find_table(b"MCFG")?;
        // Header (36 bytes), 8 reserved bytes, then 16-byte entries.
        let entries = mcfg.bytes.get(44..)?;
        entries.chunks_exact(16).find_map(|entry| {
            let base = phys::u64_at(entry, 0);
            let segment = phys::le(entry, 8, 2);
            let start_bus = phys::u8_at(entry, 10);
            let ecam_end = base.checked_add(1 << 20)?;
            (segment == 0 && start_bus == 0 && base != 0 && ecam_end <= phys::MAPPED_END)
                .then_some(Config::Ecam(base))
        })
    }

    fn ecam(base: u64, slot: u8, offset: u16) -> u64 {
        base + (u64::from(slot) << 15) + u64::from(offset)
    }

    /// Reads the dword at `offset` (rounded down to a multiple of 4) of slot `slot`.
    pub fn read32(&self, slot: u8, offset: u16) -> u32 {
        match *self {
            Config::Ports => {
                outl(CONFIG_ADDRESS, port_address(slot, offset));
                inl(CONFIG_DATA)
            }
            // SAFETY: the ECAM window is MMIO inside the identity map (checked in from_acpi).
            Config::Ecam(base) => unsafe {
                (Self::ecam(base, slot, offset & !3) as usize as *const u32).read_volatile()
            },
        }
    }

    /// Writes the dword at `offset` (a multiple of 4) of slot `slot`.
    pub fn write32(&self, slot: u8, offset: u16, value: u32) {
        match *self {
            Config::Ports => {
                outl(CONFIG_ADDRESS, port_address(slot, offset));
                outl(CONFIG_DATA, value);
            }
            // SAFETY: as in read32.
            Config::Ecam(base) => unsafe {
                (Self::ecam(base, slot, offset & !3) as usize as *mut u32).write_volatile(value)
            },
        }
    }

    /// Reads the 16-bit register at `offset` (even).
    pub fn read16(&self, slot: u8, offset: u16) -> u16 {
        (self.read32(slot, offset) >> (8 * (offset & 2))) as u16
    }

    /// Reads the byte at `offset`.
    pub fn read8(&self, slot: u8, offset: u16) -> u8 {
        (self.read32(slot, offset) >> (8 * (offset & 3))) as u8
    }

    /// Writes the 16-bit register at `offset` (even) without touching its neighbour.
    pub fn write16(&self, slot: u8, offset: u16, value: u16) {
        match *self {
            Config::Ports => {
                outl(CONFIG_ADDRESS, port_address(slot, offset));
                outw(CONFIG_DATA + (offset & 2), value);
            }
            // SAFETY: as in read32.
            Config::Ecam(base) => unsafe {
                (Self::ecam(base, slot, offset) as usize as *mut u16).write_volatile(value)
            },
        }
    }

    /// Vendor and device id of slot `slot`, or `None` when the slot is empty.
    pub fn ids(&self, slot: u8) -> Option<(u16, u16)> {
        let ids = self.read32(slot, 0);
        (ids & 0xffff != 0xffff).then_some((ids as u16, (ids >> 16) as u16))
    }

    /// The guest-physical address BAR `index` decodes at (both halves of a 64-bit BAR), or
    /// `None` for an I/O BAR or an index past the last.
    pub fn bar(&self, slot: u8, index: u8) -> Option<u64> {
        if index > 5 {
            return None;
        }
        let offset = 0x10 + 4 * u16::from(index);
        let low = self.read32(slot, offset);
        if low & 1 != 0 {
            return None;
        }
        let high = if low & 0b110 == 0b100 && index < 5 {
            u64::from(self.read32(slot, offset + 4)) << 32
        } else {
            0
        };
        Some(high | u64::from(low & !0xf))
    }

    /// Turns on memory decoding and bus mastering for slot `slot`.
    pub fn enable(&self, slot: u8) {
        let command = self.read16(slot, 0x04);
        self.write16(slot, 0x04, command | COMMAND_MEMORY | COMMAND_BUS_MASTER);
    }

    /// The capabilities of slot `slot`: (offset, id) pairs, at most 48 (a looping list ends).
    pub fn capabilities(&self, slot: u8) -> Capabilities<'_> {
        let has_list = self.read16(slot, 0x06) & (1 << 4) != 0;
        Capabilities {
            config: self,
            slot,
            next: if has_list { self.read8(slot, 0x34) & 0xfc } else { 0 },
            left: 48,
        }
    }
}

/// Iterator over a function's capability list.
pub struct Capabilities<'a> {
    config: &'a Config,
    slot: u8,
    next: u8,
    left: u8,
}

impl Iterator for Capabilities<'_> {
    type Item = (u8, u8);

    fn next(&mut self) -> Option<(u8, u8)> {
        if self.next < 0x40 || self.left == 0 {
            return None;
        }
        self.left -= 1;
        let offset = self.next;
        let header = self.config.read16(self.slot, u16::from(offset));
        self.next = ((header >> 8) as u8) & 0xfc;
        Some((offset, header as u8))
    }
}

/// A bus-0 function address printed as `lspci` does: `00:01.0`.
#[derive(Clone, Copy)]
pub struct Bdf(pub u8);

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let text = [
            b'0',
            b'0',
            b':',
            HEX[usize::from(self.0 >> 4)],
            HEX[usize::from(self.0 & 0xf)],
            b'.',
            b'0',
        ];
        // SAFETY: every byte above is ASCII.
        f.write_str(unsafe { core::str::from_utf8_unchecked(&text) })
    }
}
