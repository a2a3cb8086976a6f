//! `evil-blk`: a hostile virtio-blk driver. On the first writable disk it submits malformed
//! requests and chains (descriptor loops, a `next` past the queue, a buffer outside guest RAM,
//! a zero-length or device-readable status buffer, data in the wrong direction, a read past
//! the end, an unknown request type, an available index far ahead of the ring, queue rings
//! outside guest RAM) and, on a read-only disk if there is one, a write. Each must end with an
//! error status or with DEVICE_NEEDS_RESET plus a configuration interrupt (the rings: a
//! refused DRIVER_OK), as the case demands; the program resets
//! the device between cases and finally checks that every disk still answers a good read.
//! Prints `evil-blk: <case>: <outcome>` per case and `evil-blk: survived <n> bad requests`,
//! then powers off; an unexpected outcome prints `evil-blk: <case>: unexpected: <what>`
//! and exits with debug code 1. With `rounds=<N>` the writable cases run N times (0: until the
//! VM is stopped), printed only in the first round, with `evil-blk: round <n>` at each power
//! of two.

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

use kit::console::{Ascii, Dec};
use kit::pci::{Bdf, Config};
use kit::virtio::{self, DESC_F_NEXT, DESC_F_WRITE, Device, Queue, Wait};

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;
const F_RO: u64 = 1 << 5;
const TIMEOUT_US: u64 = 2_000_000;
/// Far above any test VM's RAM, still inside the 64-bit address space.
const OUTSIDE_RAM: u64 = 0x40_0000_0000;

/// Request header, status and data buffers, in one page.
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

fn header_addr() -> u64 {
    (&raw mut BUFFERS) as u64
}

fn status_addr() -> u64 {
    header_addr() + 16
}

fn data_addr() -> u64 {
    header_addr() + 32
}

/// Writes a request header and poisons the status byte.
fn prepare(request_type: u32, sector: u64) {
    let b = &raw mut BUFFERS;
    // SAFETY: single-threaded, and no chain is outstanding while a request is prepared.
    unsafe {
        let header = &mut (*b).header;
        header[0..4].copy_from_slice(&request_type.to_le_bytes());
        header[4..8].fill(0);
        header[8..16].copy_from_slice(&sector.to_le_bytes());
        (*b).status[0] = 0xff;
    }
}

fn status_byte() -> u8 {
    // SAFETY: read after the chain completed; single-threaded.
    unsafe { (*(&raw const BUFFERS)).status[0] }
}

/// What a bad request must end with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Completed with this status byte.
    Status(u8),
    /// DEVICE_NEEDS_RESET and a configuration interrupt.
    NeedsReset,
}

fn expect_text(expect: Expect) -> &'static str {
    match expect {
        Expect::Status(S_IOERR) => "io error",
        Expect::Status(S_UNSUPP) => "unsupported",
        Expect::Status(_) => "a status",
        Expect::NeedsReset => "needs reset",
    }
}

/// One malformed request: builds its chain in `queue`, publishes and notifies it.
type Case = fn(&mut Queue, u64);

fn descriptor_loop(queue: &mut Queue, _capacity: u64) {
    prepare(T_IN, 0);
    queue.set_desc(0, header_addr(), 16, DESC_F_NEXT, 1);
    queue.set_desc(1, status_addr(), 1, DESC_F_WRITE | DESC_F_NEXT, 0);
    submit(queue);
}

fn next_past_the_queue(queue: &mut Queue, _capacity: u64) {
    prepare(T_IN, 0);
    queue.set_desc(0, header_addr(), 16, DESC_F_NEXT, 1);
    queue.set_desc(1, status_addr(), 1, DESC_F_WRITE | DESC_F_NEXT, 200);
    submit(queue);
}

fn buffer_outside_ram(queue: &mut Queue, _capacity: u64) {
    prepare(T_IN, 0);
    chain(queue, &[(header_addr(), 16, 0), (OUTSIDE_RAM, 512, DESC_F_WRITE), (status_addr(), 1, DESC_F_WRITE)]);
}

fn empty_status_buffer(queue: &mut Queue, _capacity: u64) {
    prepare(T_IN, 0);
    chain(queue, &[(header_addr(), 16, 0), (status_addr(), 0, DESC_F_WRITE)]);
}

fn status_in_readable_buffer(queue: &mut Queue, _capacity: u64) {
    prepare(T_IN, 0);
    chain(queue, &[(header_addr(), 16, 0), (status_addr(), 1, 0)]);
}

fn read_into_readable_buffer(queue: &mut Queue, _capacity: u64) {
    prepare(T_IN, 0);
    chain(queue, &[(header_addr(), 16, 0), (data_addr(), 512, 0), (status_addr(), 1, DESC_F_WRITE)]);
}

