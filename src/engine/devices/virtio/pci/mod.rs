//! The virtio-pci *modern* transport (virtio 1.x §4.1): one PCI function per virtio device.
//!
//! Everything lives in BAR 0, a 64-bit memory BAR allocated in the 32-bit PCI window, one
//! 4 KiB page per structure so a driver can map them separately:
//!
//! ```text
//! 0x0000  common configuration (56 bytes)     0x3000  notify: queue n at n * 4
//! 0x1000  ISR status (1 byte, read-to-clear)   0x4000  MSI-X table (up to 256 vectors)
//! 0x2000  device-specific configuration        0x5000  MSI-X pending-bit array
//! ```
//! Configuration space carries the MSI-X capability and the five virtio vendor capabilities
//! (common, notify, ISR, device, and the `PCI_CFG` access window) pointing into that BAR.
//!
//! Notifications: each queue has an eventfd registered with KVM as an ioeventfd on its notify
//! address, so a driver's notify never exits to the VMM; if that registration fails or the
//! write arrives as an MMIO exit anyway, [`VirtioPciDevice::write_bar`] signals the same
//! eventfd. The registration follows BAR 0 when the guest moves it.
//!
//! Status state machine: `ACKNOWLEDGE` → `DRIVER` → `FEATURES_OK` (refused, i.e. not set, when
//! the driver's features are not a subset of the offer or lack `VIRTIO_F_VERSION_1`) →
//! `DRIVER_OK`, which activates the device with the enabled queues. Writing 0 resets the
//! device synchronously: when the driver reads status back as 0, no device thread runs.

mod common_cfg;
mod interrupt;
mod state;

use crate::engine::memory::GuestRam;
use std::sync::Arc;

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddress;
use vmm_sys_util::eventfd::EventFd;

pub use interrupt::PciInterrupt;

use self::common_cfg::{COMMON_CFG_SIZE, CommonConfig};
use super::{
    ActiveQueue, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FAILED,
    STATUS_FEATURES_OK, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
    VirtioDevice,
};
use crate::engine::layout;
use crate::engine::pci::{
    AddressAllocator, BarRegion, BarSpec, MSIX_CAPABILITY_ID, Msix, MsixLayout, PciConfiguration,
    PciDevice, PciError, PciHeader, VmInterface,
};

/// PCI vendor id of virtio devices.
pub const VIRTIO_PCI_VENDOR_ID: u16 = 0x1af4;
/// Modern (non-transitional) virtio devices have PCI device id 0x1040 + device type.
pub const VIRTIO_PCI_DEVICE_ID_BASE: u16 = 0x1040;
/// Size of BAR 0, bytes.
pub const BAR_SIZE: u64 = 0x8000;
/// Most queues a transport serves (one MSI-X vector each, plus one for configuration).
pub const MAX_QUEUES: usize = 255;
/// Largest queue size a device may declare.
pub const MAX_QUEUE_SIZE: u16 = 256;

const COMMON_CFG_OFFSET: u64 = 0x0000;
const ISR_OFFSET: u64 = 0x1000;
const DEVICE_CFG_OFFSET: u64 = 0x2000;
const NOTIFY_OFFSET: u64 = 0x3000;
const MSIX_TABLE_OFFSET: u64 = 0x4000;
const MSIX_PBA_OFFSET: u64 = 0x5000;
/// Every structure gets a page.
const REGION_SIZE: u64 = 0x1000;
/// Bytes between two queues' notify addresses.
const NOTIFY_OFF_MULTIPLIER: u32 = 4;

/// PCI capability id of vendor-specific capabilities (virtio's).
const VENDOR_CAPABILITY_ID: u8 = 0x09;
/// virtio structure types in `cfg_type`.
const CAP_COMMON_CFG: u8 = 1;
const CAP_NOTIFY_CFG: u8 = 2;
const CAP_ISR_CFG: u8 = 3;
const CAP_DEVICE_CFG: u8 = 4;
const CAP_PCI_CFG: u8 = 5;
/// `struct virtio_pci_cap` is 16 bytes; the notify capability adds the multiplier and the
/// PCI_CFG capability the 4-byte data window.
const VIRTIO_CAP_LEN: u8 = 16;
const VIRTIO_CAP_EXTENDED_LEN: u8 = 20;

