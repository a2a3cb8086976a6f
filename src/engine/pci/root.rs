//! The root bus: 32 device slots on bus 0, the map of decoding BARs, and the three adapters
//! the engine maps on its buses (mechanism #1 ports, ECAM, the BAR window).
//!
//! Locking: an adapter locks the root only to find the device (an `Arc`), releases it, then
//! locks the device. After a configuration write the root re-reads that device's BARs (root,
//! then device). Nothing locks a device and then the root, so the order cannot invert.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{HostBridge, LEGACY_CONFIG_SPACE_SIZE, PciAddress, PciDevice, PciError};
use crate::engine::devices::bus::BusDevice;
use crate::engine::layout;

/// A device as the root holds it: each behind its own lock so vCPUs touching different
/// devices never wait on each other.
pub type SharedPciDevice = Arc<Mutex<dyn PciDevice>>;

/// Device slots on a bus.
const SLOTS: usize = 32;
/// Mechanism #1 address register: enable bit.
const CONFIG_ADDRESS_ENABLE: u32 = 1 << 31;
/// ECAM: bytes of configuration space per function.
const ECAM_FUNCTION_SIZE: u64 = 4096;

/// Where a BAR decodes and whose it is.
#[derive(Debug, Clone, Copy)]
struct MappedBar {
    size: u64,
    slot: usize,
    index: u8,
}

/// PCI segment 0, bus 0. Shared by the adapters as `Arc<Mutex<PciRoot>>`.
pub struct PciRoot {
    slots: Vec<Option<SharedPciDevice>>,
    /// Decoding BARs by base address.
    bars: BTreeMap<u64, MappedBar>,
}

impl PciRoot {
    /// A bus holding only the host bridge at 00:00.0.
    pub fn new() -> PciRoot {
        let mut slots: Vec<Option<SharedPciDevice>> = vec![None; SLOTS];
        slots[0] = Some(Arc::new(Mutex::new(HostBridge::new())));
        PciRoot {
            slots,
            bars: BTreeMap::new(),
        }
    }

    /// Plugs `device` into the lowest free slot and returns its address.
    pub fn add_device(&mut self, device: SharedPciDevice) -> Result<PciAddress, PciError> {
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(PciError::NoFreeSlot)?;
        self.slots[slot] = Some(device);
        self.refresh_bars(slot);
        Ok(PciAddress {
            bus: 0,
            device: slot as u8,
            function: 0,
        })
    }

    /// Plugs `device` into `slot` (1..32), which must be free (a restore puts each function back
    /// where it was).
    pub fn add_device_at(
        &mut self,
        slot: u8,
        device: SharedPciDevice,
    ) -> Result<PciAddress, PciError> {
        let index = usize::from(slot);
        match self.slots.get_mut(index) {
            Some(free @ None) if slot != 0 => *free = Some(device),
            _ => return Err(PciError::SlotTaken { slot }),
        }
        self.refresh_bars(index);
        Ok(PciAddress {
            bus: 0,
            device: slot,
            function: 0,
        })
    }

    /// Re-reads where the device in `slot` decodes (after its configuration space was restored).
    pub fn refresh(&mut self, slot: u8) {
        self.refresh_bars(usize::from(slot));
    }

    /// Unplugs the device in `slot` (never the host bridge in slot 0) and stops decoding its
    /// BARs; returns it so the caller can drop it outside the root's lock.
    pub fn remove_device(&mut self, slot: u8) -> Option<SharedPciDevice> {
        let slot = usize::from(slot);
        if slot == 0 {
            return None;
        }
        let device = self.slots.get_mut(slot)?.take()?;
        self.bars.retain(|_, bar| bar.slot != slot);
        Some(device)
    }

    /// The device at `address`, if one is plugged there.
    pub fn device(&self, address: PciAddress) -> Option<SharedPciDevice> {
        if address.bus != 0 || address.function != 0 {
            return None;
        }
        self.slots.get(usize::from(address.device))?.clone()
    }

    /// Re-reads where `slot`'s BARs decode (after a configuration write or a plug).
    fn refresh_bars(&mut self, slot: usize) {
        self.bars.retain(|_, bar| bar.slot != slot);
        let Some(device) = self.slots.get(slot).cloned().flatten() else {
            return;
        };
        for region in lock(&device).bar_regions() {
            self.bars.insert(
                region.base,
                MappedBar {
                    size: region.size,
                    slot,
                    index: region.index,
                },
            );
        }
    }

    /// The device, BAR and offset that decode `addr..addr + len`, if one BAR holds it all.
    fn resolve_bar(&self, addr: u64, len: usize) -> Option<(SharedPciDevice, u8, u64)> {
        let (base, bar) = self.bars.range(..=addr).next_back()?;
        let offset = addr - base;
        let end = offset.checked_add(len as u64)?;
        if end > bar.size {
            return None;
        }
        let device = self.slots[bar.slot].clone()?;
        Some((device, bar.index, offset))
    }
}