fn read_past_the_end(queue: &mut Queue, capacity: u64) {
    prepare(T_IN, capacity);
    chain(queue, &[(header_addr(), 16, 0), (data_addr(), 512, DESC_F_WRITE), (status_addr(), 1, DESC_F_WRITE)]);
}

fn unknown_type(queue: &mut Queue, _capacity: u64) {
    prepare(0x99, 0);
    chain(queue, &[(header_addr(), 16, 0), (status_addr(), 1, DESC_F_WRITE)]);
}

fn avail_index_far_ahead(queue: &mut Queue, _capacity: u64) {
    queue.set_avail_index(100);
    queue.notify();
}

fn write_to_read_only(queue: &mut Queue, _capacity: u64) {
    prepare(T_OUT, 1);
    chain(queue, &[(header_addr(), 16, 0), (data_addr(), 512, 0), (status_addr(), 1, DESC_F_WRITE)]);
}

/// Links `buffers` (address, length, flags) as descriptors 0.. and submits them.
fn chain(queue: &mut Queue, buffers: &[(u64, u32, u16)]) {
    for (i, &(addr, len, flags)) in buffers.iter().enumerate() {
        let next = if i + 1 < buffers.len() { DESC_F_NEXT } else { 0 };
        queue.set_desc(i as u16, addr, len, flags | next, i as u16 + 1);
    }
    submit(queue);
}

fn submit(queue: &mut Queue) {
    queue.publish(0);
    queue.notify();
}

/// Runs one case on a freshly initialised device; `Ok` names the outcome.
fn run_case(device: &Device, case: Case, expect: Expect) -> Result<&'static str, &'static str> {
    let mut queue = Queue::new();
    device.bring_up(&mut queue, 0).map_err(virtio::Error::text)?;
    virtio::drain_interrupts();
    let capacity = device.config_u64(0);
    case(&mut queue, capacity);
    let outcome = match queue.wait(device, TIMEOUT_US) {
        Wait::Used { .. } if expect == Expect::NeedsReset => {
            // A chain that cannot be answered is returned unanswered before the device
            // flags itself; wait for the flag.
            match queue.wait(device, TIMEOUT_US) {
                Wait::NeedsReset => Expect::NeedsReset,
                _ => return Err("the bad chain came back without DEVICE_NEEDS_RESET"),
            }
        }
        Wait::Used { .. } => Expect::Status(status_byte()),
        Wait::NeedsReset => Expect::NeedsReset,
        Wait::Timeout => return Err("no answer: the device hung"),
    };
    if outcome == Expect::NeedsReset && !virtio::await_interrupt(virtio::VECTOR_CONFIG, TIMEOUT_US) {
        return Err("DEVICE_NEEDS_RESET without a configuration interrupt");
    }
    if outcome != expect {
        return Err(match outcome {
            Expect::NeedsReset => "got needs reset",
            Expect::Status(S_OK) => "got status OK",
            Expect::Status(S_IOERR) => "got io error",
            Expect::Status(S_UNSUPP) => "got unsupported",
            Expect::Status(_) => "got a bad status byte",
        });
    }
    Ok(expect_text(expect))
}

/// Rings placed outside guest RAM: the device must refuse to go live or flag itself for a
/// reset once notified, never touch host memory, and answer normally after a reset.
fn rings_outside_ram(device: &Device) -> Result<&'static str, &'static str> {
    let mut queue = Queue::new();
    queue.tell_rings_at(OUTSIDE_RAM, OUTSIDE_RAM + 0x1000, OUTSIDE_RAM + 0x2000);
    let outcome = match device.bring_up(&mut queue, 0) {
        Err(_) => "refused",
        Ok(_) => {
            virtio::drain_interrupts();
            queue.notify();
            match queue.wait(device, TIMEOUT_US) {
                Wait::NeedsReset => "needs reset",
                Wait::Used { .. } => return Err("the device used a ring outside guest RAM"),
                Wait::Timeout if device.status() & virtio::STATUS_NEEDS_RESET != 0 => "needs reset",
                Wait::Timeout => "ignored",
            }
        }
    };
    device.reset().map_err(virtio::Error::text)?;
    Ok(outcome)
}

