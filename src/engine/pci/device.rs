//! The interface between the root bus and one PCI function.

use super::BarRegion;

/// Where a function sits: bus 0 always, a device slot and function 0 (every vmux device is
/// single-function).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    /// Bus number (0).
    pub bus: u8,
    /// Device (slot) number, 0..32.
    pub device: u8,
    /// Function number, 0..8.
    pub function: u8,
}

impl std::fmt::Display for PciAddress {
    /// The `lspci` form: `0000:00:03.0`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "0000:{:02x}:{:02x}.{}",
            self.bus, self.device, self.function
        )
    }
}

/// One PCI function on the root bus. Called on vCPU threads with the device's lock held; every
/// method must tolerate any offset, width and value a guest can produce (the bus hands over
/// offsets inside the space or BAR, widths of 1, 2, 4 or 8 bytes, aligned).
pub trait PciDevice: Send {
    /// The guest reads `data.len()` bytes of configuration space at `offset` (< 4096).
    fn read_config(&mut self, offset: usize, data: &mut [u8]);
    /// The guest writes configuration space at `offset` (< 4096).
    fn write_config(&mut self, offset: usize, data: &[u8]);
    /// The BARs that decode now (memory decoding enabled, programmed address).
    fn bar_regions(&self) -> Vec<BarRegion>;
    /// The guest reads `data.len()` bytes at `offset` inside BAR `bar`.
    fn read_bar(&mut self, bar: u8, offset: u64, data: &mut [u8]);
    /// The guest writes `data` at `offset` inside BAR `bar`.
    fn write_bar(&mut self, bar: u8, offset: u64, data: &[u8]);
}