impl Default for PciRoot {
    fn default() -> Self {
        PciRoot::new()
    }
}

fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a device panicked on another vCPU thread, which already ends the
    // VM as crashed; the register state is still coherent enough to answer accesses.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads configuration space of the function at `address`: all ones when nothing is there.
fn read_config(root: &Mutex<PciRoot>, address: PciAddress, offset: usize, data: &mut [u8]) {
    let device = lock(root).device(address);
    match device {
        Some(device) => lock(&device).read_config(offset, data),
        None => data.fill(0xff),
    }
}

/// Writes configuration space of the function at `address`, then follows its BARs.
fn write_config(root: &Mutex<PciRoot>, address: PciAddress, offset: usize, data: &[u8]) {
    let Some(device) = lock(root).device(address) else {
        return;
    };
    lock(&device).write_config(offset, data);
    lock(root).refresh_bars(usize::from(address.device));
}

/// A configuration access is 1, 2 or 4 bytes, naturally aligned.
fn is_config_access(offset: u64, len: usize) -> bool {
    matches!(len, 1 | 2 | 4) && offset.is_multiple_of(len as u64)
}

/// Configuration mechanism #1: the address register at 0xCF8 and the data window at
/// 0xCFC..0xCFF. Inserted on the port bus at [`layout::PCI_CONFIG_PORT`], 8 ports.
pub struct PciConfigIo {
    root: Arc<Mutex<PciRoot>>,
    address: u32,
}

impl PciConfigIo {
    /// The port pair for `root`.
    pub fn new(root: Arc<Mutex<PciRoot>>) -> PciConfigIo {
        PciConfigIo { root, address: 0 }
    }

    /// The function and register the address register selects, with the data port offset
    /// added, or `None` when decoding is off or the function is out of reach.
    fn target(&self, data_offset: u64, len: usize) -> Option<(PciAddress, usize)> {
        if self.address & CONFIG_ADDRESS_ENABLE == 0
            || !is_config_access(data_offset, len)
            || data_offset + len as u64 > 4
        {
            return None;
        }
        let address = PciAddress {
            bus: (self.address >> 16) as u8,
            device: ((self.address >> 11) & 0x1f) as u8,
            function: ((self.address >> 8) & 0x7) as u8,
        };
        let register = (self.address & 0xfc) as usize + data_offset as usize;
        (register < LEGACY_CONFIG_SPACE_SIZE).then_some((address, register))
    }
}

impl BusDevice for PciConfigIo {
    /// The guest reads `data.len()` bytes at port `0xcf8 + offset`.
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            0 if data.len() == 4 => data.copy_from_slice(&self.address.to_le_bytes()),
            4.. => match self.target(offset - 4, data.len()) {
                Some((address, register)) => read_config(&self.root, address, register, data),
                None => data.fill(0xff),
            },
            _ => data.fill(0xff),
        }
    }

    /// The guest writes `data` at port `0xcf8 + offset`. Narrower writes to the address
    /// register (Linux's type-1 probe pokes 0xCFB with a byte) are ignored.
    fn write(&mut self, offset: u64, data: &[u8]) {
        match offset {
            0 => {
                if let Ok(bytes) = <[u8; 4]>::try_from(data) {
                    self.address = u32::from_le_bytes(bytes);
                }
            }
            4.. => {
                if let Some((address, register)) = self.target(offset - 4, data.len()) {
                    write_config(&self.root, address, register, data);
                }
            }
            _ => {}
        }
    }
}

/// PCI Express enhanced configuration access (ECAM): 4 KiB per function, bus 0 only.
/// Inserted on the MMIO bus at [`layout::PCI_ECAM_START`], [`layout::PCI_ECAM_SIZE`] bytes.
pub struct PciConfigMmio {
    root: Arc<Mutex<PciRoot>>,
}

impl PciConfigMmio {
    /// The ECAM window for `root`.
    pub fn new(root: Arc<Mutex<PciRoot>>) -> PciConfigMmio {
        PciConfigMmio { root }
    }

    fn target(offset: u64, len: usize) -> Option<(PciAddress, usize)> {
        if !is_config_access(offset, len) || offset >= layout::PCI_ECAM_SIZE {
            return None;
        }
        let address = PciAddress {
            bus: (offset >> 20) as u8,
            device: ((offset >> 15) & 0x1f) as u8,
            function: ((offset >> 12) & 0x7) as u8,
        };
        Some((address, (offset % ECAM_FUNCTION_SIZE) as usize))
    }
}

