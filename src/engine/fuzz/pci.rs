//! Fuzz entry point for the PCI side a guest reaches with port and MMIO accesses: the root
//! bus's configuration mechanisms (0xCF8/0xCFC and ECAM), the host bridge, a virtio-blk
//! function and a virtio-balloon function with their BARs (common configuration, notify, ISR,
//! device configuration, MSI-X table), assembled by the same [`PciPlatform`] a VM uses.

use std::path::PathBuf;
use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress};

use super::support::{Input, MemDisk, NullVm, guest_ram};
use crate::engine::DiskSpec;
use crate::engine::devices::bus::Bus;
use crate::engine::layout;
use crate::engine::pci::PciPlatform;

/// Size of the fuzzed disk, bytes (64 sectors).
const DISK_BYTES: usize = 64 * 512;

/// Runs the accesses `data` encodes, one after the other, against a fresh root bus with one
/// virtio-blk and one virtio-balloon function. Each access is an opcode byte (low three bits:
/// what; bits 4-5: width 1, 2, 4 or 8 bytes) and its operands; see the match below.
pub fn registers(data: &[u8]) {
    let mut input = Input::new(data);
    let Some(mem) = guest_ram(&[]) else {
        return;
    };
    let mut io_bus = Bus::new();
    let mut mmio_bus = Bus::new();
    let disk = DiskSpec {
        path: PathBuf::from("fuzz.img"),
        read_only: false,
        serial: "fuzz".to_owned(),
        backend: Some(Arc::new(MemDisk::new(DISK_BYTES, false))),
    };
    let Ok(platform) = PciPlatform::create(
        Arc::new(NullVm::default()),
        &mem,
        &[disk],
        &[],
        true,
        &mut io_bus,
        &mut mmio_bus,
    ) else {
        return;
    };
    while !input.is_empty() {
        let op = input.byte();
        let len = 1usize << ((op >> 4) & 3);
        let mut data = [0u8; 8];
        match op & 7 {
            0 | 1 => {
                let port = u64::from(layout::PCI_CONFIG_PORT) + u64::from(input.byte() % 8);
                access(&io_bus, op, port, &mut data[..len], &mut input);
            }
            2 | 3 => {
                // Device 0-3 (the host bridge, the disk, the balloon, an empty slot), any
                // function.
                let function = u64::from(input.byte() % 32);
                let offset = function << 12 | u64::from(input.u16() % 4096);
                let addr = layout::PCI_ECAM_START + offset;
                access(&mmio_bus, op, addr, &mut data[..len], &mut input);
            }
            4 | 5 => {
                // Where the disk's BAR 0 starts until the guest moves it, and 64 KiB on (the
                // balloon's BAR may follow it).
                let addr = layout::PCI_MMIO_START + u64::from(input.u16());
                access(&mmio_bus, op, addr, &mut data[..len], &mut input);
            }
            6 => {
                // The driver fills its rings and buffers between register accesses.
                let addr = u64::from(input.u16());
                let _ = mem.write_slice(&input.u64().to_le_bytes(), GuestAddress(addr));
            }
            _ => {
                // Anywhere in the 32-bit address space (a moved BAR, the hole, ECAM); bit 3
                // picks read or write.
                let addr = u64::from(input.u32());
                access(&mmio_bus, op >> 3, addr, &mut data[..len], &mut input);
            }
        }
    }
    // Dropping the platform stops the worker a DRIVER_OK may have started.
    drop(platform);
}

/// A write (even opcodes) of the next operand bytes, or a read (odd ones), at `addr`.
fn access(bus: &Bus, op: u8, addr: u64, data: &mut [u8], input: &mut Input<'_>) {
    if op & 1 == 0 {
        let value = input.u64().to_le_bytes();
        data.copy_from_slice(&value[..data.len()]);
        bus.write(addr, data);
    } else {
        bus.read(addr, data);
    }
}
