//! The i8042 keyboard controller, reduced to what a VM needs: the CPU reset line. Writing the
//! "pulse reset" command (0xfe) to the command port ends the boot with [`VmExit::Reset`]
//! (Linux `reboot=k`). Status and data reads return 0: no keyboard, nothing to read, input
//! buffer empty, so a guest polling before a command never waits.
//!
//! Mapped at 0x60..0x65: offset 0 is the data port, offset 4 the command/status port. The
//! ports in between (0x61 is the PC speaker, which KVM's PIT emulates) read as all ones.

use super::bus::BusDevice;
use crate::engine::VmExit;
use crate::engine::layout;
use crate::engine::lifecycle::Lifecycle;
use std::sync::Arc;

/// Ports the device spans, from the data port to the command port inclusive.
pub const PORT_COUNT: u64 = (layout::I8042_COMMAND_PORT - layout::I8042_DATA_PORT) as u64 + 1;
const DATA_OFFSET: u64 = 0;
const COMMAND_OFFSET: u64 = (layout::I8042_COMMAND_PORT - layout::I8042_DATA_PORT) as u64;
/// The command that pulses the CPU reset line.
const CMD_RESET_CPU: u8 = 0xfe;

/// The reset-only keyboard controller.
pub struct I8042 {
    lifecycle: Arc<Lifecycle>,
}

impl I8042 {
    /// A controller that resets the VM through `lifecycle`.
    pub fn new(lifecycle: Arc<Lifecycle>) -> I8042 {
        I8042 { lifecycle }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let value = match offset {
            DATA_OFFSET | COMMAND_OFFSET => 0,
            _ => 0xff,
        };
        data.fill(value);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == COMMAND_OFFSET && data.first() == Some(&CMD_RESET_CPU) {
            self.lifecycle.request_exit(VmExit::Reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> (I8042, Arc<Lifecycle>) {
        let lifecycle = Arc::new(Lifecycle::new());
        (I8042::new(lifecycle.clone()), lifecycle)
    }

    #[test]
    fn reset_command_resets_the_vm() {
        let (mut i8042, lifecycle) = device();
        i8042.write(COMMAND_OFFSET, &[0xfe]);
        assert_eq!(lifecycle.exit(), Some(VmExit::Reset));
    }

    #[test]
    fn other_commands_are_ignored() {
        let (mut i8042, lifecycle) = device();
        i8042.write(COMMAND_OFFSET, &[0xad]);
        i8042.write(DATA_OFFSET, &[0xfe]);
        assert_eq!(lifecycle.exit(), None);
    }

    #[test]
    fn status_and_data_read_zero() {
        let (mut i8042, _) = device();
        let mut status = [0xaa];
        let mut data = [0xaa];
        i8042.read(COMMAND_OFFSET, &mut status);
        i8042.read(DATA_OFFSET, &mut data);
        assert_eq!((status, data), ([0], [0]));
    }
}
