//! `savestate`: a guest that notices if it is not continued exactly after a save and restore.
//! It fills a region of memory with a pattern it can verify, counts PIT and local APIC timer
//! ticks and IPIs on every other CPU, keeps virtio-blk requests in flight (writes, and reads
//! that check what an earlier write left), reads serial input only every tick (and not at all
//! while told to hold it), drives the memory balloon, and answers hotplug events (a hot-added
//! CPU is started and takes IPIs too; a hot-added disk is read). Every second (100 PIT ticks)
//! it prints one status line; tests/guests/README.md lists the lines.
//!
//! Command line: `mem=<MiB>` of verified memory at 16 MiB (default 2), `pool=<MiB>` of
//! balloon pool after it (default 0: no balloon driver), `disk=0` to leave the disks alone.

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use kit::acpi::Rsdp;
use kit::balloon::Balloon;
use kit::console::{Ascii, Dec, Hex};
use kit::cpuhp::{self, Notice};
use kit::ged;
use kit::pci::{Bdf, Config};
use kit::pcihp;
use kit::timer;
use kit::virtio::{self, Device, Queue, Wait};

const MIB: u64 = 1 << 20;
/// Where the verified region starts.
const REGION_BASE: u64 = 16 * MIB;
/// PIT rate, Hz.
const PIT_HZ: u64 = 100;
/// Local APIC timer period, ns (KVM counts at 1 GHz).
const LAPIC_PERIOD_NS: u32 = 10_000_000;
/// PIT ticks between status lines.
const STATUS_TICKS: u64 = 100;
/// Requests kept in flight (three descriptors each, in a 16-entry queue).
const IN_FLIGHT: usize = 5;
/// Sectors the requests cycle over (1..=SECTORS).
const SECTORS: u64 = 64;
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const S_OK: u8 = 0;
const F_RO: u64 = 1 << 5;
const AP_TIMEOUT_US: u64 = 1_000_000;

/// One request slot: header, data, status (the device reads and writes it).
#[repr(C, align(1024))]
#[derive(Clone, Copy)]
struct Slot {
    header: [u8; 16],
    status: [u8; 16],
    data: [u8; 512],
}

#[repr(C, align(4096))]
struct Slots([Slot; IN_FLIGHT]);

static mut SLOTS: Slots = Slots(
    [Slot {
        header: [0; 16],
        status: [0; 16],
        data: [0; 512],
    }; IN_FLIGHT],
);

/// What each slot carries: (request number + 1), 0 when free.
static IN_USE: [AtomicU64; IN_FLIGHT] = [const { AtomicU64::new(0) }; IN_FLIGHT];

/// The seed of the verified pattern, set once at boot (so a reboot would show as new).
static SEED: AtomicU64 = AtomicU64::new(0);

fn announce(_apic_id: u32) {}

/// What an AP does once online: take the boot CPU's IPIs forever (kit/timer.rs counts them).
fn ap_idle(_apic_id: u32) -> ! {
    loop {
        kit::cpu::wait_for_interrupt();
    }
}

