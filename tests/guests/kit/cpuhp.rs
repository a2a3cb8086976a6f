//! The vmux CPU hotplug registers (port 0x620, docs/platform.md) from the guest's side: the
//! same protocol the DSDT's `\_SB_.CPUS.CSCN` method runs for an ACPI OS.
//!
//! Write a slot number (= APIC id) to the selector (dword at +0), then read or write the slot's
//! flags byte at +4: bit 0 enabled, bit 1 inserting, bit 2 removing; writing bit 1 or 2
//! acknowledges the notice, writing bit 3 ejects the slot. After a GED CPU hotplug event
//! (bit 1) the guest scans every slot, starts the inserted CPUs and ejects the removed ones.
//! Only the boot CPU touches the registers (select-then-access is not atomic).

use crate::kit::cpu::{inb, inl, outb, outl};

/// Base port of the register block.
pub const PORT: u16 = 0x620;
const FLAGS: u16 = PORT + 4;
/// Flags bit: the slot is plugged.
pub const ENABLED: u8 = 1 << 0;
/// Flags bit: the slot was inserted and not acknowledged yet.
pub const INSERTING: u8 = 1 << 1;
/// Flags bit: the host asks for the slot's removal, not acknowledged yet.
pub const REMOVING: u8 = 1 << 2;
/// Flags bit (write): eject the slot.
pub const EJECT: u8 = 1 << 3;

/// What a scan found for one slot (already acknowledged).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The slot was plugged: start its CPU.
    Inserted,
    /// The host wants the slot removed: stop its CPU, then [`eject`] it.
    RemoveRequested,
}

/// Whether the registers exist: the selector reads back what was written (an unclaimed port
/// reads as all ones, e.g. under QEMU).
pub fn present() -> bool {
    outl(PORT, 0);
    inl(PORT) == 0
}

fn select(slot: u32) {
    outl(PORT, slot);
}

/// The flags byte of `slot`.
pub fn flags(slot: u32) -> u8 {
    select(slot);
    inb(FLAGS)
}

/// Whether `slot` is plugged.
pub fn is_enabled(slot: u32) -> bool {
    flags(slot) & ENABLED != 0
}

/// Visits slots `0..slots`; for each pending insertion or removal, acknowledges it and calls
/// `on_notice(slot, notice)`.
pub fn scan(slots: u32, mut on_notice: impl FnMut(u32, Notice)) {
    for slot in 0..slots {
        let flags = flags(slot);
        if flags & INSERTING != 0 {
            select(slot);
            outb(FLAGS, INSERTING);
            on_notice(slot, Notice::Inserted);
        }
        if flags & REMOVING != 0 {
            select(slot);
            outb(FLAGS, REMOVING);
            on_notice(slot, Notice::RemoveRequested);
        }
    }
}

/// Ejects `slot`: the host stops that CPU for good (it must be parked already).
pub fn eject(slot: u32) {
    select(slot);
    outb(FLAGS, EJECT);
}