/// Errors building a virtio PCI function.
#[derive(Debug, thiserror::Error)]
pub enum VirtioPciError {
    /// The device declares queues the transport cannot serve.
    #[error(
        "a virtio device needs 1..={MAX_QUEUES} queues of power-of-two sizes up to \
         {MAX_QUEUE_SIZE}, not {sizes:?}"
    )]
    InvalidQueues {
        /// The queue maximum sizes the device declared.
        sizes: Vec<u16>,
    },
    /// Setting up the PCI side (BAR, capabilities, MSI-X) failed.
    #[error("cannot set up the virtio PCI function")]
    Pci(#[from] PciError),
    /// A queue eventfd could not be created.
    #[error("cannot create a queue notification eventfd")]
    CreateEventFd(#[source] std::io::Error),
}

/// One virtio device as a PCI function. Owned by the root bus (`Arc<Mutex<..>>`); every method
/// runs on a vCPU thread under that lock.
pub struct VirtioPciDevice {
    config: PciConfiguration,
    msix_capability: usize,
    msix_layout: MsixLayout,
    pci_cfg_capability: usize,
    device: Box<dyn VirtioDevice>,
    common: CommonConfig,
    /// Transport and device features offered to the driver.
    offered_features: u64,
    msix: Arc<Msix>,
    interrupt: Arc<PciInterrupt>,
    queue_events: Vec<EventFd>,
    mem: GuestRam,
    vm: Arc<dyn VmInterface>,
    /// BAR 0 base the queue ioeventfds are registered at, if any.
    ioevent_base: Option<u64>,
    bar_base: u64,
    activated: bool,
    /// The queues' progress while the device is quiesced for a save (`Some` between
    /// [`quiesce`](Self::quiesce) and [`resume`](Self::resume)).
    quiesced: Option<Vec<(u16, virtio_queue::QueueState)>>,
}

impl VirtioPciDevice {
    /// Wraps `device` in a PCI function whose BAR 0 comes from `bars` (the PCI MMIO window
    /// allocator). `mem` is guest RAM, `vm` the KVM plumbing for MSI-X and ioeventfds.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestRam,
        vm: Arc<dyn VmInterface>,
        bars: &mut AddressAllocator,
    ) -> Result<VirtioPciDevice, VirtioPciError> {
        let bar_base = bars
            .allocate(BAR_SIZE, BAR_SIZE)
            .ok_or(PciError::AllocateBar { size: BAR_SIZE })?;
        let function = VirtioPciDevice::with_bar(device, mem, vm, bar_base);
        if function.is_err() {
            bars.free(bar_base);
        }
        function
    }

    /// Like [`new`](Self::new) with BAR 0 at `bar_base`, which the caller has reserved (a
    /// restore puts a function's BAR where the saved VM had it).
    pub fn with_bar(
        device: Box<dyn VirtioDevice>,
        mem: GuestRam,
        vm: Arc<dyn VmInterface>,
        bar_base: u64,
    ) -> Result<VirtioPciDevice, VirtioPciError> {
        let sizes = device.queue_max_sizes().to_vec();
        let valid = !sizes.is_empty()
            && sizes.len() <= MAX_QUEUES
            && sizes
                .iter()
                .all(|s| s.is_power_of_two() && *s <= MAX_QUEUE_SIZE);
        if !valid {
            return Err(VirtioPciError::InvalidQueues { sizes });
        }
        let queue_count = sizes.len();
        let vectors = queue_count as u16 + 1;
        let device_type = device.device_type();

        let mut config = PciConfiguration::new(&PciHeader {
            vendor_id: VIRTIO_PCI_VENDOR_ID,
            device_id: VIRTIO_PCI_DEVICE_ID_BASE + device_type as u16,
            // Revision 1: a modern device with no legacy interface (virtio 1.x §4.1.2.1).
            revision: 1,
            class: pci_class(device_type),
            subsystem_vendor_id: VIRTIO_PCI_VENDOR_ID,
            // QEMU's subsystem id for modern virtio devices; drivers ignore it.
            subsystem_id: 0x1100,
        });
        config.add_bar(
            0,
            BarSpec {
                size: BAR_SIZE,
                address: bar_base,
                is_64bit: true,
                prefetchable: false,
            },
        )?;
        let msix_layout = MsixLayout {
            vectors,
            bar: 0,
            table_offset: MSIX_TABLE_OFFSET as u32,
            pba_offset: MSIX_PBA_OFFSET as u32,
        };
        let (msix_body, msix_writable) = msix_layout.capability();
        let msix_capability =
            config.add_capability(MSIX_CAPABILITY_ID, &msix_body, &msix_writable)?;
        let pci_cfg_capability = add_virtio_capabilities(&mut config)?;

        let msix = Arc::new(Msix::new(vectors, vm.clone())?);
        let interrupt = Arc::new(PciInterrupt::new(msix.clone(), queue_count));
        let queue_events = (0..queue_count)
            .map(|_| EventFd::new(libc::EFD_NONBLOCK).map_err(VirtioPciError::CreateEventFd))
            .collect::<Result<Vec<_>, _>>()?;
        let offered_features = device.features()
            | VIRTIO_F_VERSION_1
            | VIRTIO_RING_F_INDIRECT_DESC
            | VIRTIO_RING_F_EVENT_IDX;

        Ok(VirtioPciDevice {
            config,
            msix_capability,
            msix_layout,
            pci_cfg_capability,
            common: CommonConfig::new(&sizes),
            device,
            offered_features,
            msix,
            interrupt,
            queue_events,
            mem,
            vm,
            ioevent_base: None,
            bar_base,
            activated: false,
            quiesced: None,
        })
    }

    /// Where BAR 0 was first placed (the allocator's address; the guest may move it).
    pub fn initial_bar_base(&self) -> u64 {
        self.bar_base
    }

    /// Runs the status state machine for a driver write of `value`.
    fn write_status(&mut self, value: u8) {
        if value == 0 {
            self.reset();
            return;
        }
        let old = self.common.status;
        // Bits are only ever added until a reset; a driver clearing some is confused, and
        // the old status stands.
        if value & old != old {
            return;
        }
        let mut new = value
            & (STATUS_ACKNOWLEDGE
                | STATUS_DRIVER
                | STATUS_FEATURES_OK
                | STATUS_DRIVER_OK
                | STATUS_FAILED);
        let added = new & !old;
        if added & STATUS_FEATURES_OK != 0 {
            if self.features_acceptable(new) {
                self.device.ack_features(self.common.driver_features);
            } else {
                new &= !STATUS_FEATURES_OK;
            }
        }
        if added & STATUS_DRIVER_OK != 0 {
            if new & STATUS_FEATURES_OK == 0 {
                new &= !STATUS_DRIVER_OK;
            } else {
                self.activate();
            }
        }
        self.common.status = new;
    }

    /// `FEATURES_OK` may be set: the driver went through `ACKNOWLEDGE` and `DRIVER`, accepted
    /// only offered features, and accepted `VIRTIO_F_VERSION_1`.
    fn features_acceptable(&self, status: u8) -> bool {
        let driver = self.common.driver_features;
        status & (STATUS_ACKNOWLEDGE | STATUS_DRIVER) == STATUS_ACKNOWLEDGE | STATUS_DRIVER
            && driver & !self.offered_features == 0
            && driver & VIRTIO_F_VERSION_1 != 0
    }

    /// Hands the enabled queues to the device. Queues the guest configured with addresses
    /// outside its RAM or misaligned make the device need a reset instead.
    fn activate(&mut self) {
        let event_idx = self.common.driver_features & VIRTIO_RING_F_EVENT_IDX != 0;
        let mut queues = Vec::new();
        for (index, config) in self.common.queues.iter().enumerate() {
            if !config.ready {
                continue;
            }
            let Some(queue) = build_queue(config, event_idx, &self.mem) else {
                log::warn!("virtio queue {index}: invalid addresses or size; device needs reset");
                self.interrupt.set_needs_reset();
                return;
            };
            let notify = match self.queue_events[index].try_clone() {
                Ok(notify) => notify,
                Err(e) => {
                    log::warn!("virtio queue {index}: cannot clone its eventfd: {e}");
                    self.interrupt.set_needs_reset();
                    return;
                }
            };
            queues.push(ActiveQueue {
                index: index as u16,
                queue,
                notify,
            });
        }
        let interrupt = self.interrupt.clone();
        match self.device.activate(self.mem.clone(), interrupt, queues) {
            Ok(()) => self.activated = true,
            Err(e) => {
                log::warn!("virtio device activation failed: {e}");
                self.interrupt.set_needs_reset();
            }
        }
    }

    /// Device reset: stops the device, forgets negotiation, queues, vectors and ISR state.
    /// The MSI-X table belongs to the PCI function and is kept.
    fn reset(&mut self) {
        if self.activated {
            self.device.reset();
            self.activated = false;
        }
        self.common.reset();
        self.interrupt.reset();
    }

    /// Keeps the queue ioeventfds registered at BAR 0's current notify addresses, or at none
    /// when BAR 0 does not decode inside the PCI window.
    fn sync_ioevents(&mut self) {
        let window = layout::PCI_MMIO_START..layout::PCI_MMIO_START + layout::PCI_MMIO_SIZE;
        let wanted = self
            .config
            .bar_regions()
            .iter()
            .find(|bar| bar.index == 0)
            .map(|bar| bar.base)
            .filter(|base| window.contains(base) && window.contains(&(base + BAR_SIZE - 1)));
        if wanted == self.ioevent_base {
            return;
        }
        if let Some(old) = self.ioevent_base.take() {
            for (index, event) in self.queue_events.iter().enumerate() {
                if let Err(e) = self
                    .vm
                    .unregister_ioevent(event, notify_address(old, index))
                {
                    log::warn!("virtio queue {index}: {e}");
                }
            }
        }
        if let Some(base) = wanted {
            for (index, event) in self.queue_events.iter().enumerate() {
                // On failure the notify write still exits and reaches write_bar.
                if let Err(e) = self.vm.register_ioevent(event, notify_address(base, index)) {
                    log::warn!("virtio queue {index}: {e}");
                }
            }
            self.ioevent_base = Some(base);
        }
    }

    /// The `PCI_CFG` capability's window: (bar, offset, length) the driver selected, if it
    /// describes an access this transport serves.
    fn pci_cfg_window(&self) -> Option<(u8, u64, usize)> {
        let cap = self.pci_cfg_capability;
        let mut field = [0u8; 4];
        self.config.read(cap + 4, &mut field[..1]);
        let bar = field[0];
        self.config.read(cap + 8, &mut field);
        let offset = u64::from(u32::from_le_bytes(field));
        self.config.read(cap + 12, &mut field);
        let length = u32::from_le_bytes(field) as usize;
        (bar == 0 && matches!(length, 1 | 2 | 4) && offset.is_multiple_of(length as u64))
            .then_some((bar, offset, length))
    }

    /// Whether BAR offset `offset` is inside the MSI-X table.
    fn in_msix_table(&self, offset: u64) -> bool {
        (MSIX_TABLE_OFFSET..MSIX_TABLE_OFFSET + self.msix_layout.table_size()).contains(&offset)
    }

    /// Whether BAR offset `offset` is inside the MSI-X pending-bit array.
    fn in_msix_pba(&self, offset: u64) -> bool {
        (MSIX_PBA_OFFSET..MSIX_PBA_OFFSET + self.msix_layout.pba_size()).contains(&offset)
    }

    /// Whether a configuration access at `offset..offset + len` touches the `PCI_CFG` data.
    fn touches_pci_cfg_data(&self, offset: usize, len: usize) -> bool {
        let data = self.pci_cfg_capability + 16;
        offset < data + 4 && offset + len > data
    }
}

