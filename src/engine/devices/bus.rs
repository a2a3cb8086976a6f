//! An address bus: ranges of I/O ports or guest-physical MMIO addresses mapped to devices.
//!
//! vCPU threads dispatch their I/O and MMIO exits here. Each device sits behind its own Mutex,
//! so two vCPUs touching different devices never wait on each other. An access that no device
//! claims completely reads as all ones and is otherwise ignored, like an empty ISA/PCI bus; the
//! guest can never make the bus panic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A device reachable through a [`Bus`]. `offset` is relative to the start of the range the
/// device was inserted at; `data.len()` is the access width (1, 2, 4 or 8 bytes, but a guest
/// can make it anything up to the range length, so implementations must not assume).
pub trait BusDevice: Send {
    /// The guest reads `data.len()` bytes at `offset`; fill `data`.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// The guest writes `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// A device shared between the bus and whoever else controls it (a `VmHandle`, tests).
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// Errors inserting devices.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The new range overlaps one already taken, or is empty or wraps around.
    #[error("bus range {base:#x}+{len:#x} overlaps another device or is empty")]
    Overlap {
        /// Start of the refused range.
        base: u64,
        /// Its length.
        len: u64,
    },
}

#[derive(Clone)]
struct Slot {
    len: u64,
    device: SharedDevice,
}

/// Address ranges mapped to devices. Built before the vCPUs start, then shared read-only.
#[derive(Clone, Default)]
pub struct Bus {
    slots: BTreeMap<u64, Slot>,
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Bus {
        Bus::default()
    }

    /// Maps `device` at `base..base + len`.
    pub fn insert(&mut self, device: SharedDevice, base: u64, len: u64) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::Overlap { base, len })?;
        let overlaps_previous = self
            .slots
            .range(..end)
            .next_back()
            .is_some_and(|(b, s)| b + s.len > base);
        if overlaps_previous {
            return Err(BusError::Overlap { base, len });
        }
        self.slots.insert(base, Slot { len, device });
        Ok(())
    }

    /// The device whose range holds all of `addr..addr + len`, and the offset of `addr` in it.
    fn resolve(&self, addr: u64, len: usize) -> Option<(&Slot, u64)> {
        let (base, slot) = self.slots.range(..=addr).next_back()?;
        let offset = addr - base;
        let end = offset.checked_add(len as u64)?;
        (end <= slot.len).then_some((slot, offset))
    }

    /// Dispatches a read; returns whether a device claimed it. Unclaimed reads are all ones.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.resolve(addr, data.len()) {
            Some((slot, offset)) => {
                lock(&slot.device).read(offset, data);
                true
            }
            None => {
                data.fill(0xff);
                false
            }
        }
    }

    /// Dispatches a write; returns whether a device claimed it. Unclaimed writes are dropped.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.resolve(addr, data.len()) {
            Some((slot, offset)) => {
                lock(&slot.device).write(offset, data);
                true
            }
            None => false,
        }
    }
}

/// Locks a device. A poisoned lock means a device panicked on another vCPU thread, which
/// already ends the VM as crashed; carrying on with the inner state cannot make that worse.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records accesses and answers reads with its offset.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<(u64, Vec<u8>)>,
    }

    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.writes.push((offset, data.to_vec()));
        }
    }

    fn bus_with_recorder(base: u64, len: u64) -> (Bus, Arc<Mutex<Recorder>>) {
        let device = Arc::new(Mutex::new(Recorder::default()));
        let mut bus = Bus::new();
        bus.insert(device.clone(), base, len).expect("insert");
        (bus, device)
    }

    #[test]
    fn access_is_routed_with_the_offset_in_the_device() {
        let (bus, device) = bus_with_recorder(0x3f8, 8);
        let mut byte = [0u8];
        assert!(bus.read(0x3fd, &mut byte));
        assert!(bus.write(0x3f9, &[7]));
        assert_eq!(byte, [5]);
        assert_eq!(lock(&device).writes, vec![(1, vec![7])]);
    }

    #[test]
    fn unclaimed_read_returns_all_ones() {
        let (bus, _) = bus_with_recorder(0x3f8, 8);
        let mut data = [0u8; 4];
        assert!(!bus.read(0x80, &mut data));
        assert_eq!(data, [0xff; 4]);
    }

    #[test]
    fn unclaimed_write_is_ignored() {
        let (bus, device) = bus_with_recorder(0x3f8, 8);
        assert!(!bus.write(0x400, &[1]));
        assert!(lock(&device).writes.is_empty());
    }

    #[test]
    fn access_straddling_the_end_of_a_device_is_unclaimed() {
        let (bus, device) = bus_with_recorder(0x3f8, 8);
        let mut data = [0u8; 4];
        assert!(!bus.read(0x3fe, &mut data));
        assert!(!bus.write(0x3fe, &[1, 2, 3, 4]));
        assert_eq!(data, [0xff; 4]);
        assert!(lock(&device).writes.is_empty());
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let (mut bus, _) = bus_with_recorder(0x3f8, 8);
        let other = Arc::new(Mutex::new(Recorder::default()));
        assert!(bus.insert(other.clone(), 0x3f0, 9).is_err());
        assert!(bus.insert(other.clone(), 0x3ff, 1).is_err());
        assert!(bus.insert(other, 0x400, 1).is_ok());
    }

    #[test]
    fn empty_and_wrapping_ranges_are_refused() {
        let mut bus = Bus::new();
        let device = Arc::new(Mutex::new(Recorder::default()));
        assert!(bus.insert(device.clone(), 0x10, 0).is_err());
        assert!(bus.insert(device, u64::MAX, 2).is_err());
    }
}
