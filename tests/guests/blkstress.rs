//! `blkstress`: the writer of the disk crash test (tests/blk_crash.rs). On the first writable
//! virtio-blk disk it takes a new generation number from sector 0 (one more than the one stored
//! there, 1 on a blank disk), stores it and flushes, then loops: write sector n (1, 2, 3, ...,
//! wrapping within the disk) with a pattern made from n and the generation, flush, print
//! `flushed <n> gen <g>`. A line on the console therefore promises that the sector is on stable
//! storage; the crash test kills vmd at a random moment and holds the image to that promise.
//!
//! Command line: `sectors=<N>` wraps after sector N (default: the whole disk), `writes=<N>`
//! stops after N flushed writes and powers off (default: never), `stride=<N>` writes every
//! Nth sector (1, 1+N, 1+2N, ...; default 1), `flush=no` writes without flushing (like
//! `dd oflag=direct`) and prints `written <n> gen <g>` instead, which promises nothing.
//! tests/guests/README.md lists the lines and the sector layout.

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

use kit::boot::parse_u64;
use kit::console::{Ascii, Dec};
use kit::pci::{Bdf, Config};
use kit::virtio::{self, Device, Queue, Wait};

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const S_OK: u8 = 0;
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
/// A flush of an image file waits for the host's disk: be generous.
const TIMEOUT_US: u64 = 10_000_000;
/// First 8 bytes of sector 0; the generation follows (u64, little endian).
const MAGIC: [u8; 8] = *b"BLKSTRS1";

/// Request header, status and one sector of data, in one page.
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

fn buffers() -> *mut Buffers {
    &raw mut BUFFERS
}

fn addr_of<T>(field: *mut T) -> u64 {
    field as u64
}

fn guest_main(boot: &kit::boot::BootInfo) -> ! {
    kit::apic::init_interrupts();
    let config = match Config::from_acpi(boot) {
        Some(ecam) => ecam,
        None => Config::Ports,
    };
    let number = |key| boot.arg(key).and_then(parse_u64);
    let options = Options {
        limit: number("sectors"),
        writes: number("writes"),
        stride: number("stride").unwrap_or(1).max(1),
        flush: boot.arg("flush") != Some(b"no".as_slice()),
    };
    for slot in 0..32u8 {
        if Config::Ports.ids(slot) != Some((virtio::VENDOR_ID, virtio::DEVICE_ID_BLK)) {
            continue;
        }
        match stress(config, slot, &options) {
            Ok(Some(disk)) => {
                println!("blkstress: {} done", Bdf(disk));
                kit::power::power_off()
            }
            Ok(None) => continue,
            Err(why) => {
                println!("blkstress: {} FAILED: {}", Bdf(slot), Ascii(why.as_bytes()));
                kit::power::debug_exit(kit::power::EXIT_FAILURE)
            }
        }
    }
    println!("blkstress: no writable virtio-blk disk");
    kit::power::debug_exit(kit::power::EXIT_FAILURE)
}

/// What the command line asks for.
struct Options {
    /// Last sector to write (`sectors=`).
    limit: Option<u64>,
    /// Writes before powering off (`writes=`).
    writes: Option<u64>,
    /// Sectors from one write to the next (`stride=`), at least 1.
    stride: u64,
    /// Flush after each write (not with `flush=no`).
    flush: bool,
}

/// Drives the disk in `slot`: `Ok(None)` when it is read-only (try the next one),
/// `Ok(Some(slot))` after `writes` writes; otherwise it never returns but on failure.
fn stress(config: Config, slot: u8, options: &Options) -> Result<Option<u8>, &'static str> {
    let device = Device::probe(config, slot).map_err(virtio::Error::text)?;
    let mut queue = Queue::new();
    let offered = device
        .bring_up(&mut queue, F_FLUSH | F_RO)
        .map_err(virtio::Error::text)?;
    if offered & F_RO != 0 {
        return Ok(None);
    }
    if offered & F_FLUSH == 0 {
        return Err("the disk offers no flush, so nothing written is ever promised durable");
    }
    let capacity = device.config_u64(0);
    let last = match options.limit {
        Some(n) => n.min(capacity.saturating_sub(1)),
        None => capacity.saturating_sub(1),
    };
    if last == 0 {
        return Err("disk too small: it needs sector 0 and at least one more");
    }
    let mut disk = Disk { device, queue };

    disk.transfer(T_IN, 0)?;
    let generation = stored_generation().map_or(1, |g| g.wrapping_add(1));
    store_generation(generation);
    disk.transfer(T_OUT, 0)?;
    disk.flush()?;
    println!(
        "blkstress: {} capacity={} sectors={} gen {}",
        Bdf(slot),
        Dec(capacity),
        Dec(last),
        Dec(generation)
    );

    let mut sector = 1;
    let mut done = 0u64;
    loop {
        fill_sector(sector, generation);
        disk.transfer(T_OUT, sector)?;
        if options.flush {
            disk.flush()?;
            println!("flushed {} gen {}", Dec(sector), Dec(generation));
        } else {
            println!("written {} gen {}", Dec(sector), Dec(generation));
        }
        done += 1;
        if options.writes == Some(done) {
            return Ok(Some(slot));
        }
        sector = match sector.checked_add(options.stride) {
            Some(next) if next <= last => next,
            _ => 1,
        };
    }
}

