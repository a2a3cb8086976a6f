//! Saving and restoring COM1: vm-superio's registers and receive FIFO (its own
//! `SerialState`), plus the console input vmux accepted but has not yet moved into the FIFO.
//! A restored UART raises its interrupt again when its state says one is due.

use std::collections::VecDeque;

use super::{INPUT_CAPACITY, IrqTrigger, Serial, SinkWriter};
use crate::engine::snapshot::{Blob, SerialState};

/// Why COM1's saved state cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SerialStateError {
    /// More bytes than the UART's FIFO or the input queue holds.
    #[error("the saved COM1 holds more input than its FIFO and queue take")]
    TooMuchInput,
    /// The interrupt eventfd could not be shared with the rebuilt UART.
    #[error("cannot rebuild COM1's interrupt line")]
    Interrupt(#[source] std::io::Error),
}

impl Serial {
    /// COM1's state for a save.
    pub fn save_state(&self) -> SerialState {
        let uart = self.uart.state();
        SerialState {
            baud_divisor_low: uart.baud_divisor_low,
            baud_divisor_high: uart.baud_divisor_high,
            interrupt_enable: uart.interrupt_enable,
            interrupt_identification: uart.interrupt_identification,
            line_control: uart.line_control,
            line_status: uart.line_status,
            modem_control: uart.modem_control,
            modem_status: uart.modem_status,
            scratch: uart.scratch,
            fifo: Blob(uart.in_buffer),
            pending: Blob(self.pending.iter().copied().collect()),
        }
    }

    /// Takes back a saved state (registers, FIFO and queued input).
    pub fn restore_state(&mut self, saved: &SerialState) -> Result<(), SerialStateError> {
        if saved.pending.0.len() > INPUT_CAPACITY {
            return Err(SerialStateError::TooMuchInput);
        }
        let state = vm_superio::serial::SerialState {
            baud_divisor_low: saved.baud_divisor_low,
            baud_divisor_high: saved.baud_divisor_high,
            interrupt_enable: saved.interrupt_enable,
            interrupt_identification: saved.interrupt_identification,
            line_control: saved.line_control,
            line_status: saved.line_status,
            modem_control: saved.modem_control,
            modem_status: saved.modem_status,
            scratch: saved.scratch,
            in_buffer: saved.fifo.0.clone(),
        };
        let irq = self
            .uart
            .interrupt_evt()
            .0
            .try_clone()
            .map_err(SerialStateError::Interrupt)?;
        let out = SinkWriter(self.uart.writer().0.clone());
        let uart = vm_superio::Serial::from_state(
            &state,
            IrqTrigger(irq),
            vm_superio::serial::NoEvents,
            out,
        )
        .map_err(|e| match e {
            vm_superio::serial::Error::Trigger(io) => SerialStateError::Interrupt(io),
            _ => SerialStateError::TooMuchInput,
        })?;
        self.uart = uart;
        self.pending = VecDeque::from(saved.pending.0.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::devices::bus::BusDevice;
    use crate::engine::devices::serial::tests::serial;

    #[test]
    fn queued_input_and_registers_survive_a_save() {
        let (mut original, _, _) = serial();
        original.write(3, &[0x03]);
        original.write(7, &[0x5a]);
        let input: Vec<u8> = (0..100u8).collect();
        original.queue_input(&input);
        let saved = original.save_state();

        let (mut restored, _, _) = serial();
        restored.restore_state(&saved).expect("restore");

        assert_eq!(restored.save_state(), saved);
        let mut received = Vec::new();
        let mut byte = [0u8];
        loop {
            restored.read(5, &mut byte);
            if byte[0] & 1 == 0 {
                break;
            }
            restored.read(0, &mut byte);
            received.push(byte[0]);
        }
        assert_eq!(received, input);
    }
}
