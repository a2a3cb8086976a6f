//! `blk`: drives every virtio-blk disk the way Linux's virtio_blk does. Finds the PCI devices
//! (mechanism #1, cross-checked through ECAM when the MCFG names it), brings each up over the
//! modern transport with MSI-X, writes a pattern to sector 1, flushes, reads it back and
//! compares, reads the serial with GET_ID, checks that every completion raised the queue's
//! MSI-X vector, and prints `blk: <bdf> capacity=<sectors> serial=<id> pattern ok`. Read-only
//! disks (VIRTIO_BLK_F_RO) are only read. With `noflush` on the command line it never sends a
//! flush (a guest that powers off with its writes only acknowledged, not flushed: the VMM
//! must still have them in the image once it has shut off). Powers off at the end; any
//! failure prints
//! `blk: <bdf> FAILED: <why>` and exits with debug code 1. tests/guests/README.md lists the
//! lines.

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

use kit::console::{Ascii, Dec, Hex};
use kit::pci::{Bdf, Config};
use kit::virtio::{self, Device, Queue, Wait};

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
const SECTOR: u64 = 1;
const TIMEOUT_US: u64 = 2_000_000;

/// Request header, data and status buffers, in one page.
#[repr(C, align(4096))]
struct Buffers {
    header: [u8; 16],
    status: [u8; 16],
    id: [u8; 32],
    data: [u8; 512],
}

static mut BUFFERS: Buffers = Buffers {
    header: [0; 16],
    status: [0; 16],
    id: [0; 32],
    data: [0; 512],
};

fn buffers() -> *mut Buffers {
    &raw mut BUFFERS
}

fn addr_of<T>(field: *mut T) -> u64 {
    field as u64
}

fn guest_main(boot: &kit::boot::BootInfo) -> ! {
    kit::apic::init_interrupts();
    let ports = Config::Ports;
    let config = match Config::from_acpi(boot) {
        Some(ecam @ Config::Ecam(base)) => {
            println!("blk: ECAM at {}", Hex(base));
            ecam
        }
        _ => ports,
    };
    let mut disks = 0;
    let mut failures = 0;
    for slot in 0..32u8 {
        let Some((vendor, device)) = ports.ids(slot) else {
            continue;
        };
        if config.ids(slot) != Some((vendor, device)) {
            println!("blk: {} ids differ between 0xcf8 and ECAM", Bdf(slot));
            failures += 1;
            continue;
        }
        if (vendor, device) != (virtio::VENDOR_ID, virtio::DEVICE_ID_BLK) {
            continue;
        }
        disks += 1;
        if let Err(why) = check_disk(config, slot, boot.arg("noflush").is_none()) {
            println!("blk: {} FAILED: {}", Bdf(slot), Ascii(why.as_bytes()));
            failures += 1;
        }
    }
    if disks == 0 {
        println!("blk: no virtio-blk device");
        failures += 1;
    }
    println!("blk: {} disks, {} failures", Dec(disks), Dec(failures));
    if failures != 0 {
        kit::power::debug_exit(kit::power::EXIT_FAILURE);
    }
    kit::power::power_off()
}

