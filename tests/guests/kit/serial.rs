//! COM1, a 16550A UART at 0x3f8 on GSI 4: polled output, interrupt-driven input.
//!
//! Output waits for "transmit holding register empty" only once per 16 bytes: with the FIFO
//! on, THRE means the whole 16-byte FIFO is free (QEMU), and vmux reports THRE always. Every
//! port access is a VM exit (~16 us on the emulating KVM here), so this halves the cost of
//! printing compared with polling before every byte.
//!
//! Input arrives in the received-data interrupt (IER bit 0), whose handler moves bytes into a
//! ring that the main loop drains with interrupts off (kit/cpu.rs `wait_for_interrupt`).

use crate::kit::apic;
use crate::kit::cpu::{inb, outb};
use crate::kit::idt;
use crate::kit::sync::SpinLock;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// COM1 base port.
pub const COM1: u16 = 0x3f8;
/// COM1's interrupt line (GSI).
pub const COM1_GSI: u32 = 4;

const THR: u16 = 0; // transmit holding (write) / receive buffer (read)
const IER: u16 = 1;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const LSR_DATA_READY: u8 = 0x01;
const LSR_THR_EMPTY: u8 = 0x20;
const FIFO_BYTES: u8 = 16;
/// Polls of LSR before giving up on a byte: a UART that never drains must not hang the guest.
const MAX_THRE_POLLS: u32 = 1_000_000;

/// Transmit-side state; only ever used under the [`UART`] lock.
pub struct Uart {
    /// Bytes that may still be written before THRE must be polled again.
    fifo_room: u8,
}

/// The transmitter, shared by every CPU.
pub static UART: SpinLock<Uart> = SpinLock::new(Uart { fifo_room: 0 });

/// Programs 115200 8N1 with FIFOs on and interrupts off. Called once by `kit_entry`.
pub fn init() {
    outb(COM1 + IER, 0x00);
    outb(COM1 + LCR, 0x80); // divisor latch access
    outb(COM1 + THR, 0x01); // divisor 1 = 115200 baud
    outb(COM1 + IER, 0x00);
    outb(COM1 + LCR, 0x03); // 8 data bits, no parity, 1 stop bit
    outb(COM1 + FCR, 0x07); // enable and clear both FIFOs
    outb(COM1 + MCR, 0x0b); // DTR, RTS, OUT2 (OUT2 gates the IRQ line on PC hardware)
}

impl Uart {
    /// Sends one byte.
    pub fn put(&mut self, byte: u8) {
        if self.fifo_room == 0 {
            wait_thr_empty();
            self.fifo_room = FIFO_BYTES;
        }
        outb(COM1 + THR, byte);
        self.fifo_room -= 1;
    }

    /// Sends bytes as they are.
    pub fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.put(byte);
        }
    }
}

fn wait_thr_empty() {
    for _ in 0..MAX_THRE_POLLS {
        if inb(COM1 + LSR) & LSR_THR_EMPTY != 0 {
            return;
        }
        core::hint::spin_loop();
    }
}

/// Writes bytes without taking the lock, polling before every byte. Only for the panic and
/// exception paths, which must print even when the interrupted code holds the lock.
pub fn write_unlocked(bytes: &[u8]) {
    for &byte in bytes {
        wait_thr_empty();
        outb(COM1 + THR, byte);
    }
}

const RX_SIZE: usize = 256;
static RX_RING: [AtomicU8; RX_SIZE] = [const { AtomicU8::new(0) }; RX_SIZE];
static RX_HEAD: AtomicUsize = AtomicUsize::new(0); // next slot the handler writes
static RX_TAIL: AtomicUsize = AtomicUsize::new(0); // next slot the reader reads
/// Received bytes dropped because the ring was full.
pub static RX_DROPPED: AtomicUsize = AtomicUsize::new(0);

/// Routes GSI 4 to this CPU and turns on the received-data interrupt.
/// Needs `apic::init_interrupts` first.
pub fn enable_rx_interrupt() {
    apic::ioapic_route(COM1_GSI, idt::VECTOR_COM1, apic::lapic_id());
    // Drain anything that arrived before the interrupt was on: it would never raise an edge.
    on_interrupt();
    outb(COM1 + IER, 0x01);
}

/// The COM1 interrupt handler: moves every received byte into the ring.
pub fn on_interrupt() {
    // Bounded so that a UART stuck at "data ready" cannot wedge the handler.
    for _ in 0..64 {
        if inb(COM1 + LSR) & LSR_DATA_READY == 0 {
            break;
        }
        let byte = inb(COM1 + THR);
        let head = RX_HEAD.load(Ordering::Relaxed);
        if head.wrapping_sub(RX_TAIL.load(Ordering::Acquire)) >= RX_SIZE {
            RX_DROPPED.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        RX_RING[head % RX_SIZE].store(byte, Ordering::Relaxed);
        RX_HEAD.store(head.wrapping_add(1), Ordering::Release);
    }
}

/// Takes the next received byte, if any.
pub fn try_read() -> Option<u8> {
    let tail = RX_TAIL.load(Ordering::Relaxed);
    if tail == RX_HEAD.load(Ordering::Acquire) {
        return None;
    }
    let byte = RX_RING[tail % RX_SIZE].load(Ordering::Relaxed);
    RX_TAIL.store(tail.wrapping_add(1), Ordering::Release);
    Some(byte)
}

/// Waits (halted, interrupt-driven) for the next received byte.
pub fn read() -> u8 {
    loop {
        if let Some(byte) = try_read() {
            return byte;
        }
        crate::kit::cpu::wait_for_interrupt();
    }
}
