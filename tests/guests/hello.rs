//! `hello`: the smallest useful guest. Prints one line, then powers off through ACPI S5
//! (falling back to debug exit 0 where S5 is not implemented, e.g. QEMU microvm).

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

fn guest_main(_boot: &kit::boot::BootInfo) -> ! {
    println!("hello from the vmux guest kit");
    kit::power::power_off()
}
