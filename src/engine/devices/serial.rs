//! COM1: vm-superio's 16550A model on ports 0x3f8..0x3ff, interrupting on GSI 4 through an
//! irqfd, with output going to the VM's [`SerialSink`] and input queued on the host side.
//!
//! The UART's own receive FIFO holds only 64 bytes, so host input waits in a bounded queue
//! ([`INPUT_CAPACITY`]) and is moved into the FIFO whenever the guest has drained it: after a
//! read of the receive register empties it, and on a line-status read that finds it empty (a
//! polling guest). Input accepted by [`Serial::queue_input`] therefore always reaches the
//! guest eventually, and one interrupt announces up to a FIFO's worth of bytes.

use super::bus::BusDevice;
use crate::engine::SerialSink;
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use vm_superio::Trigger;
use vm_superio::serial::NoEvents;
use vmm_sys_util::eventfd::EventFd;

mod state;

pub use state::SerialStateError;

/// Host-side input bytes held for the guest beyond the UART's FIFO.
pub const INPUT_CAPACITY: usize = 64 * 1024;
/// Ports (registers) of a 16550.
pub const REGISTER_COUNT: u64 = 8;
/// Size of vm-superio's receive FIFO.
const UART_FIFO_SIZE: usize = 64;
/// Register offset of the receive buffer (DLAB clear).
const RBR_OFFSET: u64 = 0;
/// Register offset of the line control register (holds DLAB).
const LCR_OFFSET: u8 = 3;
/// Register offset of the line status register.
const LSR_OFFSET: u64 = 5;
/// LCR bit 7: divisor latch access (offsets 0 and 1 are the divisor while set).
const LCR_DLAB: u8 = 0x80;

/// Raises the UART's interrupt by signalling its irqfd.
pub struct IrqTrigger(EventFd);

impl Trigger for IrqTrigger {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// Forwards transmitted bytes to the sink. Never blocks: the sink's contract.
pub struct SinkWriter(Arc<dyn SerialSink>);

impl io::Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The COM1 device. Lives behind the bus's Mutex; vCPU threads and `VmHandle` lock it briefly.
pub struct Serial {
    uart: vm_superio::Serial<IrqTrigger, NoEvents, SinkWriter>,
    pending: VecDeque<u8>,
}

impl Serial {
    /// A UART that interrupts through `irq` (an eventfd registered as irqfd) and sends its
    /// output to `sink`.
    pub fn new(irq: EventFd, sink: Arc<dyn SerialSink>) -> Serial {
        Serial {
            uart: vm_superio::Serial::new(IrqTrigger(irq), SinkWriter(sink)),
            pending: VecDeque::new(),
        }
    }

    /// Queues host input for the guest; returns how many bytes were accepted (the rest did
    /// not fit the bounded queue).
    pub fn queue_input(&mut self, bytes: &[u8]) -> usize {
        let room = INPUT_CAPACITY - self.pending.len();
        let accepted = bytes.len().min(room);
        self.pending.extend(&bytes[..accepted]);
        self.refill();
        accepted
    }

    /// Bytes accepted but not yet read by the guest (queue plus FIFO).
    #[cfg(test)]
    pub fn pending_input(&self) -> usize {
        self.pending.len() + (UART_FIFO_SIZE - self.uart.fifo_capacity())
    }

    /// Moves queued input into the UART's FIFO as far as it has room.
    fn refill(&mut self) {
        let room = self.uart.fifo_capacity().min(self.pending.len());
        if room == 0 {
            return;
        }
        let chunk: Vec<u8> = self.pending.iter().take(room).copied().collect();
        // Fails only in loopback mode (accepts nothing) or when the irqfd write fails; either
        // way the bytes stay queued for the next refill.
        if let Ok(accepted) = self.uart.enqueue_raw_bytes(&chunk) {
            self.pending.drain(..accepted);
        }
    }

    fn fifo_is_empty(&self) -> bool {
        self.uart.fifo_capacity() == UART_FIFO_SIZE
    }

    fn dlab_set(&mut self) -> bool {
        self.uart.read(LCR_OFFSET) & LCR_DLAB != 0
    }

