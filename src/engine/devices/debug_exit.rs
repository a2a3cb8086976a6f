//! The debug-exit port (0xf4), compatible with QEMU's `isa-debug-exit`: a write of value `v`
//! (1 to 4 bytes, little endian) ends the boot with [`VmExit::DebugExit`]`(v)`. Tests,
//! benchmarks and guest-kit programs use it to end a VM with a result in one instruction.

use super::bus::BusDevice;
use crate::engine::VmExit;
use crate::engine::lifecycle::Lifecycle;
use std::sync::Arc;

/// Ports the device spans.
pub const PORT_COUNT: u64 = 4;

/// The debug-exit device.
pub struct DebugExit {
    lifecycle: Arc<Lifecycle>,
}

impl DebugExit {
    /// A device that ends the boot through `lifecycle`.
    pub fn new(lifecycle: Arc<Lifecycle>) -> DebugExit {
        DebugExit { lifecycle }
    }
}

impl BusDevice for DebugExit {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        let mut value = [0u8; 4];
        let len = data.len().min(4);
        value[..len].copy_from_slice(&data[..len]);
        self.lifecycle
            .request_exit(VmExit::DebugExit(u32::from_le_bytes(value)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_value_becomes_the_exit_code() {
        let lifecycle = Arc::new(Lifecycle::new());
        DebugExit::new(lifecycle.clone()).write(0, &[0x34, 0x12]);
        assert_eq!(lifecycle.exit(), Some(VmExit::DebugExit(0x1234)));
    }

    #[test]
    fn byte_write_of_zero_exits_with_zero() {
        let lifecycle = Arc::new(Lifecycle::new());
        DebugExit::new(lifecycle.clone()).write(0, &[0]);
        assert_eq!(lifecycle.exit(), Some(VmExit::DebugExit(0)));
    }
}