impl Drop for VirtioPciDevice {
    fn drop(&mut self) {
        self.reset();
        if let Some(base) = self.ioevent_base.take() {
            for (index, event) in self.queue_events.iter().enumerate() {
                let _ = self
                    .vm
                    .unregister_ioevent(event, notify_address(base, index));
            }
        }
    }
}

impl PciDevice for VirtioPciDevice {
    fn read_config(&mut self, offset: usize, data: &mut [u8]) {
        self.config.read(offset, data);
        if self.touches_pci_cfg_data(offset, data.len()) {
            let data_offset = self.pci_cfg_capability + 16;
            let mut window = [0u8; 4];
            if let Some((bar, at, length)) = self.pci_cfg_window() {
                self.read_bar(bar, at, &mut window[..length]);
            }
            for (i, byte) in data.iter_mut().enumerate() {
                if let Some(w) = (offset + i).checked_sub(data_offset).filter(|w| *w < 4) {
                    *byte = window[w];
                }
            }
        }
    }

    fn write_config(&mut self, offset: usize, data: &[u8]) {
        if self.touches_pci_cfg_data(offset, data.len()) {
            if let Some((bar, at, length)) = self.pci_cfg_window()
                && offset == self.pci_cfg_capability + 16
                && data.len() == length
            {
                self.write_bar(bar, at, data);
            }
            return;
        }
        self.config.write(offset, data);
        let control = self.msix_capability + 2;
        if offset < control + 2 && offset + data.len() > control {
            self.msix.set_message_control(self.config.word(control));
        }
        self.sync_ioevents();
    }

