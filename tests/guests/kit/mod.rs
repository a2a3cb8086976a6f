//! The vmux guest kit: what every guest program in tests/guests/ (and the demo guest in
//! assets/demo/) shares, included with `#[path = "kit/mod.rs"] mod kit;`.
//!
//! A program is a `#![no_std]` `#![no_main]` crate built by build.rs with the host `rustc`
//! (no SSE, static, linked at 1 MiB by tests/guests/link.ld). It defines
//! `fn guest_main(boot: &kit::boot::BootInfo) -> !`, which `kit_entry` calls once the CPU is
//! set up: kit GDT and stack (kit/entry.rs), IDT with exception reporting (kit/idt.rs), COM1
//! initialised (kit/serial.rs). Everything else is opt-in, so a program that only prints pays
//! only for printing (every port access is a VM exit). tests/guests/README.md lists the
//! programs and the exact lines they print.

#![allow(dead_code)]

pub mod acpi;
pub mod apic;
pub mod balloon;
pub mod boot;
pub mod console;
pub mod cpu;
pub mod cpuhp;
pub mod entry;
pub mod ged;
pub mod idt;
pub mod line;
pub mod mem;
pub mod pci;
pub mod pcihp;
pub mod phys;
pub mod power;
pub mod serial;
pub mod smp;
pub mod sync;
pub mod time;
pub mod timer;
pub mod virtio;

use core::panic::PanicInfo;

/// Called by the entry code (kit/entry.rs) on the kit stack with .bss zeroed: `zero_page` is
/// RSI at `_start` (vmux), `pvh_start_info` is EBX at the PVH entry (QEMU); either may be 0.
#[unsafe(no_mangle)]
extern "C" fn kit_entry(zero_page: u64, pvh_start_info: u64) -> ! {
    time::record_boot();
    idt::init();
    serial::init();
    let boot = boot::BootInfo::new(zero_page, pvh_start_info);
    crate::guest_main(&boot)
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    // Only the location: formatting the message could pull in core's SSE code (console.rs).
    match info.location() {
        Some(at) => console::print_unlocked(format_args!(
            "\npanic at {}:{}\n",
            console::Ascii(at.file().as_bytes()),
            console::Dec(u64::from(at.line())),
        )),
        None => console::print_unlocked(format_args!("\npanic\n")),
    }
    power::debug_exit(power::EXIT_PANIC)
}
