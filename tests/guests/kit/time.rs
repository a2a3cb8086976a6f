//! Time from the TSC, calibrated against the 8254 PIT.
//!
//! `kit_entry` records the TSC at boot; `calibrate` measures TSC ticks per millisecond over
//! 10 ms of PIT counting (about 200 counter reads of three port accesses each, every one a VM
//! exit). Before calibration, or when there is no PIT, delays assume CPUID's base clock or
//! [`FALLBACK_TICKS_PER_MS`].

use crate::kit::cpu::{cpuid, inb, outb, rdtsc};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// PIT input clock, Hz.
const PIT_HZ: u64 = 1_193_182;
/// Calibration window, ms.
const CALIBRATION_MS: u64 = 10;
/// Assumed rate when nothing better is known (3 GHz: delays err on the long side on slower
/// machines, which is the safe direction for hardware waits).
pub const FALLBACK_TICKS_PER_MS: u64 = 3_000_000;

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);
static CALIBRATED: AtomicBool = AtomicBool::new(false);

/// Remembers "now" as boot time. Called first thing by `kit_entry`.
pub fn record_boot() {
    BOOT_TSC.store(rdtsc(), Ordering::Relaxed);
}

/// TSC ticks per millisecond: measured, else CPUID leaf 0x16's base clock, else the fallback.
pub fn ticks_per_ms() -> u64 {
    let measured = TICKS_PER_MS.load(Ordering::Relaxed);
    if measured != 0 {
        return measured;
    }
    if cpuid(0).0 >= 0x16 {
        let base_mhz = u64::from(cpuid(0x16).0 & 0xffff);
        if base_mhz != 0 {
            return base_mhz * 1000;
        }
    }
    FALLBACK_TICKS_PER_MS
}

/// Whether `ticks_per_ms` comes from a PIT measurement.
pub fn is_calibrated() -> bool {
    CALIBRATED.load(Ordering::Relaxed)
}

/// Measures the TSC rate against the PIT; returns ticks per ms, or `None` when no PIT
/// answered (the rate then stays an estimate).
///
/// Uses channel 0 in mode 0 (one-shot, so it stops interrupting once it has counted down) and
/// reads its counter with latch commands. Channel 2 would need the gate in port 0x61, which
/// QEMU microvm does not have; KVM's in-kernel PIT (vmux) and QEMU's both support this.
pub fn calibrate() -> Option<u64> {
    let window = PIT_HZ * CALIBRATION_MS / 1000;
    outb(0x43, 0b0011_0000); // channel 0, lobyte/hibyte, mode 0, binary
    outb(0x40, 0); // count 0 = 65536 ticks (55 ms): longer than the window
    outb(0x40, 0);
    let first = read_pit_channel0();
    let start = rdtsc();
    let mut counted = 0u64;
    let mut previous = first;
    // Bounded by reads so a missing PIT (a counter that never moves) cannot hang boot.
    for _ in 0..100_000 {
        let now = read_pit_channel0();
        counted += u64::from(previous.wrapping_sub(now));
        previous = now;
        if counted >= window {
            let elapsed = rdtsc().wrapping_sub(start);
            // Scale to the ticks actually counted (the last read overshoots the window).
            let per_ms = elapsed * PIT_HZ / counted / 1000;
            if per_ms == 0 {
                return None;
            }
            TICKS_PER_MS.store(per_ms, Ordering::Relaxed);
            CALIBRATED.store(true, Ordering::Relaxed);
            return Some(per_ms);
        }
    }
    None
}

fn read_pit_channel0() -> u16 {
    outb(0x43, 0b0000_0000); // latch channel 0's count
    let low = inb(0x40);
    let high = inb(0x40);
    u16::from_le_bytes([low, high])
}

/// TSC ticks in `us` microseconds.
pub fn ticks_from_us(us: u64) -> u64 {
    us.saturating_mul(ticks_per_ms()) / 1000
}

/// Milliseconds since `record_boot`.
pub fn ms_since_boot() -> u64 {
    rdtsc().wrapping_sub(BOOT_TSC.load(Ordering::Relaxed)) / ticks_per_ms().max(1)
}

/// Busy-waits `us` microseconds.
pub fn delay_us(us: u64) {
    let deadline = Deadline::after_us(us);
    while !deadline.passed() {
        core::hint::spin_loop();
    }
}

/// A point in TSC time.
#[derive(Clone, Copy)]
pub struct Deadline {
    start: u64,
    ticks: u64,
}

impl Deadline {
    /// `us` microseconds from now.
    pub fn after_us(us: u64) -> Deadline {
        Deadline {
            start: rdtsc(),
            ticks: ticks_from_us(us),
        }
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        rdtsc().wrapping_sub(self.start) >= self.ticks
    }
}
