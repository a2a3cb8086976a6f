//! The saved state of vmux's own devices (everything KVM does not hold): COM1, the GED, the
//! CPU and PCI hotplug registers, and each PCI function with its virtio transport, queues and
//! device.
//!
//! These are plain serde types; each device has `save_state`/`restore_state` methods beside
//! its code that produce and consume them. Every struct refuses unknown fields, so a save from
//! a newer vmux that recorded something this one would silently drop is refused with the
//! field's name instead.

use serde::{Deserialize, Serialize};

use super::blob::Blob;

/// COM1: vm-superio's registers, its receive FIFO, and host input not yet in the FIFO.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialState {
    /// Divisor latch, low byte.
    pub baud_divisor_low: u8,
    /// Divisor latch, high byte.
    pub baud_divisor_high: u8,
    /// IER.
    pub interrupt_enable: u8,
    /// IIR.
    pub interrupt_identification: u8,
    /// LCR.
    pub line_control: u8,
    /// LSR.
    pub line_status: u8,
    /// MCR.
    pub modem_control: u8,
    /// MSR.
    pub modem_status: u8,
    /// Scratch register.
    pub scratch: u8,
    /// Bytes in the UART's receive FIFO.
    pub fifo: Blob,
    /// Console input accepted but not yet moved into the FIFO.
    pub pending: Blob,
}

/// The GED's pending events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GedState {
    /// Event bits raised and not yet read by the guest.
    pub pending: u32,
}

/// One CPU hotplug slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuSlotState {
    /// A vCPU is plugged (its state is in the save).
    pub plugged: bool,
    /// The guest has started it.
    pub online: bool,
    /// Insertion not yet acknowledged.
    pub inserting: bool,
    /// Removal notice not yet acknowledged.
    pub removing: bool,
    /// The host asked for its removal.
    pub remove_requested: bool,
}

/// The CPU hotplug registers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuHotplugState {
    /// `CSEL`.
    pub selected: u32,
    /// One entry per possible vCPU (`max_vcpus`).
    pub slots: Vec<CpuSlotState>,
}

/// The PCI hotplug registers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PciHotplugState {
    /// Slots plugged, not yet reported.
    pub up: u32,
    /// Slots to remove, not yet reported.
    pub down: u32,
    /// Slots whose eject the host will honour.
    pub removing: u32,
    /// `PSEG`.
    pub segment: u32,
}

/// What a PCI function is, so a restore plugs the same device back into the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FunctionKind {
    /// virtio-blk over the restore spec's disk number `disk` (spec order).
    Disk {
        /// Index into the restore spec's disks.
        disk: usize,
        /// Disk size, bytes (checked against the image opened at restore).
        capacity: u64,
    },
    /// virtio-net over the restore spec's NIC number `nic`.
    Nic {
        /// Index into the restore spec's NICs.
        nic: usize,
        /// The guest's MAC (checked at restore).
        mac: [u8; 6],
    },
    /// The memory balloon.
    Balloon,
}

/// One MSI-X table entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsixEntryState {
    /// Message address.
    pub address: u64,
    /// Message data.
    pub data: u32,
    /// Vector control (bit 0: masked).
    pub control: u32,
}

/// A function's MSI-X capability state, table and pending bits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsixState {
    /// MSI-X enable.
    pub enabled: bool,
    /// Function mask.
    pub function_masked: bool,
    /// The vector table.
    pub entries: Vec<MsixEntryState>,
    /// Pending bit of each vector.
    pub pending: Vec<bool>,
}

/// One queue's driver-side configuration (common configuration registers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfigState {
    /// Size the driver chose.
    pub size: u16,
    /// Enabled by the driver.
    pub ready: bool,
    /// Descriptor table address.
    pub desc: u64,
    /// Available ring address.
    pub driver: u64,
    /// Used ring address.
    pub device: u64,
}

