//! The local APIC (0xfee00000), the IOAPIC (0xfec00000) and masking the legacy 8259 PICs.
//!
//! Device interrupts reach the kit only through the IOAPIC: each source's GSI is routed to a
//! fixed vector (kit/idt.rs) on the boot CPU, edge-triggered, active high, as
//! docs/platform.md describes.

use crate::kit::cpu::{outb, rdtsc};
use crate::kit::idt;

/// Local APIC MMIO base.
pub const LAPIC_BASE: u64 = 0xfee0_0000;
/// IOAPIC MMIO base.
pub const IOAPIC_BASE: u64 = 0xfec0_0000;

const LAPIC_ID: u64 = 0x020;
const LAPIC_TPR: u64 = 0x080;
const LAPIC_EOI: u64 = 0x0b0;
const LAPIC_SVR: u64 = 0x0f0;
const LAPIC_ESR: u64 = 0x280;
const LAPIC_ICR_LOW: u64 = 0x300;
const LAPIC_ICR_HIGH: u64 = 0x310;
const LAPIC_LVT_LINT0: u64 = 0x350;
const LVT_MASKED: u32 = 1 << 16;
const ICR_DELIVERY_PENDING: u32 = 1 << 12;
const ICR_INIT: u32 = 0x4500; // INIT, assert
const ICR_STARTUP: u32 = 0x4600; // start-up IPI, assert; low byte = vector (page number)

fn mmio_read(addr: u64) -> u32 {
    // SAFETY: callers pass LAPIC/IOAPIC register addresses, which are identity mapped and
    // have no Rust-visible memory behind them.
    unsafe { (addr as usize as *const u32).read_volatile() }
}

fn mmio_write(addr: u64, value: u32) {
    // SAFETY: as in `mmio_read`.
    unsafe { (addr as usize as *mut u32).write_volatile(value) }
}

/// This CPU's local APIC id.
pub fn lapic_id() -> u32 {
    mmio_read(LAPIC_BASE + LAPIC_ID) >> 24
}

/// Software-enables this CPU's local APIC (spurious vector 0xff), accepts every priority, and
/// masks LINT0 so the 8259 cannot deliver through "virtual wire" (KVM resets the boot CPU's
/// LINT0 to ExtINT).
pub fn lapic_enable() {
    mmio_write(LAPIC_BASE + LAPIC_LVT_LINT0, LVT_MASKED);
    mmio_write(LAPIC_BASE + LAPIC_TPR, 0);
    mmio_write(
        LAPIC_BASE + LAPIC_SVR,
        0x100 | u32::from(idt::VECTOR_SPURIOUS),
    );
}

/// Signals end of interrupt to this CPU's local APIC.
pub fn eoi() {
    mmio_write(LAPIC_BASE + LAPIC_EOI, 0);
}

/// Masks both 8259 PICs (writes OCW1; harmless where there is no PIC: the ports ignore it).
pub fn mask_pic() {
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

/// Prepares this CPU to take device interrupts: PIC masked, local APIC on.
pub fn init_interrupts() {
    mask_pic();
    lapic_enable();
}

fn ioapic_write(register: u32, value: u32) {
    mmio_write(IOAPIC_BASE, register);
    mmio_write(IOAPIC_BASE + 0x10, value);
}

/// Routes `gsi` to `vector` on the CPU with local APIC id `dest`: fixed delivery, physical
/// destination, edge-triggered, active high, unmasked.
pub fn ioapic_route(gsi: u32, vector: u8, dest: u32) {
    ioapic_write(0x11 + 2 * gsi, dest << 24);
    ioapic_write(0x10 + 2 * gsi, u32::from(vector));
}

/// Why an IPI could not be sent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum IpiError {
    /// The previous IPI stayed "send pending" for ~100 ms worth of TSC ticks.
    Stuck,
}

fn wait_icr_idle() -> Result<(), IpiError> {
    let start = rdtsc();
    while mmio_read(LAPIC_BASE + LAPIC_ICR_LOW) & ICR_DELIVERY_PENDING != 0 {
        if rdtsc().wrapping_sub(start) > crate::kit::time::ticks_from_us(100_000) {
            return Err(IpiError::Stuck);
        }
        core::hint::spin_loop();
    }
    Ok(())
}

fn send_ipi(dest: u32, command: u32) -> Result<(), IpiError> {
    wait_icr_idle()?;
    mmio_write(LAPIC_BASE + LAPIC_ESR, 0);
    mmio_write(LAPIC_BASE + LAPIC_ICR_HIGH, dest << 24);
    mmio_write(LAPIC_BASE + LAPIC_ICR_LOW, command);
    wait_icr_idle()
}

/// Sends a fixed interrupt with `vector` to the CPU with local APIC id `dest`.
pub fn send_fixed(dest: u32, vector: u8) -> Result<(), IpiError> {
    // Fixed delivery, physical destination, assert.
    send_ipi(dest, 0x4000 | u32::from(vector))
}

/// Sends INIT to the CPU with local APIC id `dest`.
pub fn send_init(dest: u32) -> Result<(), IpiError> {
    send_ipi(dest, ICR_INIT)
}

/// Sends a start-up IPI: the CPU starts in real mode at `page * 0x1000`.
pub fn send_startup(dest: u32, page: u8) -> Result<(), IpiError> {
    send_ipi(dest, ICR_STARTUP | u32::from(page))
}
