//! `acpi`: checks the firmware tables and prints what the guest was given. Finds the RSDP,
//! checks its checksums (v1 and extended) and those of every table behind the XSDT (or RSDT,
//! plus the DSDT behind the FADT), then lists the MADT's processors, the command line and the
//! memory map, and powers off. tests/guests/README.md lists the lines.

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

use kit::acpi::{Rsdp, Table};
use kit::console::{Ascii, Dec, Hex};

fn guest_main(boot: &kit::boot::BootInfo) -> ! {
    let rsdp = Rsdp::find(boot.rsdp());
    let errors = match &rsdp {
        Some(rsdp) => check_tables(rsdp),
        None => {
            println!("acpi: no RSDP found");
            1
        }
    };
    if errors == 0 {
        println!("acpi: all checksums ok");
    } else {
        println!("acpi: checksum errors");
    }
    if let Some(madt) = rsdp.and_then(|rsdp| rsdp.find_table(b"APIC")) {
        list_cpus(&madt);
    }
    println!("cmdline: {}", Ascii(boot.cmdline()));
    for region in boot.memory_map() {
        println!(
            "e820: {} {} {}",
            Hex(region.start),
            Hex(region.size),
            Dec(u64::from(region.kind))
        );
    }
    kit::power::power_off()
}

/// Prints a line per table; returns how many checksums were wrong (or tables unreadable).
fn check_tables(rsdp: &Rsdp) -> u32 {
    let rsdp_ok = rsdp.v1_checksum_ok && rsdp.extended_checksum_ok != Some(false);
    let mut errors = report(b"RSDP", rsdp_ok);
    match rsdp.root() {
        Some(root) => errors += report(&root.signature, root.checksum_ok()),
        None => {
            println!(
                "acpi: root table at {} unreadable",
                Hex(if rsdp.xsdt != 0 { rsdp.xsdt } else { rsdp.rsdt })
            );
            errors += 1;
        }
    }
    for table in rsdp.tables() {
        errors += report(&table.signature, table.checksum_ok());
        if table.signature == *b"FACP" {
            match table.fadt_dsdt() {
                Some(dsdt) => errors += report(&dsdt.signature, dsdt.checksum_ok()),
                None => {
                    println!("acpi: FADT names no readable DSDT");
                    errors += 1;
                }
            }
        }
    }
    errors
}

fn report(signature: &[u8; 4], ok: bool) -> u32 {
    if ok {
        println!("table {} ok", Ascii(signature));
        0
    } else {
        println!("table {} BAD CHECKSUM", Ascii(signature));
        1
    }
}

fn list_cpus(madt: &Table) {
    for cpu in madt.madt_cpus() {
        let state: &[u8] = if cpu.enabled() {
            b"enabled"
        } else if cpu.online_capable() {
            b"online-capable"
        } else {
            b"disabled"
        };
        println!(
            "madt: cpu apic={} {}",
            Dec(u64::from(cpu.apic_id)),
            Ascii(state)
        );
    }
}
