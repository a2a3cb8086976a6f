//! The host bridge at 00:00.0: an identity for the guest's PCI code to find, nothing more.
//! It has no BARs and no capabilities; every writable bit is the generic header's.

use super::{BarRegion, PciConfiguration, PciDevice, PciHeader};

/// Red Hat's vendor id and its "QEMU PCIe host bridge" device id: a generic host bridge with
/// no chipset quirks attached in Linux.
const HOST_BRIDGE_HEADER: PciHeader = PciHeader {
    vendor_id: 0x1b36,
    device_id: 0x0008,
    revision: 0,
    class: [0x06, 0x00, 0x00],
    subsystem_vendor_id: 0x1b36,
    subsystem_id: 0x0008,
};

/// The root bus's host bridge (class 06/00).
pub struct HostBridge {
    config: PciConfiguration,
}

impl HostBridge {
    /// A host bridge header.
    pub fn new() -> HostBridge {
        HostBridge {
            config: PciConfiguration::new(&HOST_BRIDGE_HEADER),
        }
    }
}

impl Default for HostBridge {
    fn default() -> Self {
        HostBridge::new()
    }
}

impl PciDevice for HostBridge {
    fn read_config(&mut self, offset: usize, data: &mut [u8]) {
        self.config.read(offset, data);
    }

    fn write_config(&mut self, offset: usize, data: &[u8]) {
        self.config.write(offset, data);
    }

    fn bar_regions(&self) -> Vec<BarRegion> {
        Vec::new()
    }

    fn read_bar(&mut self, _bar: u8, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write_bar(&mut self, _bar: u8, _offset: u64, _data: &[u8]) {}
}
