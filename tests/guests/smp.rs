//! `smp`: starts every enabled CPU the MADT lists (INIT, SIPI, SIPI through the local APIC).
//! Each AP prints `cpu <apic id> online`, one at a time; the boot CPU then prints
//! `smp: <n> cpus online` (itself included) and powers off.

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

use kit::acpi::Rsdp;
use kit::console::Dec;
use kit::smp::StartError;

/// How long one AP gets to report in (it runs a few thousand instructions; the emulating KVM
/// here manages about 1.5 M per second).
const AP_TIMEOUT_US: u64 = 1_000_000;

fn announce(apic_id: u32) {
    println!("cpu {} online", Dec(u64::from(apic_id)));
}

fn guest_main(boot: &kit::boot::BootInfo) -> ! {
    kit::time::calibrate();
    kit::apic::lapic_enable();
    kit::smp::mark_boot_cpu_online();
    kit::smp::set_ap_hook(announce);
    let Some(madt) = Rsdp::find(boot.rsdp()).and_then(|rsdp| rsdp.find_table(b"APIC")) else {
        println!("smp: no MADT found");
        kit::power::debug_exit(kit::power::EXIT_FAILURE)
    };
    let boot_cpu = kit::apic::lapic_id();
    for cpu in madt
        .madt_cpus()
        .filter(|c| c.enabled() && c.apic_id != boot_cpu)
    {
        let id = Dec(u64::from(cpu.apic_id));
        match kit::smp::start_ap(cpu.apic_id, AP_TIMEOUT_US) {
            Ok(()) => {}
            Err(StartError::Timeout) => println!("smp: cpu {} did not come online", id),
            Err(StartError::Ipi) => {
                println!("smp: cpu {}: the local APIC did not send the IPI", id)
            }
            Err(StartError::BadId) => println!("smp: cpu {}: APIC id out of range", id),
        }
    }
    println!(
        "smp: {} cpus online",
        Dec(kit::smp::online_ids().count() as u64)
    );
    kit::power::power_off()
}