fn guest_main(boot: &kit::boot::BootInfo) -> ! {
    let arg = |key: &str, default: u64| {
        boot.arg(key)
            .and_then(kit::boot::parse_u64)
            .unwrap_or(default)
    };
    let region_mib = arg("mem", 2);
    let pool_mib = arg("pool", 0);
    kit::time::calibrate();
    kit::apic::init_interrupts();
    kit::smp::mark_boot_cpu_online();
    kit::smp::set_ap_hook(announce);
    kit::smp::set_ap_idle(ap_idle);
    let boot_cpu = kit::apic::lapic_id();
    let mut cpu_slots = 0;
    if let Some(madt) = Rsdp::find(boot.rsdp()).and_then(|r| r.find_table(b"APIC")) {
        cpu_slots = madt.madt_cpus().count() as u32;
        for cpu in madt.madt_cpus().filter(|c| c.enabled() && c.apic_id != boot_cpu) {
            start_cpu(cpu.apic_id);
        }
    }
    let seed = kit::cpu::rdtsc() | 1;
    SEED.store(seed, Ordering::Relaxed);
    fill(region_mib);
    let pci = Config::from_acpi(boot).unwrap_or(Config::Ports);
    let mut disk = if arg("disk", 1) != 0 { Disk::find(pci) } else { None };
    let pool_base = REGION_BASE + region_mib * MIB;
    let mut balloon = match (pool_mib, kit::balloon::find(pci)) {
        (0, _) | (_, None) => None,
        (_, Some(slot)) => {
            touch_pool(pool_base, pool_mib);
            let pages = (pool_mib * MIB / 4096) as u32;
            match Balloon::bring_up(pci, slot, pool_base, pages, boot.ram_bytes()) {
                Ok(balloon) => Some(balloon),
                Err(why) => {
                    println!("savestate: balloon FAILED: {}", Ascii(why.as_bytes()));
                    None
                }
            }
        }
    };
    timer::start_pit(PIT_HZ);
    timer::start_lapic_timer(LAPIC_PERIOD_NS);
    ged::enable();
    println!(
        "savestate ready: {} cpus, {} MiB verified, disk {}, balloon pool {} MiB",
        Dec(kit::smp::online_ids().count() as u64),
        Dec(region_mib),
        Ascii(if disk.is_some() { b"yes" } else { b"no" }),
        Dec(if balloon.is_some() { pool_mib } else { 0 })
    );
    let mut last_status = 0;
    let mut last_ipis = [(0u64, 0u8); 64];
    let mut hold_until = 0u64;
    let mut line = [0u8; 64];
    let mut line_len = 0usize;
    loop {
        kit::cpu::wait_for_interrupt();
        let ticks = timer::PIT_TICKS.load(Ordering::Relaxed);
        hotplug(pci, cpu_slots);
        if let Some(disk) = disk.as_mut() {
            if let Err(why) = disk.service() {
                println!("blk: {} FAILED: {}", Bdf(disk.device.slot), Ascii(why.as_bytes()));
                kit::power::debug_exit(kit::power::EXIT_FAILURE);
            }
        }
        if let Some(b) = balloon.as_mut() {
            match b.poll() {
                Ok(Some(actual)) => println!("balloon: {} pages", Dec(u64::from(actual))),
                Ok(None) => {}
                Err(why) => println!("balloon: FAILED: {}", Ascii(why.as_bytes())),
            }
        }
        if ticks >= hold_until {
            while let Some(byte) = read_input() {
                match byte {
                    b'\r' | b'\n' => {
                        let text = line.get(..line_len).unwrap_or(&[]);
                        let held = command(text, region_mib, ticks, pci);
                        line_len = 0;
                        if let Some(ticks_held) = held {
                            hold_until = ticks_held;
                            break;
                        }
                    }
                    byte => {
                        if let Some(slot) = line.get_mut(line_len) {
                            *slot = byte;
                            line_len += 1;
                        }
                    }
                }
            }
        }
        if ticks >= last_status + STATUS_TICKS {
            last_status = ticks;
            for id in kit::smp::online_ids().filter(|&id| id != boot_cpu) {
                let _ = kit::apic::send_fixed(id, kit::idt::VECTOR_IPI);
            }
            status(ticks, &mut last_ipis, boot_cpu, disk.as_ref(), balloon.as_ref());
        }
    }
}

/// Starts a CPU (it takes IPIs from then on).
fn start_cpu(apic_id: u32) {
    match kit::smp::start_ap(apic_id, AP_TIMEOUT_US) {
        Ok(()) => println!("cpu {} online", Dec(u64::from(apic_id))),
        Err(_) => println!("savestate: cpu {} did not come online", Dec(u64::from(apic_id))),
    }
}