/// A virtio queue's progress (virtio-queue's `QueueState`), for queues the device was serving.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueProgress {
    /// Queue index.
    pub index: u16,
    /// Largest size the device offers.
    pub max_size: u16,
    /// Next available-ring entry the device takes.
    pub next_avail: u16,
    /// Next used-ring entry the device fills.
    pub next_used: u16,
    /// `VIRTIO_RING_F_EVENT_IDX` negotiated.
    pub event_idx: bool,
    /// Size the driver chose.
    pub size: u16,
    /// Ready.
    pub ready: bool,
    /// Descriptor table address.
    pub desc_table: u64,
    /// Available ring address.
    pub avail_ring: u64,
    /// Used ring address.
    pub used_ring: u64,
}

impl QueueProgress {
    /// The progress of queue `index` in `state`.
    pub fn from_queue(index: u16, state: virtio_queue::QueueState) -> QueueProgress {
        QueueProgress {
            index,
            max_size: state.max_size,
            next_avail: state.next_avail,
            next_used: state.next_used,
            event_idx: state.event_idx_enabled,
            size: state.size,
            ready: state.ready,
            desc_table: state.desc_table,
            avail_ring: state.avail_ring,
            used_ring: state.used_ring,
        }
    }

    /// virtio-queue's view of it (validated when turned into a `Queue`).
    pub fn queue_state(&self) -> virtio_queue::QueueState {
        virtio_queue::QueueState {
            max_size: self.max_size,
            next_avail: self.next_avail,
            next_used: self.next_used,
            event_idx_enabled: self.event_idx,
            size: self.size,
            ready: self.ready,
            desc_table: self.desc_table,
            avail_ring: self.avail_ring,
            used_ring: self.used_ring,
        }
    }
}

/// The virtio-pci transport's registers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportState {
    /// `device_feature_select`.
    pub device_feature_select: u32,
    /// `driver_feature_select`.
    pub driver_feature_select: u32,
    /// Features the driver accepted.
    pub driver_features: u64,
    /// Device status as accepted from the driver.
    pub status: u8,
    /// `config_generation`.
    pub config_generation: u8,
    /// `queue_select`.
    pub queue_select: u16,
    /// Each queue's configuration.
    pub queues: Vec<QueueConfigState>,
    /// ISR status bits not yet read.
    pub isr: u8,
    /// `DEVICE_NEEDS_RESET` is set.
    pub needs_reset: bool,
    /// Configuration-change MSI-X vector.
    pub config_vector: u16,
    /// Each queue's MSI-X vector.
    pub queue_vectors: Vec<u16>,
    /// The device was activated (`DRIVER_OK` accepted and the device started).
    pub activated: bool,
    /// Progress of the queues the device was serving (when activated).
    pub progress: Vec<QueueProgress>,
}

/// Device-specific state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeviceState {
    /// virtio-blk: the features the driver accepted.
    Blk {
        /// Accepted features.
        acked_features: u64,
    },
    /// virtio-net: nothing beyond the transport (the MAC is the definition's).
    Net,
    /// virtio-balloon.
    Balloon(BalloonState),
}

impl DeviceState {
    /// What kind of device this is, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            DeviceState::Blk { .. } => "virtio-blk",
            DeviceState::Net => "virtio-net",
            DeviceState::Balloon(_) => "virtio-balloon",
        }
    }
}

/// virtio-balloon's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalloonState {
    /// Accepted features.
    pub acked_features: u64,
    /// Target: pages (4 KiB) the host asks the guest to give back (`num_pages`).
    pub target_pages: u32,
    /// Pages the guest says it has given back (`actual`).
    pub actual_pages: u32,
    /// The stats buffer the device holds (descriptor head), to hand back for fresh stats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_head: Option<u16>,
}

/// One PCI function on the root bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionState {
    /// Device number on bus 0.
    pub slot: u8,
    /// What it is.
    pub kind: FunctionKind,
    /// Where its BAR 0 was allocated (the guest may have moved it: see `config`).
    pub bar: u64,
    /// Guest-writable configuration-space dwords (offset, value) that are not zero.
    pub config: Vec<(u16, u32)>,
    /// MSI-X.
    pub msix: MsixState,
    /// virtio-pci transport.
    pub transport: TransportState,
    /// The device.
    pub device: DeviceState,
}
