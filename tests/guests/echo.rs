//! `echo`: interrupt-driven serial input. Routes COM1 (GSI 4) through the IOAPIC, enables the
//! UART's received-data interrupt, and halts between interrupts. Echoes what is typed (with
//! backspace), and on Enter prints `you typed: <line>` and a new `> ` prompt. `poweroff` powers
//! off (ACPI S5), `reboot` resets (i8042).

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

use kit::console::Ascii;
use kit::line::{Event, LineEditor};

fn guest_main(_boot: &kit::boot::BootInfo) -> ! {
    kit::apic::init_interrupts();
    kit::serial::enable_rx_interrupt();
    println!("echo ready");
    print!("> ");
    let mut editor = LineEditor::new();
    loop {
        match editor.feed(kit::serial::read()) {
            Event::Line(line) => {
                println!("you typed: {}", Ascii(line));
                match line {
                    b"poweroff" => {
                        println!("powering off");
                        kit::power::power_off()
                    }
                    b"reboot" => {
                        println!("rebooting");
                        kit::power::reset()
                    }
                    _ => print!("> "),
                }
            }
            Event::Cancelled => print!("> "),
            Event::Pending => {}
        }
    }
}