/// Answers the GED's hotplug events: starts inserted CPUs, parks and ejects removed ones,
/// reads each plugged disk's first sector and ejects disks the host removes.
fn hotplug(pci: Config, cpu_slots: u32) {
    let events = ged::take_events();
    if events & ged::EVENT_CPU_HOTPLUG != 0 && cpuhp::present() {
        cpuhp::scan(cpu_slots, |slot, notice| match notice {
            Notice::Inserted => start_cpu(slot),
            Notice::RemoveRequested => {
                if kit::smp::stop_ap(slot).is_ok() {
                    cpuhp::eject(slot);
                    println!("cpu {} ejected", Dec(u64::from(slot)));
                }
            }
        });
    }
    if events & ged::EVENT_PCI_HOTPLUG != 0 && pcihp::present() {
        for slot in pcihp::slots(pcihp::take_plugged()) {
            read_disk(pci, slot);
        }
        for slot in pcihp::slots(pcihp::take_unplug_requests()) {
            pcihp::eject(slot);
            println!("disk {} ejected", Dec(u64::from(slot)));
        }
    }
}

/// Reads sector 0 of the disk in `slot` (on ring page 1, leaving the device reset) and prints
/// `disk <slot>: <first 16 bytes>`.
fn read_disk(pci: Config, slot: u8) {
    let id = Dec(u64::from(slot));
    let result = (|| {
        if pci.ids(slot) != Some((virtio::VENDOR_ID, virtio::DEVICE_ID_BLK)) {
            return Err("not a virtio-blk device");
        }
        let device = Device::probe(pci, slot).map_err(virtio::Error::text)?;
        let mut queue = Queue::for_index(1);
        device
            .bring_up(&mut queue, F_RO)
            .map_err(virtio::Error::text)?;
        let slots = &raw mut SPARE;
        // SAFETY: single-threaded; the spare slot is only used here, one request at a time.
        let spare = unsafe { &mut (*slots).0 };
        spare.header = [0; 16];
        spare.status[0] = 0xff;
        let addr = spare as *mut Slot as u64;
        let chain = [(addr, 16, false), (addr + 32, 512, true), (addr + 16, 1, true)];
        let done = queue.submit(&device, &chain, 2_000_000);
        let _ = device.reset();
        match done {
            Wait::Used { .. } if spare.status[0] == S_OK => Ok(spare.data),
            Wait::Used { .. } => Err("the read failed"),
            Wait::NeedsReset => Err("the device asked for a reset"),
            Wait::Timeout => Err("the read timed out"),
        }
    })();
    match result {
        Ok(data) => println!("disk {}: {}", id, Ascii(data.get(..16).unwrap_or(&[]))),
        Err(why) => println!("disk {} FAILED: {}", id, Ascii(why.as_bytes())),
    }
}

#[repr(C, align(4096))]
struct Spare(Slot);

static mut SPARE: Spare = Spare(Slot {
    header: [0; 16],
    status: [0; 16],
    data: [0; 512],
});

/// Runs one input line; returns the tick to hold input until for `hold <ticks>`.
fn command(line: &[u8], region_mib: u64, ticks: u64, pci: Config) -> Option<u64> {
    if let Some(slot) = line.strip_prefix(b"read ").and_then(kit::boot::parse_u64) {
        read_disk(pci, slot as u8);
        return None;
    }
    match line {
        b"verify" => match verify(region_mib) {
            None => println!("verify: {} MiB ok", Dec(region_mib)),
            Some(addr) => println!("verify: MISMATCH at {}", Hex(addr)),
        },
        b"poweroff" => {
            println!("powering off");
            kit::power::power_off()
        }
        _ => {
            if let Some(n) = line.strip_prefix(b"hold ").and_then(kit::boot::parse_u64) {
                println!("holding input for {} ticks", Dec(n));
                return Some(ticks + n);
            }
            println!("input: {}", Ascii(line));
        }
    }
    None
}

fn read_input() -> Option<u8> {
    const LSR_DATA_READY: u8 = 1;
    if kit::cpu::inb(kit::serial::COM1 + 5) & LSR_DATA_READY == 0 {
        return None;
    }
    Some(kit::cpu::inb(kit::serial::COM1))
}

