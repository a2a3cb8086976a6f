//! Periodic timers and inter-processor interrupts that count: the 8254 PIT (channel 0, rate
//! generator, IOAPIC pin 0, [`idt::VECTOR_PIT`]), the local APIC timer (periodic,
//! [`idt::VECTOR_LAPIC_TIMER`]) and a fixed IPI ([`idt::VECTOR_IPI`]) each CPU counts.
//!
//! The handlers only bump atomics (kit rule: handlers store, the main loop acts); the counters
//! live in guest memory like everything else, so a VM saved and restored keeps counting from
//! where it was.

use crate::kit::apic;
use crate::kit::cpu::outb;
use crate::kit::idt;
use core::sync::atomic::{AtomicU64, Ordering};

/// PIT input clock, Hz.
const PIT_HZ: u64 = 1_193_182;
/// The PIT's interrupt line (ISA IRQ 0, IOAPIC pin 0: vmux lists no override).
pub const PIT_GSI: u32 = 0;
const LAPIC_LVT_TIMER: u64 = 0x320;
const LAPIC_TIMER_INITIAL: u64 = 0x380;
const LAPIC_TIMER_DIVIDE: u64 = 0x3e0;
const LVT_PERIODIC: u32 = 1 << 17;
/// Divide configuration: divide by 1.
const DIVIDE_BY_1: u32 = 0b1011;

/// PIT interrupts taken (on the boot CPU).
pub static PIT_TICKS: AtomicU64 = AtomicU64::new(0);
/// Local APIC timer interrupts taken (on the boot CPU).
pub static LAPIC_TICKS: AtomicU64 = AtomicU64::new(0);
/// [`idt::VECTOR_IPI`] interrupts taken, per local APIC id.
pub static IPIS: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

fn lapic_write(offset: u64, value: u32) {
    // SAFETY: a local APIC register address, identity mapped, no Rust data behind it.
    unsafe { ((apic::LAPIC_BASE + offset) as usize as *mut u32).write_volatile(value) }
}

/// Programs PIT channel 0 to interrupt `hz` times a second on this CPU.
pub fn start_pit(hz: u64) {
    let divisor = (PIT_HZ / hz.max(19)).min(0xffff) as u16;
    outb(0x43, 0b0011_0100); // channel 0, lobyte/hibyte, mode 2 (rate generator), binary
    outb(0x40, divisor as u8);
    outb(0x40, (divisor >> 8) as u8);
    apic::ioapic_route(PIT_GSI, idt::VECTOR_PIT, apic::lapic_id());
}

/// Starts this CPU's local APIC timer, periodic, every `ns` nanoseconds (KVM's APIC timer
/// counts at 1 GHz).
pub fn start_lapic_timer(ns: u32) {
    lapic_write(LAPIC_TIMER_DIVIDE, DIVIDE_BY_1);
    lapic_write(LAPIC_LVT_TIMER, u32::from(idt::VECTOR_LAPIC_TIMER) | LVT_PERIODIC);
    lapic_write(LAPIC_TIMER_INITIAL, ns);
}

/// Counts one interrupt of `vector` (called by the IDT dispatcher).
pub fn on_interrupt(vector: u8) {
    let counter = match vector {
        v if v == idt::VECTOR_PIT => &PIT_TICKS,
        v if v == idt::VECTOR_LAPIC_TIMER => &LAPIC_TICKS,
        _ => match IPIS.get(apic::lapic_id() as usize) {
            Some(counter) => counter,
            None => return,
        },
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// IPIs taken by the CPU with local APIC id `id`.
pub fn ipis(id: u32) -> u64 {
    IPIS.get(id as usize)
        .map_or(0, |c| c.load(Ordering::Relaxed))
}
