//! The built-in demo guest, embedded in the vmux binary (src/assets.rs) so that vmux on a
//! fresh machine has a VM to start and a console to type into.
//!
//! It is a guest-kit program (tests/guests/kit, built by build.rs): it starts every CPU the
//! MADT lists, prints a coloured banner and a `demo$ ` prompt, and then idles in `hlt` between
//! interrupts (an idle demo VM costs the host ~0 CPU). Commands: `help`, `cpus`, `mem`,
//! `disks`, `uptime`, `echo <text>`, `poweroff`, `reboot`. The ACPI power button (GED bit 3)
//! powers it off; a CPU hotplug event (GED bit 1) runs the CPU hotplug register protocol
//! (kit/cpuhp.rs): inserted CPUs are started, CPUs the host removes are parked and ejected, so
//! `cpus` follows `vmux setvcpus` live. A PCI hotplug event (GED bit 2) is answered the same
//! way (kit/pcihp.rs): a disk plugged in is announced, a disk the host removes is reset and
//! ejected, so `vmux detach-disk` completes and `disks` follows `attach-disk` live. It drives
//! the memory balloon too (kit/balloon.rs): RAM above 32 MiB is its pool, so `vmux setmem`
//! takes memory away and gives it back live and `vmux dommemstat` shows its statistics.
//! tests/guests/README.md lists the exact lines it prints.

#![no_std]
#![no_main]

#[path = "../../tests/guests/kit/mod.rs"]
mod kit;

use kit::acpi::{Rsdp, Table};
use kit::balloon::Balloon;
use kit::console::{Ascii, Dec, DecPadded, print_str};
use kit::cpuhp::{self, Notice};
use kit::ged;
use kit::line::{Event, LineEditor, split_command};
use kit::pci::Config;
use kit::pcihp;
use kit::virtio;

/// How long a CPU gets to come up at boot (a few thousand instructions on a slow KVM).
const BOOT_AP_TIMEOUT_US: u64 = 1_000_000;
/// How long a CPU gets after a hotplug event without the hotplug registers (other
/// hypervisors); CPUs listed but not plugged in cost this much.
const HOTPLUG_AP_TIMEOUT_US: u64 = 50_000;
/// Where the balloon's pool starts: everything above is RAM the demo never uses itself.
const BALLOON_POOL_BASE: u64 = 32 << 20;

const BANNER: &str =
    "\x1b[1;36mvmux demo guest\x1b[0m \x1b[2m(a guest-kit program built into vmux)\x1b[0m";
const HINT: &str =
    "Type \x1b[1mhelp\x1b[0m for commands. Press \x1b[1mCtrl-]\x1b[0m to detach from the console.";
const PROMPT: &str = "demo$ ";
const HELP: &str = "\
commands:
  help         this list
  cpus         online CPUs by APIC id
  mem          RAM size (from the e820 map)
  disks        virtio disks by PCI slot
  uptime       time since boot
  echo <text>  print <text>
  balloon      memory given to the host through the balloon
  poweroff     power off (ACPI S5)
  reboot       reset the machine";