    fn bar_regions(&self) -> Vec<BarRegion> {
        self.config.bar_regions()
    }

    fn read_bar(&mut self, bar: u8, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if bar != 0 {
            return;
        }
        match offset {
            COMMON_CFG_OFFSET..COMMON_CFG_SIZE => {
                self.common
                    .read(offset, data, self.offered_features, &self.interrupt);
            }
            ISR_OFFSET => {
                if let Some(isr) = data.first_mut() {
                    *isr = self.interrupt.take_isr();
                }
            }
            DEVICE_CFG_OFFSET..NOTIFY_OFFSET => {
                self.device.read_config(offset - DEVICE_CFG_OFFSET, data);
            }
            _ if self.in_msix_table(offset) => {
                self.msix.read_table(offset - MSIX_TABLE_OFFSET, data);
            }
            _ if self.in_msix_pba(offset) => self.msix.read_pba(offset - MSIX_PBA_OFFSET, data),
            _ => {}
        }
    }

    fn write_bar(&mut self, bar: u8, offset: u64, data: &[u8]) {
        if bar != 0 {
            return;
        }
        match offset {
            COMMON_CFG_OFFSET..COMMON_CFG_SIZE => {
                if let Some(status) = self.common.write(offset, data, &self.interrupt) {
                    self.write_status(status);
                }
            }
            DEVICE_CFG_OFFSET..NOTIFY_OFFSET => {
                self.device.write_config(offset - DEVICE_CFG_OFFSET, data);
            }
            NOTIFY_OFFSET..MSIX_TABLE_OFFSET => {
                let index = (offset - NOTIFY_OFFSET) / u64::from(NOTIFY_OFF_MULTIPLIER);
                if let Some(event) = usize::try_from(index)
                    .ok()
                    .and_then(|i| self.queue_events.get(i))
                    && let Err(e) = event.write(1)
                {
                    log::warn!("virtio queue {index}: notify: {e}");
                }
            }
            _ if self.in_msix_table(offset) => {
                self.msix.write_table(offset - MSIX_TABLE_OFFSET, data);
            }
            _ => {}
        }
    }
}