/// Seconds without an IPI taken after which an AP is reported as stalled.
const STALL_SECONDS: u8 = 3;

fn status(
    ticks: u64,
    last_ipis: &mut [(u64, u8); 64],
    boot_cpu: u32,
    disk: Option<&Disk>,
    balloon: Option<&Balloon>,
) {
    let mut ipis = 0;
    for id in kit::smp::online_ids().filter(|&id| id != boot_cpu) {
        let now = timer::ipis(id);
        if let Some((last, missed)) = last_ipis.get_mut(id as usize) {
            // Every status sends each CPU an IPI: one that has taken none for three seconds
            // is stuck (lost IPIs, a dead vCPU). Fewer misses are a busy host not scheduling
            // that vCPU's thread in time, which is no failure of the guest's state.
            if *last != 0 && now <= *last {
                *missed = missed.saturating_add(1);
                if *missed == STALL_SECONDS {
                    println!("cpu {} stalled", Dec(u64::from(id)));
                }
            } else {
                *missed = 0;
            }
            *last = now;
        }
        ipis += now;
    }
    println!(
        "state: pit={} lapic={} ipis={} blk={} balloon={}",
        Dec(ticks),
        Dec(timer::LAPIC_TICKS.load(Ordering::Relaxed)),
        Dec(ipis),
        Dec(disk.map_or(0, |d| d.completed)),
        Dec(balloon.map_or(0, |b| u64::from(b.actual())))
    );
}

/// The value page `page` of the region holds in each of its 512 quadwords.
fn pattern(page: u64) -> u64 {
    let mut x = page.wrapping_add(SEED.load(Ordering::Relaxed));
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 29) | 1
}

/// Fills the verified region, one `rep stosq` per page (each a single emulated instruction).
fn fill(region_mib: u64) {
    let pages = region_mib * MIB / 4096;
    for page in 0..pages {
        let addr = REGION_BASE + page * 4096;
        // SAFETY: the region lies in RAM the program owns (above the image and its stacks,
        // inside the identity map); nothing else uses it.
        unsafe {
            asm!("rep stosq", inout("rdi") addr => _, inout("rcx") 512u64 => _,
                 in("rax") pattern(page), options(nostack));
        }
    }
}

/// Checks the region; the address of the first wrong quadword, if any.
fn verify(region_mib: u64) -> Option<u64> {
    let pages = region_mib * MIB / 4096;
    for page in 0..pages {
        let addr = REGION_BASE + page * 4096;
        let left: u64;
        let differs: u8;
        // SAFETY: as in `fill`; `repe scasq` only reads the page.
        unsafe {
            asm!("repe scasq", "setne {differs}", differs = out(reg_byte) differs,
                 inout("rdi") addr => _, inout("rcx") 512u64 => left,
                 in("rax") pattern(page), options(nostack, readonly));
        }
        if differs != 0 {
            // The scan stopped just after the first quadword that differs.
            return Some(addr + (511 - left) * 8);
        }
    }
    None
}

/// Makes every page of the pool resident (so giving it back shows on the host).
fn touch_pool(base: u64, mib: u64) {
    for page in 0..mib * MIB / 4096 {
        // SAFETY: the pool lies in RAM the program owns, inside the identity map.
        unsafe { ((base + page * 4096) as usize as *mut u64).write_volatile(page | 1) }
    }
}

/// The first writable virtio-blk disk and the requests in flight on it.
struct Disk {
    device: Device,
    queue: Queue,
    /// Requests issued so far.
    issued: u64,
    /// Requests completed (and checked) so far.
    completed: u64,
}

impl Disk {
    fn find(pci: Config) -> Option<Disk> {
        for slot in 0..32u8 {
            if pci.ids(slot) != Some((virtio::VENDOR_ID, virtio::DEVICE_ID_BLK)) {
                continue;
            }
            let Ok(device) = Device::probe(pci, slot) else {
                continue;
            };
            let mut queue = Queue::new();
            match device.bring_up(&mut queue, F_RO) {
                Ok(offered) if offered & F_RO == 0 => {
                    return Some(Disk {
                        device,
                        queue,
                        issued: 0,
                        completed: 0,
                    });
                }
                _ => {
                    let _ = device.reset();
                }
            }
        }
        None
    }