/// A good read of sector 0 on a fresh initialisation.
fn good_read(device: &Device) -> Result<(), &'static str> {
    let mut queue = Queue::new();
    device.bring_up(&mut queue, 0).map_err(virtio::Error::text)?;
    virtio::drain_interrupts();
    prepare(T_IN, 0);
    let chain = [(header_addr(), 16, false), (data_addr(), 512, true), (status_addr(), 1, true)];
    match queue.submit(device, &chain, TIMEOUT_US) {
        Wait::Used { .. } if status_byte() == S_OK => {}
        Wait::Used { .. } => return Err("good read failed"),
        Wait::NeedsReset => return Err("good read: device needs reset"),
        Wait::Timeout => return Err("good read timed out"),
    }
    if !virtio::await_interrupt(virtio::VECTOR_QUEUE, TIMEOUT_US) {
        return Err("good read raised no MSI-X interrupt");
    }
    device.reset().map_err(virtio::Error::text)
}

const WRITABLE_CASES: [(&str, Case, Expect); 9] = [
    ("descriptor loop", descriptor_loop, Expect::NeedsReset),
    ("next index past the queue", next_past_the_queue, Expect::NeedsReset),
    ("buffer outside guest RAM", buffer_outside_ram, Expect::Status(S_IOERR)),
    ("zero-length status buffer", empty_status_buffer, Expect::NeedsReset),
    ("status in a device-readable buffer", status_in_readable_buffer, Expect::NeedsReset),
    ("read into a device-readable buffer", read_into_readable_buffer, Expect::Status(S_IOERR)),
    ("read past the last sector", read_past_the_end, Expect::Status(S_IOERR)),
    ("unknown request type", unknown_type, Expect::Status(S_UNSUPP)),
    ("available index far ahead", avail_index_far_ahead, Expect::NeedsReset),
];

fn guest_main(boot: &kit::boot::BootInfo) -> ! {
    kit::apic::init_interrupts();
    // `rounds=<N>` repeats the writable cases N times (0: forever), quietly after the first
    // round: a guest flooding vmd with bad requests (tests/confine.rs bounds vmd's log).
    let rounds = match boot.arg("rounds") {
        None => 1,
        Some(text) => match kit::boot::parse_u64(text) {
            Some(n) => n,
            None => {
                println!("evil-blk: rounds={} is not a number", Ascii(text));
                kit::power::debug_exit(kit::power::EXIT_FAILURE)
            }
        },
    };
    let config = Config::Ports;
    let mut writable = None;
    let mut read_only = None;
    let mut disks = 0;
    for slot in 0..32u8 {
        if config.ids(slot) != Some((virtio::VENDOR_ID, virtio::DEVICE_ID_BLK)) {
            continue;
        }
        let device = match Device::probe(config, slot) {
            Ok(device) => device,
            Err(e) => fail(Bdf(slot), e.text()),
        };
        disks += 1;
        if device.device_features() & F_RO != 0 {
            read_only.get_or_insert(device);
        } else {
            writable.get_or_insert(device);
        }
    }
    let Some(target) = writable else {
        println!("evil-blk: no writable virtio-blk disk");
        kit::power::debug_exit(kit::power::EXIT_FAILURE)
    };

    let mut survived: u64 = 0;
    let mut round: u64 = 1;
    while rounds == 0 || round <= rounds {
        for (name, case, expect) in WRITABLE_CASES {
            let result = run_case(&target, case, expect);
            if round == 1 || result.is_err() {
                check(name, result);
            }
            survived += 1;
        }
        let result = rings_outside_ram(&target);
        if round == 1 || result.is_err() {
            check("rings outside guest RAM", result);
        }
        survived += 1;
        if round.is_power_of_two() && round > 1 {
            println!("evil-blk: round {}", Dec(round));
        }
        round += 1;
    }
    if let Some(disk) = &read_only {
        check(
            "write to a read-only disk",
            run_case(disk, write_to_read_only, Expect::Status(S_IOERR)),
        );
        survived += 1;
    }
    for device in [Some(&target), read_only.as_ref()].into_iter().flatten() {
        if let Err(why) = good_read(device) {
            fail(Bdf(device.slot), why);
        }
    }
    println!("evil-blk: {} disks answer a good read", Dec(disks));
    println!("evil-blk: survived {} bad requests", Dec(survived));
    kit::power::power_off()
}

fn check(name: &str, result: Result<&'static str, &'static str>) {
    match result {
        Ok(outcome) => println!(
            "evil-blk: {}: {}",
            Ascii(name.as_bytes()),
            Ascii(outcome.as_bytes())
        ),
        Err(why) => {
            println!(
                "evil-blk: {}: unexpected: {}",
                Ascii(name.as_bytes()),
                Ascii(why.as_bytes())
            );
            kit::power::debug_exit(kit::power::EXIT_FAILURE)
        }
    }
}

fn fail(bdf: Bdf, why: &str) -> ! {
    println!("evil-blk: {} FAILED: {}", bdf, Ascii(why.as_bytes()));
    kit::power::debug_exit(kit::power::EXIT_FAILURE)
}