/// The guest-physical address queue `index` is notified at when BAR 0 is at `base`.
fn notify_address(base: u64, index: usize) -> u64 {
    base + NOTIFY_OFFSET + index as u64 * u64::from(NOTIFY_OFF_MULTIPLIER)
}

/// A virtio-queue `Queue` for a configuration the driver enabled, if its size and ring
/// addresses are valid (aligned, inside guest RAM).
fn build_queue(config: &common_cfg::QueueConfig, event_idx: bool, mem: &GuestRam) -> Option<Queue> {
    let mut queue = Queue::new(config.max_size).ok()?;
    queue.try_set_size(config.size).ok()?;
    queue
        .try_set_desc_table_address(GuestAddress(config.desc))
        .ok()?;
    queue
        .try_set_avail_ring_address(GuestAddress(config.driver))
        .ok()?;
    queue
        .try_set_used_ring_address(GuestAddress(config.device))
        .ok()?;
    queue.set_event_idx(event_idx);
    queue.set_ready(true);
    queue.is_valid(mem).then_some(queue)
}

/// PCI class code for a virtio device type (what `lspci` calls it).
fn pci_class(device_type: u32) -> [u8; 3] {
    match device_type {
        // Network controller, Ethernet.
        1 => [0x02, 0x00, 0x00],
        // Mass storage controller, SCSI (as QEMU presents virtio-blk).
        2 => [0x01, 0x00, 0x00],
        // Communication controller, other (console).
        3 => [0x07, 0x80, 0x00],
        // Unclassified, other.
        _ => [0xff, 0x00, 0x00],
    }
}