/// One brought-up disk and its request queue.
struct Disk {
    device: Device,
    queue: Queue,
}

impl Disk {
    /// Reads (`T_IN`) or writes (`T_OUT`) `sector` from or to the data buffer.
    fn transfer(&mut self, request_type: u32, sector: u64) -> Result<(), &'static str> {
        let b = buffers();
        // SAFETY: single-threaded; only the device touches BUFFERS while a chain is out.
        let data = unsafe { addr_of(&raw mut (*b).data) };
        self.request(request_type, sector, Some((data, request_type == T_IN)))
    }

    fn flush(&mut self) -> Result<(), &'static str> {
        self.request(T_FLUSH, 0, None)
    }

    /// Sends header, optional data buffer (address, device-writable) and status; waits for
    /// the device to return the chain with status OK.
    fn request(
        &mut self,
        request_type: u32,
        sector: u64,
        data: Option<(u64, bool)>,
    ) -> Result<(), &'static str> {
        let b = buffers();
        // SAFETY: single-threaded; no chain is outstanding while the header is written.
        let (header, status) = unsafe {
            let header = &mut (*b).header;
            header[0..4].copy_from_slice(&request_type.to_le_bytes());
            header[4..8].fill(0);
            header[8..16].copy_from_slice(&sector.to_le_bytes());
            (*b).status[0] = 0xff;
            (addr_of(&raw mut (*b).header), addr_of(&raw mut (*b).status))
        };
        let header = (header, 16, false);
        let status = (status, 1, true);
        let outcome = match data {
            Some((addr, writable)) => self.queue.submit(
                &self.device,
                &[header, (addr, 512, writable), status],
                TIMEOUT_US,
            ),
            None => self
                .queue
                .submit(&self.device, &[header, status], TIMEOUT_US),
        };
        match outcome {
            Wait::Used { head: 0, .. } => {}
            Wait::Used { .. } => return Err("device returned a descriptor that was not submitted"),
            Wait::NeedsReset => return Err("device asked for a reset"),
            Wait::Timeout => return Err("request timed out"),
        }
        // SAFETY: the chain is complete; the device no longer writes the status byte.
        if unsafe { (*b).status[0] } != S_OK {
            return Err("request failed");
        }
        Ok(())
    }
}

/// The generation sector 0 holds, if it holds one (the data buffer has just been read).
fn stored_generation() -> Option<u64> {
    // SAFETY: single-threaded; the read has completed.
    let data = unsafe { &(*buffers()).data };
    let (magic, rest) = data.split_first_chunk::<8>()?;
    let (generation, _) = rest.split_first_chunk::<8>()?;
    (*magic == MAGIC).then(|| u64::from_le_bytes(*generation))
}

/// Puts the magic and `generation` into the data buffer as sector 0's content.
fn store_generation(generation: u64) {
    // SAFETY: single-threaded; no chain is outstanding.
    let data = unsafe { &mut (*buffers()).data };
    data.fill(0);
    data[0..8].copy_from_slice(&MAGIC);
    data[8..16].copy_from_slice(&generation.to_le_bytes());
}

/// Sector `n` of generation `g`: n (u64 LE), g (u64 LE), then byte i (16..512) is
/// `i * 13 ^ n * 7 ^ (n >> 8) ^ g * 59`, all truncated to 8 bits.
fn fill_sector(n: u64, g: u64) {
    // SAFETY: single-threaded; no chain is outstanding.
    let data = unsafe { &mut (*buffers()).data };
    data[0..8].copy_from_slice(&n.to_le_bytes());
    data[8..16].copy_from_slice(&g.to_le_bytes());
    let seed = (n as u8).wrapping_mul(7) ^ ((n >> 8) as u8) ^ (g as u8).wrapping_mul(59);
    for (i, byte) in data.iter_mut().enumerate().skip(16) {
        *byte = (i as u8).wrapping_mul(13) ^ seed;
    }
}
