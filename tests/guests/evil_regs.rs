//! `evil-regs`: register abuse. It writes all-ones to every I/O port except the few that end
//! the VM or carry its output (COM1, the i8042, debug exit, ACPI sleep and reset, PCI config),
//! then garbage through the PCI configuration ports to every dword of every function of bus 0
//! (BARs, command registers, capabilities, including the virtio devices'), then every kind of
//! nonsense to the CPU and PCI hotplug registers (selectors out of range, acknowledgements
//! nobody asked for, ejecting slots that are empty or hold the host bridge). Then it prints
//! `evil-regs: survived <n> register writes` and, last, ejects its own CPU 0 after printing
//! `evil-regs: ejecting cpu 0`; if it still runs 100 ms later it prints `evil-regs: still
//! running` and powers off. vmd must survive all of it and the VM must stay stoppable.

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

use kit::console::Dec;
use kit::cpu::{inb, inl, outb, outl};

/// Ports left alone: they end the VM (i8042 reset, debug exit, ACPI sleep and reset), carry
/// this program's own output (COM1) or its clock (the PIT and its gate); the PCI
/// configuration and hotplug ports get their own rounds.
fn spared(port: u16) -> bool {
    matches!(
        port,
        0x40..=0x43
            | 0x60..=0x61
            | 0x64
            | 0xf4..=0xf7
            | 0x3f8..=0x3ff
            | 0x600..=0x602
            | 0x620..=0x62b
            | 0x640..=0x64f
            | 0xcf8..=0xcff
    )
}

fn guest_main(_boot: &kit::boot::BootInfo) -> ! {
    let mut writes: u64 = 0;

    for port in 0..=u16::MAX {
        if spared(port) {
            continue;
        }
        outb(port, 0xff);
        let _ = inb(port);
        writes += 1;
    }
    println!("evil-regs: every port written");

    for slot in 0..32u32 {
        for function in 0..8u32 {
            for offset in (0..256u32).step_by(4) {
                let address = (1 << 31) | (slot << 11) | (function << 8) | offset;
                outl(0xcf8, address);
                outl(0xcfc, 0xffff_ffff);
                let _ = inl(0xcfc);
                writes += 1;
            }
        }
    }
    // Malformed addresses: enable bit clear, reserved bits set, a bus that does not exist.
    for address in [0x0000_0000, 0x7fff_fffc, 0xffff_ffff, 0x80ff_0000, 0x8000_00ff] {
        outl(0xcf8, address);
        outl(0xcfc, 0xdead_beef);
        outb(0xcfd, 0xff);
        outb(0xcff, 0xff);
        writes += 1;
    }
    println!("evil-regs: PCI configuration space written");

    let cpuhp = kit::cpuhp::PORT;
    for slot in [1, 2, 3, 4, 255, 256, 4096, 0x7fff_ffff, 0xffff_ffff] {
        outl(cpuhp, slot);
        let _ = inb(cpuhp + 4);
        // Acknowledge notices nobody gave, then eject a slot that is empty or not parked.
        outb(cpuhp + 4, kit::cpuhp::INSERTING | kit::cpuhp::REMOVING);
        outb(cpuhp + 4, kit::cpuhp::EJECT);
        outb(cpuhp + 4, 0xff);
        outl(cpuhp + 8, 0xffff_ffff);
        writes += 5;
    }
    let pcihp = kit::pcihp::PORT;
    for (offset, value) in [(0, 0xffff_ffff), (4, 0xffff_ffff), (8, 0xffff_ffff), (12, 7), (8, 1)] {
        outl(pcihp + offset, value);
        let _ = inl(pcihp + offset);
        writes += 1;
    }
    outl(pcihp + 12, 0);
    println!("evil-regs: hotplug registers written");

    println!("evil-regs: survived {} register writes", Dec(writes));
    println!("evil-regs: ejecting cpu 0");
    kit::cpuhp::eject(0);
    kit::time::delay_us(100_000);
    println!("evil-regs: still running");
    kit::power::power_off()
}
