//! virtio devices (virtio 1.x) and their PCI transport.
//!
//! A device implements [`VirtioDevice`]: what it is, the features and configuration space it
//! offers, and what it does once the driver has set it up ([`VirtioDevice::activate`], with
//! its queues and a [`VirtioInterrupt`]) until it is reset. The transport
//! ([`pci::VirtioPciDevice`]) does everything a driver sees that is not device-specific:
//! feature negotiation, the status state machine, queue configuration, notifications
//! (ioeventfds) and interrupts (MSI-X). virtio-net and hot-plugged disks reuse the same two
//! pieces.

pub mod balloon;
pub mod blk;
pub mod net;
pub mod pci;

use crate::engine::memory::GuestRam;
use std::sync::Arc;

use virtio_queue::{Queue, QueueState};
use vmm_sys_util::eventfd::EventFd;

use crate::engine::snapshot::DeviceState;

/// Feature bit: the device conforms to virtio 1.x (required by the modern transport).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Feature bit: descriptors may point at indirect descriptor tables.
pub const VIRTIO_RING_F_INDIRECT_DESC: u64 = 1 << 28;
/// Feature bit: `used_event`/`avail_event` suppress notifications and interrupts.
pub const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
/// The features the transport offers for every device besides the device's own.
pub const TRANSPORT_FEATURES: u64 =
    VIRTIO_F_VERSION_1 | VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_RING_F_EVENT_IDX;

/// Device status bit: the driver found the device.
pub const STATUS_ACKNOWLEDGE: u8 = 1;
/// Device status bit: the driver knows how to drive it.
pub const STATUS_DRIVER: u8 = 2;
/// Device status bit: the driver is ready; the device may use its queues.
pub const STATUS_DRIVER_OK: u8 = 4;
/// Device status bit: feature negotiation is complete.
pub const STATUS_FEATURES_OK: u8 = 8;
/// Device status bit: the device hit an error it cannot recover from without a reset.
pub const STATUS_DEVICE_NEEDS_RESET: u8 = 0x40;
/// Device status bit: the driver gave up on the device.
pub const STATUS_FAILED: u8 = 0x80;

/// How a device tells the driver something happened. Implemented by the transport, called
/// from device worker threads; every method returns promptly and never blocks on the guest.
pub trait VirtioInterrupt: Send + Sync {
    /// The device put buffers in the used ring of queue `queue`.
    fn signal_queue(&self, queue: u16);
    /// The device configuration space changed.
    fn signal_config(&self);
    /// The device hit an error it cannot recover from (a malformed ring or chain): set
    /// `DEVICE_NEEDS_RESET` and send a configuration change interrupt. The device stops using
    /// its queues until the driver resets it.
    fn signal_needs_reset(&self);
}

/// One queue the driver enabled, handed to the device at activation.
pub struct ActiveQueue {
    /// Queue index (0-based, as in `queue_select`).
    pub index: u16,
    /// The queue, validated against guest memory and with the negotiated ring features set.
    pub queue: Queue,
    /// Signalled when the driver notifies this queue (an ioeventfd, or the transport on an
    /// MMIO notify exit).
    pub notify: EventFd,
}

/// Why a device could not start.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The device needs a queue the driver did not enable.
    #[error("the driver did not enable queue {index}")]
    MissingQueue {
        /// The queue index.
        index: u16,
    },
    /// The worker thread could not be started.
    #[error("cannot start the {name} worker thread")]
    SpawnWorker {
        /// Thread name.
        name: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// An eventfd for the worker could not be created.
    #[error("cannot create an eventfd for the device worker")]
    CreateEventFd(#[source] std::io::Error),
}

/// Why a saved device state does not fit the device it should go back into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceStateError {
    /// The save holds another kind of device in this place.
    #[error("the save holds a {found} device where this VM has a {expected}")]
    WrongDevice {
        /// What this VM has.
        expected: &'static str,
        /// What the save holds.
        found: &'static str,
    },
    /// The driver had accepted features this device does not offer here.
    #[error(
        "the guest's driver had accepted features {acked:#x} but the device offers only \
         {offered:#x} here"
    )]
    Features {
        /// Accepted in the save.
        acked: u64,
        /// Offered now.
        offered: u64,
    },
}

/// Copies the bytes of a device's configuration space `config` at `offset` into `data`;
/// bytes past its end (or at offsets that overflow) read as zero, as the spec allows.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    for (i, byte) in data.iter_mut().enumerate() {
        *byte = offset
            .checked_add(i as u64)
            .and_then(|o| usize::try_from(o).ok())
            .and_then(|o| config.get(o).copied())
            .unwrap_or(0);
    }
}

/// A virtio device behind a transport. Owned by the transport and called on vCPU threads
/// with the transport's lock held; the work itself happens on the device's own threads after
/// [`activate`](Self::activate).
pub trait VirtioDevice: Send {
    /// virtio device id (2 = block, 1 = network).
    fn device_type(&self) -> u32;
    /// Maximum size of each queue (powers of two, at most 256); the length is the queue count.
    fn queue_max_sizes(&self) -> &[u16];
    /// Device-specific feature bits offered (the transport adds `VIRTIO_F_VERSION_1` and the
    /// ring features).
    fn features(&self) -> u64;
    /// The features the driver accepted (a subset of what was offered), before activation.
    fn ack_features(&mut self, features: u64);
    /// The driver reads the device configuration space at `offset`. Bytes past the end read
    /// as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// The driver writes the device configuration space. Read-only fields ignore it.
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Starts serving `queues` (the driver set `DRIVER_OK`). `mem` is guest RAM.
    fn activate(
        &mut self,
        mem: GuestRam,
        interrupt: Arc<dyn VirtioInterrupt>,
        queues: Vec<ActiveQueue>,
    ) -> Result<(), ActivateError>;
    /// Stops all work and forgets negotiated state. When it returns, no device thread touches
    /// guest memory or the queues any more.
    fn reset(&mut self);
    /// Stops serving for a save (the vCPUs are paused): first finishes everything the driver
    /// made available, then stops the device's threads and returns the progress of each queue
    /// it served (index, state), keeping the negotiated state. Empty when not activated. The
    /// transport calls [`activate`](Self::activate) again with those queues to carry on.
    fn quiesce(&mut self) -> Vec<(u16, QueueState)>;
    /// Makes the work completed so far durable before a save records it (a disk's flush).
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
    /// The device-specific state for a save (after [`quiesce`](Self::quiesce)).
    fn save_device(&self) -> DeviceState;
    /// Takes back a saved device-specific state, before the transport activates the device.
    fn restore_device(&mut self, state: &DeviceState) -> Result<(), DeviceStateError>;
}