fn guest_main(boot: &kit::boot::BootInfo) -> ! {
    kit::time::calibrate();
    kit::apic::init_interrupts();
    kit::smp::mark_boot_cpu_online();
    let madt = Rsdp::find(boot.rsdp()).and_then(|rsdp| rsdp.find_table(b"APIC"));
    if let Some(madt) = &madt {
        start_cpus(madt, |cpu| cpu.enabled(), BOOT_AP_TIMEOUT_US);
    }
    kit::serial::enable_rx_interrupt();
    let pci = Config::from_acpi(boot).unwrap_or(Config::Ports);
    ged::enable();
    let mut balloon = start_balloon(boot);

    print_str(BANNER);
    print_str("\n");
    print_str(HINT);
    print_str("\n");
    print_str(PROMPT);
    let mut editor = LineEditor::new();
    loop {
        while let Some(byte) = kit::serial::try_read() {
            match editor.feed(byte) {
                Event::Line(line) => {
                    run(line, boot, pci, balloon.as_ref());
                    print_str(PROMPT);
                }
                Event::Cancelled => print_str(PROMPT),
                Event::Pending => {}
            }
        }
        let events = ged::take_events();
        if events & ged::EVENT_POWER_BUTTON != 0 {
            println!("\npower button pressed: powering off");
            kit::power::power_off();
        }
        if events & ged::EVENT_CPU_HOTPLUG != 0
            && let Some(madt) = &madt
        {
            cpu_hotplug(madt);
            print_str(PROMPT);
        }
        if let Some(b) = balloon.as_mut()
            && let Ok(Some(pages)) = b.poll()
        {
            println!(
                "\nballoon: {} MiB given to the host, {} MiB left to the guest",
                Dec(u64::from(pages) >> 8),
                Dec(boot.ram_bytes().saturating_sub(u64::from(pages) << 12) >> 20)
            );
            print_str(PROMPT);
        }
        if events & ged::EVENT_PCI_HOTPLUG != 0 && pcihp::present() {
            disk_hotplug(pci);
            print_str(PROMPT);
        }
        kit::cpu::wait_for_interrupt();
    }
}

/// Brings up the memory balloon, if the machine has one, with the RAM above
/// [`BALLOON_POOL_BASE`] as its pool.
fn start_balloon(boot: &kit::boot::BootInfo) -> Option<Balloon> {
    let pci = kit::pci::Config::from_acpi(boot).unwrap_or(kit::pci::Config::Ports);
    let slot = kit::balloon::find(pci)?;
    // Usable RAM starts at 1 MiB (the e820 map leaves out the BIOS area below); the pool
    // stays below the 32-bit hole (RAM above 4 GiB is not identity mapped here).
    let end = (boot.ram_bytes() + (1 << 20)).min(3 << 30);
    let pages = (end.checked_sub(BALLOON_POOL_BASE)? >> 12) as u32;
    Balloon::bring_up(pci, slot, BALLOON_POOL_BASE, pages, boot.ram_bytes()).ok()
}

/// Answers a CPU hotplug event: with vmux's hotplug registers, starts the inserted CPUs and
/// parks and ejects the removed ones; without them, starts every listed CPU not yet online.
/// Prints `cpu hotplug: <n> cpus online (+<added> -<removed>)`.
fn cpu_hotplug(madt: &Table) {
    let mut added = 0u64;
    let mut removed = 0u64;
    if cpuhp::present() {
        let slots = madt.madt_cpus().count() as u32;
        cpuhp::scan(slots, |slot, notice| match notice {
            Notice::Inserted => {
                if kit::smp::start_ap(slot, BOOT_AP_TIMEOUT_US).is_ok() {
                    added += 1;
                }
            }
            Notice::RemoveRequested => {
                if kit::smp::stop_ap(slot).is_ok() {
                    cpuhp::eject(slot);
                    removed += 1;
                }
            }
        });
    } else {
        let before = kit::smp::online_ids().count();
        start_cpus(
            madt,
            |cpu| cpu.enabled() || cpu.online_capable(),
            HOTPLUG_AP_TIMEOUT_US,
        );
        added = kit::smp::online_ids().count().saturating_sub(before) as u64;
    }
    println!(
        "\ncpu hotplug: {} cpus online (+{} -{})",
        Dec(kit::smp::online_ids().count() as u64),
        Dec(added),
        Dec(removed)
    );
}

