//! Ending the VM: ACPI S5 power off, reset, debug exit, triple fault.
//!
//! vmux implements the ACPI sleep control register (0x600), the ACPI reset register (0x602),
//! the i8042 reset and the debug-exit port (0xf4). Where a write is not claimed (QEMU microvm
//! has no 0x600 and may have no i8042), each function falls through to the next mechanism.

use crate::kit::cpu::{halt_forever, outb};
use crate::kit::{idt, time};
use core::arch::asm;

/// Debug-exit port (QEMU `isa-debug-exit,iobase=0xf4`): value `v` ends the VM, status
/// `(v << 1) | 1`.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Debug-exit code: the program finished normally without powering off (or S5 was ignored).
pub const EXIT_OK: u8 = 0;
/// Debug-exit code: the program found a failure it reports on serial.
pub const EXIT_FAILURE: u8 = 1;
/// Debug-exit code: a Rust panic.
pub const EXIT_PANIC: u8 = 2;
/// Debug-exit code: an unexpected CPU exception.
pub const EXIT_EXCEPTION: u8 = 3;

const ACPI_SLEEP_CONTROL: u16 = 0x600;
/// SLP_EN (bit 5) | SLP_TYP 5 (bits 2..4): enter S5.
const SLEEP_S5: u8 = (1 << 5) | (5 << 2);
const ACPI_RESET: u16 = 0x602;
const I8042_COMMAND: u16 = 0x64;
/// How long a power-off or reset write gets to take effect before the next mechanism.
const GRACE_US: u64 = 20_000;

/// Writes `code` to the debug-exit port; halts if nothing claims it.
pub fn debug_exit(code: u8) -> ! {
    outb(DEBUG_EXIT_PORT, code);
    halt_forever()
}

/// Powers off through ACPI S5; if still running after a grace period, debug exit 0.
pub fn power_off() -> ! {
    outb(ACPI_SLEEP_CONTROL, SLEEP_S5);
    time::delay_us(GRACE_US);
    debug_exit(EXIT_OK)
}

/// Resets: i8042 pulse, then the ACPI reset register, then a triple fault.
pub fn reset() -> ! {
    outb(I8042_COMMAND, 0xfe);
    time::delay_us(GRACE_US);
    outb(ACPI_RESET, 0x01);
    time::delay_us(GRACE_US);
    triple_fault()
}

/// Triple-faults this CPU: a zero-limit IDT, then an invalid opcode that cannot be delivered.
pub fn triple_fault() -> ! {
    idt::load_empty();
    // SAFETY: ending the machine is the point; the instruction never returns.
    unsafe { asm!("ud2", options(nomem, nostack, noreturn)) }
}
