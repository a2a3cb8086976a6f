//! The ACPI Generic Event Device's register: a 32-bit bitmask of pending events at ports
//! 0x610..0x613 that the guest's `_EVT` method reads, and an interrupt (GSI 5) that tells it to.
//!
//! A read returns the pending bits of the bytes read and clears them, so events raised while
//! the guest handles earlier ones are never lost. Bit 3 is the power button
//! ([`layout::GED_EVENT_POWER_BUTTON`]); CPU and PCI hotplug bits come later.

use super::bus::BusDevice;
use crate::engine::layout;
use std::io;
use vmm_sys_util::eventfd::EventFd;

mod state;

/// Ports the register spans.
pub const PORT_COUNT: u64 = layout::GED_PORT_SIZE as u64;

/// The GED event register and its interrupt.
pub struct Ged {
    pending: u32,
    irq: EventFd,
}

impl Ged {
    /// A GED raising its interrupt through `irq` (an eventfd registered as irqfd).
    pub fn new(irq: EventFd) -> Ged {
        Ged { pending: 0, irq }
    }

    /// Marks `events` (GED event bits) pending and interrupts the guest.
    pub fn notify(&mut self, events: u32) -> io::Result<()> {
        self.pending |= events;
        self.irq.write(1)
    }

    /// Presses the power button.
    pub fn power_button(&mut self) -> io::Result<()> {
        self.notify(layout::GED_EVENT_POWER_BUTTON)
    }
}

impl BusDevice for Ged {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let bytes = self.pending.to_le_bytes();
        for (i, out) in data.iter_mut().enumerate() {
            let Some(byte) = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .filter(|o| *o < bytes.len())
            else {
                *out = 0;
                continue;
            };
            *out = bytes[byte];
            self.pending &= !(0xff << (8 * byte));
        }
    }

    fn write(&mut self, _offset: u64, _data: &[u8]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ged() -> (Ged, EventFd) {
        let irq = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
        (Ged::new(irq.try_clone().expect("clone")), irq)
    }

    fn read_u32(ged: &mut Ged) -> u32 {
        let mut data = [0u8; 4];
        ged.read(0, &mut data);
        u32::from_le_bytes(data)
    }

    #[test]
    fn power_button_sets_bit_three_and_interrupts() {
        let (mut ged, irq) = ged();
        ged.power_button().expect("press");
        assert_eq!(irq.read().expect("interrupt"), 1);
        assert_eq!(read_u32(&mut ged), 1 << 3);
    }

    #[test]
    fn read_clears_the_events() {
        let (mut ged, _) = ged();
        ged.power_button().expect("press");
        read_u32(&mut ged);
        assert_eq!(read_u32(&mut ged), 0);
    }

    #[test]
    fn byte_read_clears_only_that_byte() {
        let (mut ged, _) = ged();
        ged.notify(0x0100_0008).expect("notify");
        let mut high = [0u8];
        ged.read(3, &mut high);
        assert_eq!(high, [0x01]);
        assert_eq!(read_u32(&mut ged), 0x08);
    }

    #[test]
    fn reads_past_the_register_return_zero() {
        let (mut ged, _) = ged();
        ged.notify(u32::MAX).expect("notify");
        let mut data = [0xaau8; 8];
        ged.read(2, &mut data);
        assert_eq!(data, [0xff, 0xff, 0, 0, 0, 0, 0, 0]);
    }
}