/// Answers a PCI hotplug event: announces each disk plugged in, and resets and ejects each
/// disk the host removes (the demo does not drive disks, so nothing is in flight). Prints
/// `disk hotplug: slot <n> added (<size> MiB)` and `disk hotplug: slot <n> ejected`.
fn disk_hotplug(pci: Config) {
    let plugged = pcihp::take_plugged();
    let unplug = pcihp::take_unplug_requests();
    print_str("\n");
    for slot in pcihp::slots(plugged) {
        match disk_mib(pci, slot) {
            Some(mib) => println!(
                "disk hotplug: slot {} added ({} MiB)",
                Dec(u64::from(slot)),
                Dec(mib)
            ),
            None => println!("disk hotplug: slot {} added", Dec(u64::from(slot))),
        }
    }
    for slot in pcihp::slots(unplug) {
        if pci.ids(slot) == Some((virtio::VENDOR_ID, virtio::DEVICE_ID_BLK))
            && let Ok(device) = virtio::Device::probe(pci, slot)
        {
            // A device that does not reset is ejected all the same: the host removes it.
            let _ = device.reset();
        }
        pcihp::eject(slot);
        println!("disk hotplug: slot {} ejected", Dec(u64::from(slot)));
    }
}

/// The size of the virtio disk in `slot` in MiB (`None`: no virtio disk, or unreadable).
fn disk_mib(pci: Config, slot: u8) -> Option<u64> {
    if pci.ids(slot) != Some((virtio::VENDOR_ID, virtio::DEVICE_ID_BLK)) {
        return None;
    }
    // The capacity (device configuration offset 0) counts 512-byte sectors.
    virtio::Device::probe(pci, slot)
        .ok()
        .map(|device| device.config_u64(0) >> 11)
}

/// Starts every MADT CPU that `wanted` selects and that is not online yet. APs print nothing:
/// `cpus` shows them.
fn start_cpus(madt: &Table, wanted: fn(&kit::acpi::MadtCpu) -> bool, timeout_us: u64) {
    for cpu in madt.madt_cpus().filter(wanted) {
        if !kit::smp::is_online(cpu.apic_id) {
            // A CPU that does not come up is simply not listed by `cpus`.
            let _ = kit::smp::start_ap(cpu.apic_id, timeout_us);
        }
    }
}

/// Runs one command line.
fn run(line: &[u8], boot: &kit::boot::BootInfo, pci: Config, balloon: Option<&Balloon>) {
    let (command, rest) = split_command(line);
    match command {
        b"" => {}
        b"help" => {
            print_str(HELP);
            print_str("\n");
        }
        b"cpus" => {
            print!(
                "cpus: {} online, apic ids",
                Dec(kit::smp::online_ids().count() as u64)
            );
            for id in kit::smp::online_ids() {
                print!(" {}", Dec(u64::from(id)));
            }
            println!();
        }
        b"disks" => {
            let mut count = 0u64;
            for slot in 1..32u8 {
                if let Some(mib) = disk_mib(pci, slot) {
                    println!("disk in slot {}: {} MiB", Dec(u64::from(slot)), Dec(mib));
                    count += 1;
                }
            }
            if count == 0 {
                println!("disks: none");
            }
        }
        b"mem" => {
            // Round to the nearest MiB: the e820 map leaves out the BIOS area below 1 MiB.
            let mib = (boot.ram_bytes() + (1 << 19)) >> 20;
            println!("mem: {} MiB RAM", Dec(mib));
        }
        b"uptime" => {
            let ms = kit::time::ms_since_boot();
            print!("uptime: {}.{} s", Dec(ms / 1000), DecPadded(ms % 1000, 3));
            if !kit::time::is_calibrated() {
                print_str(" (TSC rate estimated)");
            }
            println!();
        }
        b"echo" => println!("{}", Ascii(rest)),
        b"balloon" => match balloon {
            Some(b) => println!(
                "balloon: {} MiB given to the host (target {} MiB)",
                Dec(u64::from(b.actual()) >> 8),
                Dec(u64::from(b.target()) >> 8)
            ),
            None => println!("balloon: this machine has none"),
        },
        b"poweroff" => {
            println!("powering off");
            kit::power::power_off()
        }
        b"reboot" => {
            println!("rebooting");
            kit::power::reset()
        }
        other => println!("unknown command: {}; type help", Ascii(other)),
    }
}