    /// Takes completions (checking reads) and issues requests until [`IN_FLIGHT`] are out.
    fn service(&mut self) -> Result<(), &'static str> {
        if self.device.status() & virtio::STATUS_NEEDS_RESET != 0 {
            return Err("the disk asked for a reset");
        }
        while let Some((head, _)) = self.queue.take_used() {
            let index = (head / 3) as usize;
            let Some(number) = IN_USE.get(index).map(|n| n.swap(0, Ordering::Relaxed)) else {
                return Err("the disk completed a request that was not issued");
            };
            if number == 0 {
                return Err("the disk completed a request twice");
            }
            self.check(index, number - 1)?;
            self.completed += 1;
        }
        for index in 0..IN_FLIGHT {
            if IN_USE.get(index).is_some_and(|n| n.load(Ordering::Relaxed) == 0) {
                self.issue(index);
            }
        }
        self.queue.kick();
        Ok(())
    }

    /// Request `number` targets sector 1 + number % SECTORS; even rounds write the sector's
    /// pattern for that round, odd rounds read it back.
    fn plan(number: u64) -> (u64, u64, bool) {
        let sector = 1 + number % SECTORS;
        let round = number / SECTORS;
        (sector, round, round % 2 == 1)
    }

    fn byte(sector: u64, round: u64, i: usize) -> u8 {
        (sector as u8).wrapping_mul(31) ^ (round as u8).wrapping_mul(7) ^ (i as u8)
    }

    fn issue(&mut self, index: usize) {
        let number = self.issued;
        self.issued += 1;
        let (sector, round, read) = Disk::plan(number);
        let slots = &raw mut SLOTS;
        // SAFETY: single-threaded; slot `index` is free (no request of it is outstanding).
        let slot = unsafe { (*slots).0.get_mut(index) };
        let Some(slot) = slot else {
            return;
        };
        let kind = if read { T_IN } else { T_OUT };
        slot.header[0..4].copy_from_slice(&kind.to_le_bytes());
        slot.header[4..8].fill(0);
        slot.header[8..16].copy_from_slice(&sector.to_le_bytes());
        slot.status[0] = 0xff;
        for (i, byte) in slot.data.iter_mut().enumerate() {
            // A read expects the previous (even) round's bytes.
            *byte = if read { 0 } else { Disk::byte(sector, round, i) };
        }
        let head = (index * 3) as u16;
        let addr = slot as *mut Slot as u64;
        let data_flags = if read { virtio::DESC_F_WRITE } else { 0 };
        self.queue.set_desc(head, addr, 16, virtio::DESC_F_NEXT, head + 1);
        self.queue.set_desc(head + 1, addr + 32, 512, data_flags | virtio::DESC_F_NEXT, head + 2);
        self.queue.set_desc(head + 2, addr + 16, 1, virtio::DESC_F_WRITE, 0);
        if let Some(slot) = IN_USE.get(index) {
            slot.store(number + 1, Ordering::Relaxed);
        }
        self.queue.publish(head);
    }

    fn check(&self, index: usize, number: u64) -> Result<(), &'static str> {
        let slots = &raw const SLOTS;
        // SAFETY: the device is done with this slot (its request completed).
        let Some(slot) = (unsafe { (*slots).0.get(index) }) else {
            return Err("bad slot");
        };
        if slot.status[0] != S_OK {
            return Err("a request failed");
        }
        let (sector, round, read) = Disk::plan(number);
        if read
            && slot
                .data
                .iter()
                .enumerate()
                .any(|(i, &b)| b != Disk::byte(sector, round - 1, i))
        {
            return Err("a sector read back differs from what was written");
        }
        Ok(())
    }
}
