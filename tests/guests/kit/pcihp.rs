//! vmux's PCI hotplug registers (port 0x640, docs/platform.md) from the guest's side: the
//! registers the DSDT's `\_SB_.PCI0.PCNT` and `\_SB_.PHPR.PCEJ` methods drive for an ACPI OS.
//!
//! After a GED PCI hotplug event (bit 2) the guest reads the slots plugged since the last read
//! (`PCIU`, +0) and the slots the host wants removed (`PCID`, +4); both reads clear them. It
//! brings up each plugged slot's device, and for each slot to remove it stops using the device
//! and writes the slot's bit to `B0EJ` (+8), which unplugs it. `PSEG` (+12) selects the PCI
//! segment; vmux has only segment 0.

use crate::kit::cpu::{inl, outl};

/// Base port of the register block.
pub const PORT: u16 = 0x640;
const SLOTS_UP: u16 = PORT;
const SLOTS_DOWN: u16 = PORT + 4;
const EJECT: u16 = PORT + 8;
const SEGMENT: u16 = PORT + 12;

/// Whether the registers exist: the segment selector reads back what was written (an
/// unclaimed port reads as all ones).
pub fn present() -> bool {
    outl(SEGMENT, 0);
    inl(SEGMENT) == 0
}

/// Slots plugged since the last call, as a bitmap (bit n = slot n).
pub fn take_plugged() -> u32 {
    inl(SLOTS_UP)
}

/// Slots the host wants removed since the last call, as a bitmap.
pub fn take_unplug_requests() -> u32 {
    inl(SLOTS_DOWN)
}

/// Ejects `slot` (its device must be quiet: reset, no request in flight).
pub fn eject(slot: u8) {
    if slot < 32 {
        outl(EJECT, 1 << slot);
    }
}

/// The slots set in `bitmap`, ascending.
pub fn slots(bitmap: u32) -> impl Iterator<Item = u8> {
    (0..32u8).filter(move |s| bitmap & (1 << s) != 0)
}
