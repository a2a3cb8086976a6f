//! `hotplug`: answers vmux's hotplug events the way an ACPI OS would, through the registers
//! directly. Starts every enabled MADT CPU, routes the GED interrupt (GSI 5) and halts between
//! interrupts. On a CPU hotplug event (GED bit 1) it scans the CPU hotplug slots: an inserted
//! CPU is started with INIT/SIPI and prints `cpu <id> online` itself; a CPU the host wants
//! removed is parked (INIT) and ejected, and the boot CPU prints `cpu <id> ejected`. Each scan
//! ends with `cpus: <n> online`. The power button (bit 3) powers off.
//! tests/guests/README.md lists the lines.

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

use kit::acpi::Rsdp;
use kit::console::Dec;
use kit::cpuhp::{self, Notice};
use kit::ged;
use kit::smp::StartError;

/// How long a CPU gets to report in (a few thousand instructions on the emulating KVM).
const AP_TIMEOUT_US: u64 = 1_000_000;

fn announce(apic_id: u32) {
    println!("cpu {} online", Dec(u64::from(apic_id)));
}

fn guest_main(boot: &kit::boot::BootInfo) -> ! {
    kit::time::calibrate();
    kit::apic::init_interrupts();
    kit::smp::mark_boot_cpu_online();
    kit::smp::set_ap_hook(announce);
    let Some(madt) = Rsdp::find(boot.rsdp()).and_then(|rsdp| rsdp.find_table(b"APIC")) else {
        println!("hotplug: no MADT found");
        kit::power::debug_exit(kit::power::EXIT_FAILURE)
    };
    if !cpuhp::present() {
        println!("hotplug: no CPU hotplug registers at port 0x620");
        kit::power::debug_exit(kit::power::EXIT_FAILURE)
    }
    let boot_cpu = kit::apic::lapic_id();
    for cpu in madt
        .madt_cpus()
        .filter(|c| c.enabled() && c.apic_id != boot_cpu)
    {
        start(cpu.apic_id);
    }
    let slots = madt.madt_cpus().count() as u32;
    ged::enable();
    println!(
        "hotplug ready: {} cpus online, {} slots",
        Dec(online()),
        Dec(u64::from(slots))
    );
    loop {
        let events = ged::take_events();
        if events & ged::EVENT_CPU_HOTPLUG != 0 {
            cpuhp::scan(slots, |slot, notice| match notice {
                Notice::Inserted => start(slot),
                Notice::RemoveRequested => eject(slot),
            });
            println!("cpus: {} online", Dec(online()));
        }
        if events & ged::EVENT_POWER_BUTTON != 0 {
            println!("power button pressed: powering off");
            kit::power::power_off();
        }
        kit::cpu::wait_for_interrupt();
    }
}

fn online() -> u64 {
    kit::smp::online_ids().count() as u64
}

/// Starts a CPU; it prints its own `cpu <id> online`.
fn start(apic_id: u32) {
    let id = Dec(u64::from(apic_id));
    match kit::smp::start_ap(apic_id, AP_TIMEOUT_US) {
        Ok(()) => {}
        Err(StartError::Timeout) => println!("hotplug: cpu {} did not come online", id),
        Err(StartError::Ipi) => println!("hotplug: cpu {}: the local APIC did not send the IPI", id),
        Err(StartError::BadId) => println!("hotplug: cpu {}: cannot start that CPU", id),
    }
}

/// Parks a CPU and ejects its slot.
fn eject(apic_id: u32) {
    let id = Dec(u64::from(apic_id));
    match kit::smp::stop_ap(apic_id) {
        Ok(()) => {
            cpuhp::eject(apic_id);
            println!("cpu {} ejected", id);
        }
        Err(_) => println!("hotplug: cpu {}: cannot stop that CPU", id),
    }
}