fn check_disk(config: Config, slot: u8, flush: bool) -> Result<(), &'static str> {
    let device = Device::probe(config, slot).map_err(virtio::Error::text)?;
    let mut queue = Queue::new();
    let offered = device
        .bring_up(&mut queue, F_FLUSH | F_RO)
        .map_err(virtio::Error::text)?;
    let capacity = device.config_u64(0);
    if capacity <= SECTOR {
        return Err("disk too small for sector 1");
    }
    let read_only = offered & F_RO != 0;
    let b = buffers();
    // SAFETY: the program is single-threaded and only the device (through DMA, while a chain
    // is outstanding) touches BUFFERS otherwise.
    let (header, data, id) = unsafe {
        (
            addr_of(&raw mut (*b).header),
            addr_of(&raw mut (*b).data),
            addr_of(&raw mut (*b).id),
        )
    };

    if !read_only {
        fill_pattern(slot);
        request(&device, &mut queue, T_OUT, &[(header, 16, false), (data, 512, false)])?;
        if flush && offered & F_FLUSH != 0 {
            request(&device, &mut queue, T_FLUSH, &[(header, 16, false)])?;
        }
        clear_data();
    }
    request(&device, &mut queue, T_IN, &[(header, 16, false), (data, 512, true)])?;
    if !read_only && !pattern_matches(slot) {
        return Err("sector 1 read back differs from what was written");
    }
    request(&device, &mut queue, T_GET_ID, &[(header, 16, false), (id, 20, true)])?;
    // SAFETY: as above; the device is done with the buffer once the chain is used.
    let serial = unsafe { &(&(*b).id)[..20] };
    let serial = &serial[..serial.iter().position(|&c| c == 0).unwrap_or(20)];
    if device.status() & virtio::STATUS_NEEDS_RESET != 0 {
        return Err("device asked for a reset");
    }
    device.reset().map_err(virtio::Error::text)?;
    println!(
        "blk: {} capacity={} serial={} {}",
        Bdf(slot),
        Dec(capacity),
        Ascii(serial),
        Ascii(if read_only { b"read-only ok" } else { b"pattern ok" })
    );
    Ok(())
}

/// Sends one request: the header (type, sector 1) and `payload`, then the status byte; checks
/// that it completes with OK and raised the queue's MSI-X vector.
fn request(
    device: &Device,
    queue: &mut Queue,
    request_type: u32,
    payload: &[(u64, u32, bool)],
) -> Result<(), &'static str> {
    let b = buffers();
    // SAFETY: single-threaded; no chain is outstanding while the header is written.
    let status = unsafe {
        let header = &mut (*b).header;
        header[0..4].copy_from_slice(&request_type.to_le_bytes());
        header[4..8].fill(0);
        header[8..16].copy_from_slice(&SECTOR.to_le_bytes());
        (*b).status[0] = 0xff;
        addr_of(&raw mut (*b).status)
    };
    virtio::drain_interrupts();
    let mut chain = [(0u64, 0u32, false); 3];
    chain[..payload.len()].copy_from_slice(payload);
    chain[payload.len()] = (status, 1, true);
    match queue.submit(device, &chain[..payload.len() + 1], TIMEOUT_US) {
        Wait::Used { head: 0, .. } => {}
        Wait::Used { .. } => return Err("device returned a descriptor that was not submitted"),
        Wait::NeedsReset => return Err("device asked for a reset"),
        Wait::Timeout => return Err("request timed out"),
    }
    // SAFETY: the chain is complete; the device no longer writes the status byte.
    if unsafe { (*b).status[0] } != S_OK {
        return Err("request failed");
    }
    if !virtio::await_interrupt(virtio::VECTOR_QUEUE, TIMEOUT_US) {
        return Err("completion raised no MSI-X interrupt");
    }
    Ok(())
}

/// The test pattern: depends on the byte offset and the slot, so two disks differ.
fn pattern(slot: u8, i: usize) -> u8 {
    (i as u8).wrapping_mul(7) ^ slot.wrapping_mul(0x35) ^ 0x5a
}

fn fill_pattern(slot: u8) {
    // SAFETY: single-threaded; no chain is outstanding.
    let data = unsafe { &mut (*buffers()).data };
    for (i, byte) in data.iter_mut().enumerate() {
        *byte = pattern(slot, i);
    }
}

fn clear_data() {
    // SAFETY: as in fill_pattern.
    unsafe { (&mut (*buffers()).data).fill(0) }
}

fn pattern_matches(slot: u8) -> bool {
    // SAFETY: as in fill_pattern; the read has completed.
    let data = unsafe { &(*buffers()).data };
    data.iter().enumerate().all(|(i, &b)| b == pattern(slot, i))
}
