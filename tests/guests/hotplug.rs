//! `hotplug`: answers vmux's hotplug events the way an ACPI OS would, through the registers
//! directly. Starts every enabled MADT CPU, routes the GED interrupt (GSI 5) and halts between
//! interrupts. On a CPU hotplug event (GED bit 1) it scans the CPU hotplug slots: an inserted
//! CPU is started with INIT/SIPI and prints `cpu <id> online` itself; a CPU the host wants
//! removed is parked (INIT) and ejected, and the boot CPU prints `cpu <id> ejected`. Each scan
//! ends with `cpus: <n> online`. On a PCI hotplug event (GED bit 2) it reads the plugged and
//! unplugged slots: each new virtio-blk device is brought up, sector 0 is read and the device
//! reset (`disk <slot> ready: <first 16 bytes>`); each disk the host removes is reset and
//! ejected (`disk <slot> ejected`). The power button (bit 3) powers off.
//! tests/guests/README.md lists the lines.

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

use kit::acpi::Rsdp;
use kit::console::{Ascii, Dec};
use kit::cpuhp::{self, Notice};
use kit::ged;
use kit::pci::Config;
use kit::pcihp;
use kit::smp::StartError;
use kit::virtio::{self, Device, Queue, Wait};

/// How long a CPU gets to report in (a few thousand instructions on the emulating KVM).
const AP_TIMEOUT_US: u64 = 1_000_000;
/// How long a disk request may take.
const REQUEST_TIMEOUT_US: u64 = 2_000_000;
/// virtio-blk request type: read.
const T_IN: u32 = 0;
/// virtio-blk status: success.
const S_OK: u8 = 0;
/// virtio-blk feature: the disk is read-only (accepted so read-only disks come up too).
const F_RO: u64 = 1 << 5;
/// Bytes of sector 0 printed when a disk is ready.
const SHOWN_BYTES: usize = 16;

/// Request header, status and one sector, in one page (the device reads and writes it).
#[repr(C, align(4096))]
struct Buffers {
    header: [u8; 16],
    status: [u8; 16],
    data: [u8; 512],
}

static mut BUFFERS: Buffers = Buffers {
    header: [0; 16],
    status: [0; 16],
    data: [0; 512],
};

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
    if !pcihp::present() {
        println!("hotplug: no PCI hotplug registers at port 0x640");
        kit::power::debug_exit(kit::power::EXIT_FAILURE)
    }
    let pci = Config::from_acpi(boot).unwrap_or(Config::Ports);
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
        if events & ged::EVENT_PCI_HOTPLUG != 0 {
            let plugged = pcihp::take_plugged();
            let unplug = pcihp::take_unplug_requests();
            for slot in pcihp::slots(plugged) {
                disk_plugged(pci, slot);
            }
            for slot in pcihp::slots(unplug) {
                disk_unplugged(pci, slot);
            }
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

/// Brings up the virtio-blk device in `slot`, reads sector 0, resets the device, and prints
/// `disk <slot> ready: <first bytes>` (or why it failed).
fn disk_plugged(pci: Config, slot: u8) {
    let id = Dec(u64::from(slot));
    if pci.ids(slot) != Some((virtio::VENDOR_ID, virtio::DEVICE_ID_BLK)) {
        println!("disk {} FAILED: not a virtio-blk device", id);
        return;
    }
    match read_sector_0(pci, slot) {
        Ok(()) => {
            // SAFETY: the request completed and the device is reset: nothing writes BUFFERS.
            let data = unsafe { &(*(&raw const BUFFERS)).data };
            let shown = data.get(..SHOWN_BYTES).unwrap_or(&[]);
            println!("disk {} ready: {}", id, Ascii(shown));
        }
        Err(why) => println!("disk {} FAILED: {}", id, Ascii(why.as_bytes())),
    }
}

/// Reads sector 0 of the disk in `slot` into `BUFFERS.data`, leaving the device reset.
fn read_sector_0(pci: Config, slot: u8) -> Result<(), &'static str> {
    let device = Device::probe(pci, slot).map_err(virtio::Error::text)?;
    let mut queue = Queue::new();
    device
        .bring_up(&mut queue, F_RO)
        .map_err(virtio::Error::text)?;
    let b = &raw mut BUFFERS;
    // SAFETY: single-threaded (only the boot CPU touches disks), and no request is in flight
    // while the header and status are written.
    let (header, status, data) = unsafe {
        let header = &mut (*b).header;
        header[0..4].copy_from_slice(&T_IN.to_le_bytes());
        header[4..16].fill(0);
        (*b).status[0] = 0xff;
        (*b).data.fill(0);
        (
            &raw mut (*b).header as u64,
            &raw mut (*b).status as u64,
            &raw mut (*b).data as u64,
        )
    };
    virtio::drain_interrupts();
    let chain = [(header, 16, false), (data, 512, true), (status, 1, true)];
    let result = match queue.submit(&device, &chain, REQUEST_TIMEOUT_US) {
        // SAFETY: the chain is complete; the device no longer writes the status byte.
        Wait::Used { head: 0, .. } if unsafe { (*b).status[0] } == S_OK => Ok(()),
        Wait::Used { .. } => Err("the read failed"),
        Wait::NeedsReset => Err("the device asked for a reset"),
        Wait::Timeout => Err("the read timed out"),
    };
    virtio::await_interrupt(virtio::VECTOR_QUEUE, REQUEST_TIMEOUT_US);
    device.reset().map_err(virtio::Error::text)?;
    result
}

/// Quiets the disk in `slot` (reset) and ejects it; prints `disk <slot> ejected`.
fn disk_unplugged(pci: Config, slot: u8) {
    if pci.ids(slot) == Some((virtio::VENDOR_ID, virtio::DEVICE_ID_BLK))
        && let Ok(device) = Device::probe(pci, slot)
    {
        // A device that does not reset is ejected all the same: the host removes it.
        let _ = device.reset();
    }
    pcihp::eject(slot);
    println!("disk {} ejected", Dec(u64::from(slot)));
}
