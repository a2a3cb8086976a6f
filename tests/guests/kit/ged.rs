//! The vmux Generic Event Device: an event register at port 0x610 (read returns and clears the
//! pending bits) raised on GSI 5. Bit 3 is the power button, bit 1 CPU hotplug.
//!
//! The interrupt handler only collects bits; the program acts on them from its main loop.

use crate::kit::cpu::inl;
use crate::kit::{apic, idt};
use core::sync::atomic::{AtomicU32, Ordering};

/// GED event register port (4 bytes, read-to-clear).
pub const GED_PORT: u16 = 0x610;
/// GED interrupt line.
pub const GED_GSI: u32 = 5;
/// Event bit: CPU hotplug.
pub const EVENT_CPU_HOTPLUG: u32 = 1 << 1;
/// Event bit: PCI hotplug.
pub const EVENT_PCI_HOTPLUG: u32 = 1 << 2;
/// Event bit: power button pressed.
pub const EVENT_POWER_BUTTON: u32 = 1 << 3;

static PENDING: AtomicU32 = AtomicU32::new(0);

/// Routes GSI 5 to this CPU. Needs `apic::init_interrupts` first.
pub fn enable() {
    apic::ioapic_route(GED_GSI, idt::VECTOR_GED, apic::lapic_id());
    // An event raised before the route existed lost its edge; collect it now.
    on_interrupt();
}

/// The GED interrupt handler.
pub fn on_interrupt() {
    let events = inl(GED_PORT);
    // An unclaimed port reads as all ones (no GED on this machine, e.g. QEMU microvm).
    if events != u32::MAX {
        PENDING.fetch_or(events, Ordering::Relaxed);
    }
}

/// Takes the events collected since the last call.
pub fn take_events() -> u32 {
    PENDING.swap(0, Ordering::Relaxed)
}