impl BusDevice for PciConfigMmio {
    /// The guest reads at `PCI_ECAM_START + offset`.
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match Self::target(offset, data.len()) {
            Some((address, register)) => read_config(&self.root, address, register, data),
            None => data.fill(0xff),
        }
    }

    /// The guest writes at `PCI_ECAM_START + offset`.
    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some((address, register)) = Self::target(offset, data.len()) {
            write_config(&self.root, address, register, data);
        }
    }
}

/// The 32-bit MMIO window where BARs live, dispatched by the root's BAR map. Inserted on the
/// MMIO bus at [`layout::PCI_MMIO_START`], [`layout::PCI_MMIO_SIZE`] bytes. Accesses no BAR
/// decodes read as all ones.
pub struct PciMmioWindow {
    root: Arc<Mutex<PciRoot>>,
    base: u64,
}

impl PciMmioWindow {
    /// The window for `root`, starting at guest-physical `base`.
    pub fn new(root: Arc<Mutex<PciRoot>>, base: u64) -> PciMmioWindow {
        PciMmioWindow { root, base }
    }
}

impl BusDevice for PciMmioWindow {
    /// The guest reads at `base + offset`.
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let target = lock(&self.root).resolve_bar(self.base + offset, data.len());
        match target {
            Some((device, bar, at)) => lock(&device).read_bar(bar, at, data),
            None => data.fill(0xff),
        }
    }

    /// The guest writes at `base + offset`.
    fn write(&mut self, offset: u64, data: &[u8]) {
        let target = lock(&self.root).resolve_bar(self.base + offset, data.len());
        if let Some((device, bar, at)) = target {
            lock(&device).write_bar(bar, at, data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pci::{
        BarRegion, BarSpec, COMMAND_MEMORY_SPACE, PciConfiguration, PciHeader,
    };

    /// A function with one 4 KiB 32-bit BAR that remembers the last BAR write.
    struct TestDevice {
        config: PciConfiguration,
        last_write: Option<(u8, u64, Vec<u8>)>,
    }

    impl TestDevice {
        fn shared(bar_address: u64) -> Arc<Mutex<TestDevice>> {
            let mut config = PciConfiguration::new(&PciHeader {
                vendor_id: 0x1234,
                device_id: 0x5678,
                revision: 0,
                class: [0xff, 0, 0],
                subsystem_vendor_id: 0,
                subsystem_id: 0,
            });
            config
                .add_bar(
                    0,
                    BarSpec {
                        size: 0x1000,
                        address: bar_address,
                        is_64bit: false,
                        prefetchable: false,
                    },
                )
                .unwrap();
            Arc::new(Mutex::new(TestDevice {
                config,
                last_write: None,
            }))
        }
    }

    impl PciDevice for TestDevice {
        fn read_config(&mut self, offset: usize, data: &mut [u8]) {
            self.config.read(offset, data);
        }
        fn write_config(&mut self, offset: usize, data: &[u8]) {
            self.config.write(offset, data);
        }
        fn bar_regions(&self) -> Vec<BarRegion> {
            self.config.bar_regions()
        }
        fn read_bar(&mut self, _bar: u8, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write_bar(&mut self, bar: u8, offset: u64, data: &[u8]) {
            self.last_write = Some((bar, offset, data.to_vec()));
        }
    }

    fn root_with_device() -> (Arc<Mutex<PciRoot>>, Arc<Mutex<TestDevice>>) {
        let root = Arc::new(Mutex::new(PciRoot::new()));
        let device = TestDevice::shared(0xc000_1000);
        let address = root.lock().unwrap().add_device(device.clone()).unwrap();
        assert_eq!(address.to_string(), "0000:00:01.0");
        (root, device)
    }

    fn io_read32(io: &mut PciConfigIo, device: u32, register: u32) -> u32 {
        io.write(
            0,
            &(CONFIG_ADDRESS_ENABLE | (device << 11) | register).to_le_bytes(),
        );
        let mut data = [0u8; 4];
        io.read(4, &mut data);
        u32::from_le_bytes(data)
    }

    #[test]
    fn mechanism_1_reads_ids_of_the_host_bridge_and_a_device() {
        let (root, _) = root_with_device();
        let mut io = PciConfigIo::new(root);

        assert_eq!(io_read32(&mut io, 0, 0), 0x0008_1b36);
        assert_eq!(io_read32(&mut io, 1, 0), 0x5678_1234);
        assert_eq!(io_read32(&mut io, 2, 0), u32::MAX);
    }

    #[test]
    fn mechanism_1_address_register_reads_back() {
        let (root, _) = root_with_device();
        let mut io = PciConfigIo::new(root);

        io.write(0, &0x8000_0000u32.to_le_bytes());
        io.write(3, &[0x01]);
        let mut data = [0u8; 4];
        io.read(0, &mut data);

        assert_eq!(u32::from_le_bytes(data), 0x8000_0000);
    }

    #[test]
    fn mechanism_1_sub_dword_reads_pick_the_port_offset() {
        let (root, _) = root_with_device();
        let mut io = PciConfigIo::new(root);
        io.write(0, &(CONFIG_ADDRESS_ENABLE | (1 << 11)).to_le_bytes());

        let mut device_id = [0u8; 2];
        io.read(6, &mut device_id);

        assert_eq!(u16::from_le_bytes(device_id), 0x5678);
    }

    #[test]
    fn disabled_address_or_other_functions_read_all_ones() {
        let (root, _) = root_with_device();
        let mut io = PciConfigIo::new(root);

        io.write(0, &(1u32 << 11).to_le_bytes());
        let mut data = [0u8; 4];
        io.read(4, &mut data);
        assert_eq!(data, [0xff; 4]);
        assert_eq!(io_read32(&mut io, 1, 1 << 8), u32::MAX, "function 1");
        assert_eq!(io_read32(&mut io, (1 << 5) | 1, 0), u32::MAX, "bus 1");
    }

    #[test]
    fn ecam_reaches_the_same_space_as_mechanism_1() {
        let (root, _) = root_with_device();
        let mut ecam = PciConfigMmio::new(root);

        let mut data = [0u8; 4];
        ecam.read(1 << 15, &mut data);

        assert_eq!(u32::from_le_bytes(data), 0x5678_1234);
    }

    #[test]
    fn ecam_misaligned_and_wide_accesses_read_all_ones() {
        let (root, _) = root_with_device();
        let mut ecam = PciConfigMmio::new(root);

        let mut data = [0u8; 4];
        ecam.read((1 << 15) + 1, &mut data);
        let mut wide = [0u8; 8];
        ecam.read(1 << 15, &mut wide);

        assert_eq!(data, [0xff; 4]);
        assert_eq!(wide, [0xff; 8]);
    }

    #[test]
    fn bar_window_follows_the_bar_once_memory_decoding_is_on() {
        let (root, device) = root_with_device();
        let mut ecam = PciConfigMmio::new(root.clone());
        let mut window = PciMmioWindow::new(root, layout::PCI_MMIO_START);
        let mut before = [0u8; 2];
        window.read(0x1010, &mut before);

        ecam.write((1 << 15) + 4, &COMMAND_MEMORY_SPACE.to_le_bytes());
        window.write(0x1010, &[7, 8]);
        ecam.write((1 << 15) + 0x10, &0xc000_3000u32.to_le_bytes());
        window.write(0x3020, &[9]);

        assert_eq!(before, [0xff, 0xff], "no decode before the command write");
        assert_eq!(device.lock().unwrap().last_write, Some((0, 0x20, vec![9])));
    }

    #[test]
    fn access_straddling_a_bar_end_is_unclaimed() {
        let (root, device) = root_with_device();
        let mut ecam = PciConfigMmio::new(root.clone());
        let mut window = PciMmioWindow::new(root, layout::PCI_MMIO_START);
        ecam.write((1 << 15) + 4, &COMMAND_MEMORY_SPACE.to_le_bytes());

        window.write(0x1ffe, &[1, 2, 3, 4]);

        assert_eq!(device.lock().unwrap().last_write, None);
    }

    #[test]
    fn a_removed_device_reads_all_ones_and_stops_decoding_its_bar() {
        let (root, device) = root_with_device();
        let mut ecam = PciConfigMmio::new(root.clone());
        let mut window = PciMmioWindow::new(root.clone(), layout::PCI_MMIO_START);
        ecam.write((1 << 15) + 4, &COMMAND_MEMORY_SPACE.to_le_bytes());

        let removed = root.lock().unwrap().remove_device(1).expect("plugged");
        window.write(0x1010, &[7]);
        let mut id = [0u8; 4];
        ecam.read(1 << 15, &mut id);

        assert!(Arc::ptr_eq(&removed, &(device.clone() as SharedPciDevice)));
        assert_eq!(device.lock().unwrap().last_write, None);
        assert_eq!(id, [0xff; 4]);
    }

    #[test]
    fn the_host_bridge_cannot_be_removed_and_a_freed_slot_is_reused() {
        let (root, _) = root_with_device();
        let mut root = root.lock().unwrap();

        assert!(root.remove_device(0).is_none());
        assert!(root.remove_device(1).is_some());
        assert!(root.remove_device(1).is_none());
        let again = root.add_device(TestDevice::shared(0xc000_2000)).unwrap();
        assert_eq!(again.device, 1);
    }

    #[test]
    fn a_full_bus_refuses_another_device() {
        let mut root = PciRoot::new();
        for _ in 1..SLOTS {
            root.add_device(TestDevice::shared(0xc000_0000)).unwrap();
        }

        let err = root
            .add_device(TestDevice::shared(0xc000_0000))
            .unwrap_err();

        assert!(matches!(err, PciError::NoFreeSlot), "{err}");
    }
}