/// Adds the common, notify, ISR, device and PCI_CFG capabilities; returns the PCI_CFG one's
/// offset.
fn add_virtio_capabilities(config: &mut PciConfiguration) -> Result<usize, PciError> {
    let regions = [
        (CAP_COMMON_CFG, COMMON_CFG_OFFSET, COMMON_CFG_SIZE),
        (CAP_ISR_CFG, ISR_OFFSET, 1),
        (CAP_DEVICE_CFG, DEVICE_CFG_OFFSET, REGION_SIZE),
    ];
    for (cfg_type, offset, length) in regions {
        let body = virtio_capability(VIRTIO_CAP_LEN, cfg_type, offset, length);
        config.add_capability(VENDOR_CAPABILITY_ID, &body, &[])?;
    }
    let mut notify = virtio_capability(
        VIRTIO_CAP_EXTENDED_LEN,
        CAP_NOTIFY_CFG,
        NOTIFY_OFFSET,
        REGION_SIZE,
    );
    notify.extend_from_slice(&NOTIFY_OFF_MULTIPLIER.to_le_bytes());
    config.add_capability(VENDOR_CAPABILITY_ID, &notify, &[])?;

    // PCI_CFG: the driver writes bar (body byte 2), offset (6..10) and length (10..14), then
    // accesses the data window (14..18) to reach BAR contents through configuration space.
    let mut pci_cfg = virtio_capability(VIRTIO_CAP_EXTENDED_LEN, CAP_PCI_CFG, 0, 0);
    pci_cfg.extend_from_slice(&[0; 4]);
    let mut writable = vec![0u8; pci_cfg.len()];
    writable[2] = 0xff;
    writable[6..14].fill(0xff);
    config.add_capability(VENDOR_CAPABILITY_ID, &pci_cfg, &writable)
}

/// The body (after id and next) of a `struct virtio_pci_cap` for a structure in BAR 0.
fn virtio_capability(cap_len: u8, cfg_type: u8, offset: u64, length: u64) -> Vec<u8> {
    let mut body = vec![cap_len, cfg_type, 0, 0, 0, 0];
    body.extend_from_slice(&(offset as u32).to_le_bytes());
    body.extend_from_slice(&(length as u32).to_le_bytes());
    body
}

#[cfg(test)]
mod tests;