    fn read_register(&mut self, offset: u64) -> u8 {
        if offset >= REGISTER_COUNT {
            return 0xff;
        }
        // Reading the divisor latch must not count as draining the receive buffer.
        let is_rbr = offset == RBR_OFFSET && !self.dlab_set();
        let value = self.uart.read(offset as u8);
        if (is_rbr || offset == LSR_OFFSET) && self.fifo_is_empty() {
            self.refill();
        }
        value
    }
}

impl BusDevice for Serial {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // A wider access reads consecutive registers, one byte each.
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = self.read_register(offset + i as u64);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        for (i, byte) in data.iter().enumerate() {
            let offset = offset + i as u64;
            if offset >= REGISTER_COUNT {
                continue;
            }
            // Errors are the sink's or the irqfd's; the guest cannot do anything about either
            // and the UART model has already updated its registers.
            let _ = self.uart.write(offset as u8, *byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    const IER_OFFSET: u64 = 1;
    const SCR_OFFSET: u64 = 7;
    const LSR_DATA_READY: u8 = 0x01;
    const LSR_THR_EMPTY: u8 = 0x20;

    #[derive(Default)]
    pub(super) struct Capture(Mutex<Vec<u8>>);

    impl SerialSink for Capture {
        fn write(&self, bytes: &[u8]) {
            self.0
                .lock()
                .expect("capture lock")
                .extend_from_slice(bytes);
        }
    }

    pub(super) fn serial() -> (Serial, Arc<Capture>, EventFd) {
        let irq = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
        let capture = Arc::new(Capture::default());
        let serial = Serial::new(irq.try_clone().expect("clone"), capture.clone());
        (serial, capture, irq)
    }

    fn read_byte(serial: &mut Serial, offset: u64) -> u8 {
        let mut data = [0u8];
        serial.read(offset, &mut data);
        data[0]
    }

    #[test]
    fn transmitted_bytes_reach_the_sink() {
        let (mut serial, capture, _) = serial();
        for b in b"hi\n" {
            serial.write(0, &[*b]);
        }
        assert_eq!(*capture.0.lock().expect("lock"), b"hi\n");
    }

    #[test]
    fn input_beyond_the_fifo_arrives_as_the_guest_reads() {
        let (mut serial, _, _) = serial();
        let input: Vec<u8> = (0..200u8).collect();
        assert_eq!(serial.queue_input(&input), 200);
        let mut received = Vec::new();
        while read_byte(&mut serial, LSR_OFFSET) & LSR_DATA_READY != 0 {
            received.push(read_byte(&mut serial, RBR_OFFSET));
        }
        assert_eq!(received, input);
    }

    #[test]
    fn input_beyond_capacity_is_refused_and_counted() {
        let (mut serial, _, _) = serial();
        let accepted = serial.queue_input(&vec![b'x'; INPUT_CAPACITY + 1000]);
        assert_eq!(accepted, INPUT_CAPACITY);
        assert_eq!(serial.pending_input(), INPUT_CAPACITY);
    }

    #[test]
    fn received_data_interrupt_fires_when_enabled() {
        let (mut serial, _, irq) = serial();
        serial.write(IER_OFFSET, &[0x01]);
        let _ = irq.read();
        serial.queue_input(b"a");
        assert_eq!(irq.read().expect("interrupt raised"), 1);
    }

    #[test]
    fn reading_the_divisor_latch_does_not_consume_input() {
        let (mut serial, _, _) = serial();
        serial.queue_input(b"z");
        serial.write(3, &[LCR_DLAB]);
        let _ = read_byte(&mut serial, RBR_OFFSET);
        serial.write(3, &[0x03]);
        assert_eq!(read_byte(&mut serial, RBR_OFFSET), b'z');
    }

    #[test]
    fn registers_past_the_uart_read_as_all_ones() {
        let (mut serial, _, _) = serial();
        serial.queue_input(b"k");
        assert_eq!(read_byte(&mut serial, 256), 0xff);
        assert_eq!(read_byte(&mut serial, RBR_OFFSET), b'k');
    }

    #[test]
    fn odd_sized_and_out_of_range_accesses_leave_a_working_uart() {
        let (mut serial, capture, _) = serial();
        let mut wide = [0u8; 8];
        serial.read(0, &mut wide);
        serial.write(6, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let mut past = [0u8; 8];
        serial.read(200, &mut past);

        // The wide read saw each register once: LSR says the transmitter is empty.
        assert_eq!(wide[LSR_OFFSET as usize] & LSR_THR_EMPTY, LSR_THR_EMPTY);
        assert_eq!(past, [0xff; 8], "past the UART reads as all ones");
        // The part of the long write inside the UART landed (scratch = 2), the rest vanished.
        assert_eq!(read_byte(&mut serial, SCR_OFFSET), 2);
        // It still transmits and receives.
        serial.write(RBR_OFFSET, b"o");
        serial.write(RBR_OFFSET, b"k");
        assert_eq!(*capture.0.lock().expect("lock"), b"ok");
        serial.queue_input(b"z");
        assert_eq!(
            read_byte(&mut serial, LSR_OFFSET) & LSR_DATA_READY,
            LSR_DATA_READY
        );
        assert_eq!(read_byte(&mut serial, RBR_OFFSET), b'z');
    }
}
