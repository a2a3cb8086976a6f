//! The common configuration structure (virtio 1.x §4.1.4.3): feature words, device status,
//! MSI-X vector mapping and per-queue setup, as registers in the transport's BAR.
//!
//! Reads build the whole 56-byte structure and copy out the bytes asked for, so any width
//! reads sensibly. Writes are accepted per field at the field's width (or as 32-bit halves of
//! the 64-bit queue addresses) and only while the driver may still change them: feature words
//! until `FEATURES_OK`, a queue until it is enabled or the device is live. Everything else is
//! ignored. Status writes are handed back to the transport, which runs the state machine.

use super::interrupt::PciInterrupt;
use crate::engine::devices::virtio::{
    STATUS_DEVICE_NEEDS_RESET, STATUS_DRIVER_OK, STATUS_FEATURES_OK,
};

/// Size of the common configuration structure, bytes.
pub const COMMON_CFG_SIZE: u64 = 0x38;

const DEVICE_FEATURE_SELECT: u64 = 0x00;
const DEVICE_FEATURE: u64 = 0x04;
const DRIVER_FEATURE_SELECT: u64 = 0x08;
const DRIVER_FEATURE: u64 = 0x0c;
const CONFIG_MSIX_VECTOR: u64 = 0x10;
const NUM_QUEUES: u64 = 0x12;
const DEVICE_STATUS: u64 = 0x14;
const CONFIG_GENERATION: u64 = 0x15;
const QUEUE_SELECT: u64 = 0x16;
const QUEUE_SIZE: u64 = 0x18;
const QUEUE_MSIX_VECTOR: u64 = 0x1a;
const QUEUE_ENABLE: u64 = 0x1c;
const QUEUE_NOTIFY_OFF: u64 = 0x1e;
const QUEUE_DESC: u64 = 0x20;
const QUEUE_DRIVER: u64 = 0x28;
const QUEUE_DEVICE: u64 = 0x30;

/// One queue as the driver configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Largest size the device supports (power of two).
    pub max_size: u16,
    /// Size the driver chose (power of two, at most `max_size`).
    pub size: u16,
    /// The driver wrote 1 to `queue_enable`.
    pub ready: bool,
    /// Guest-physical address of the descriptor table.
    pub desc: u64,
    /// Guest-physical address of the available ring.
    pub driver: u64,
    /// Guest-physical address of the used ring.
    pub device: u64,
}

impl QueueConfig {
    fn new(max_size: u16) -> QueueConfig {
        QueueConfig {
            max_size,
            size: max_size,
            ready: false,
            desc: 0,
            driver: 0,
            device: 0,
        }
    }
}

/// The driver-visible registers of the common configuration (vectors live in
/// [`PciInterrupt`], which the device threads also read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonConfig {
    /// Which 32-bit word of the device features `device_feature` shows.
    pub device_feature_select: u32,
    /// Which 32-bit word of the driver features `driver_feature` accesses.
    pub driver_feature_select: u32,
    /// Features the driver accepted so far.
    pub driver_features: u64,
    /// Device status as last accepted from the driver (without `DEVICE_NEEDS_RESET`).
    pub status: u8,
    /// The queue the `queue_*` registers address.
    pub queue_select: u16,
    /// Every queue of the device.
    pub queues: Vec<QueueConfig>,
}

impl CommonConfig {
    /// Registers after reset for queues of the given maximum sizes.
    pub fn new(queue_max_sizes: &[u16]) -> CommonConfig {
        CommonConfig {
            device_feature_select: 0,
            driver_feature_select: 0,
            driver_features: 0,
            status: 0,
            queue_select: 0,
            queues: queue_max_sizes
                .iter()
                .map(|&m| QueueConfig::new(m))
                .collect(),
        }
    }

    /// Back to the state after reset, keeping the queue maximum sizes.
    pub fn reset(&mut self) {
        let max_sizes: Vec<u16> = self.queues.iter().map(|q| q.max_size).collect();
        *self = CommonConfig::new(&max_sizes);
    }

    fn selected_queue(&self) -> Option<&QueueConfig> {
        self.queues.get(usize::from(self.queue_select))
    }

    /// The selected queue, if it exists and may still be configured.
    fn configurable_queue(&mut self) -> Option<&mut QueueConfig> {
        let live = self.status & STATUS_DRIVER_OK != 0;
        self.queues
            .get_mut(usize::from(self.queue_select))
            .filter(|q| !q.ready && !live)
    }

    /// The driver reads `data.len()` bytes at `offset`. `offered` is the full feature set.
    pub fn read(&self, offset: u64, data: &mut [u8], offered: u64, interrupt: &PciInterrupt) {
        let image = self.image(offered, interrupt);
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = offset
                .checked_add(i as u64)
                .and_then(|o| usize::try_from(o).ok())
                .and_then(|o| image.get(o).copied())
                .unwrap_or(0);
        }
    }

    fn image(&self, offered: u64, interrupt: &PciInterrupt) -> [u8; COMMON_CFG_SIZE as usize] {
        let mut image = [0u8; COMMON_CFG_SIZE as usize];
        let mut put = |offset: u64, bytes: &[u8]| {
            let at = offset as usize;
            image[at..at + bytes.len()].copy_from_slice(bytes);
        };
        let word = |value: u64, select: u32| match select {
            0 => value as u32,
            1 => (value >> 32) as u32,
            _ => 0,
        };
        put(
            DEVICE_FEATURE_SELECT,
            &self.device_feature_select.to_le_bytes(),
        );
        put(
            DEVICE_FEATURE,
            &word(offered, self.device_feature_select).to_le_bytes(),
        );
        put(
            DRIVER_FEATURE_SELECT,
            &self.driver_feature_select.to_le_bytes(),
        );
        put(
            DRIVER_FEATURE,
            &word(self.driver_features, self.driver_feature_select).to_le_bytes(),
        );
        put(CONFIG_MSIX_VECTOR, &interrupt.config_vector().to_le_bytes());
        put(NUM_QUEUES, &(self.queues.len() as u16).to_le_bytes());
        let needs_reset = if interrupt.needs_reset() {
            STATUS_DEVICE_NEEDS_RESET
        } else {
            0
        };
        put(DEVICE_STATUS, &[self.status | needs_reset]);
        put(CONFIG_GENERATION, &[interrupt.config_generation()]);
        put(QUEUE_SELECT, &self.queue_select.to_le_bytes());
        let index = usize::from(self.queue_select);
        put(
            QUEUE_MSIX_VECTOR,
            &interrupt.queue_vector(index).to_le_bytes(),
        );
        if let Some(queue) = self.selected_queue() {
            put(QUEUE_SIZE, &queue.size.to_le_bytes());
            put(QUEUE_ENABLE, &u16::from(queue.ready).to_le_bytes());
            // Queue n notifies at notify_off n, i.e. n * multiplier into the notify region.
            put(QUEUE_NOTIFY_OFF, &self.queue_select.to_le_bytes());
            put(QUEUE_DESC, &queue.desc.to_le_bytes());
            put(QUEUE_DRIVER, &queue.driver.to_le_bytes());
            put(QUEUE_DEVICE, &queue.device.to_le_bytes());
        }
        image
    }

    /// The driver writes `data` at `offset`. Returns the value written to `device_status`, if
    /// that is what was written, for the transport to act on.
    pub fn write(&mut self, offset: u64, data: &[u8], interrupt: &PciInterrupt) -> Option<u8> {
        let value = match *data {
            [a] => u64::from(a),
            [a, b] => u64::from(u16::from_le_bytes([a, b])),
            [a, b, c, d] => u64::from(u32::from_le_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
            _ => return None,
        };
        match (offset, data.len()) {
            (DEVICE_FEATURE_SELECT, 4) => self.device_feature_select = value as u32,
            (DRIVER_FEATURE_SELECT, 4) => self.driver_feature_select = value as u32,
            (DRIVER_FEATURE, 4) if self.status & STATUS_FEATURES_OK == 0 => {
                let shift = match self.driver_feature_select {
                    0 => 0,
                    1 => 32,
                    _ => return None,
                };
                self.driver_features =
                    (self.driver_features & !(0xffff_ffff << shift)) | (value << shift);
            }
            (CONFIG_MSIX_VECTOR, 2) => interrupt.set_config_vector(value as u16),
            (DEVICE_STATUS, 1) => return Some(value as u8),
            (QUEUE_SELECT, 2) => self.queue_select = value as u16,
            (QUEUE_SIZE, 2) => {
                if let Some(queue) = self.configurable_queue() {
                    let size = value as u16;
                    if size.is_power_of_two() && size <= queue.max_size {
                        queue.size = size;
                    }
                }
            }
            (QUEUE_MSIX_VECTOR, 2) if self.status & STATUS_DRIVER_OK == 0 => {
                interrupt.set_queue_vector(usize::from(self.queue_select), value as u16);
            }
            (QUEUE_ENABLE, 2) if value == 1 => {
                if let Some(queue) = self.configurable_queue() {
                    queue.ready = true;
                }
            }
            (QUEUE_DESC..COMMON_CFG_SIZE, 4 | 8) => {
                let field = (offset - QUEUE_DESC) / 8;
                let shift = (offset % 8) * 8;
                if !offset.is_multiple_of(4) || (data.len() == 8 && shift != 0) {
                    return None;
                }
                let mask = if data.len() == 8 {
                    u64::MAX
                } else {
                    0xffff_ffff << shift
                };
                if let Some(queue) = self.configurable_queue() {
                    let target = match field {
                        0 => &mut queue.desc,
                        1 => &mut queue.driver,
                        _ => &mut queue.device,
                    };
                    *target = (*target & !mask) | ((value << shift) & mask);
                }
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::pci::Msix;
    use crate::engine::pci::testing::FakeVm;
    use std::sync::Arc;

    const OFFERED: u64 = (1 << 32) | (1 << 9);

    fn setup() -> (CommonConfig, PciInterrupt) {
        let msix = Arc::new(Msix::new(2, Arc::new(FakeVm::default())).unwrap());
        (CommonConfig::new(&[256]), PciInterrupt::new(msix, 1))
    }

    fn read16(common: &CommonConfig, interrupt: &PciInterrupt, offset: u64) -> u16 {
        let mut data = [0u8; 2];
        common.read(offset, &mut data, OFFERED, interrupt);
        u16::from_le_bytes(data)
    }

    fn read32(common: &CommonConfig, interrupt: &PciInterrupt, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        common.read(offset, &mut data, OFFERED, interrupt);
        u32::from_le_bytes(data)
    }

    #[test]
    fn device_features_are_shown_one_word_at_a_time() {
        let (mut common, interrupt) = setup();

        let low = read32(&common, &interrupt, DEVICE_FEATURE);
        common.write(DEVICE_FEATURE_SELECT, &1u32.to_le_bytes(), &interrupt);
        let high = read32(&common, &interrupt, DEVICE_FEATURE);
        common.write(DEVICE_FEATURE_SELECT, &2u32.to_le_bytes(), &interrupt);
        let beyond = read32(&common, &interrupt, DEVICE_FEATURE);

        assert_eq!((low, high, beyond), (1 << 9, 1, 0));
    }

    #[test]
    fn driver_features_are_frozen_after_features_ok() {
        let (mut common, interrupt) = setup();
        common.write(DRIVER_FEATURE_SELECT, &1u32.to_le_bytes(), &interrupt);
        common.write(DRIVER_FEATURE, &1u32.to_le_bytes(), &interrupt);
        common.status = STATUS_FEATURES_OK;

        common.write(DRIVER_FEATURE, &3u32.to_le_bytes(), &interrupt);

        assert_eq!(common.driver_features, 1 << 32);
    }

    #[test]
    fn queue_size_accepts_only_powers_of_two_up_to_the_maximum() {
        let (mut common, interrupt) = setup();

        common.write(QUEUE_SIZE, &100u16.to_le_bytes(), &interrupt);
        common.write(QUEUE_SIZE, &512u16.to_le_bytes(), &interrupt);
        let rejected = read16(&common, &interrupt, QUEUE_SIZE);
        common.write(QUEUE_SIZE, &64u16.to_le_bytes(), &interrupt);

        assert_eq!(rejected, 256);
        assert_eq!(read16(&common, &interrupt, QUEUE_SIZE), 64);
    }

    #[test]
    fn queue_addresses_take_32_bit_halves_and_freeze_once_enabled() {
        let (mut common, interrupt) = setup();

        common.write(QUEUE_DESC, &0x1000u32.to_le_bytes(), &interrupt);
        common.write(QUEUE_DESC + 4, &0x2u32.to_le_bytes(), &interrupt);
        common.write(QUEUE_DEVICE, &0x3000u64.to_le_bytes(), &interrupt);
        common.write(QUEUE_ENABLE, &1u16.to_le_bytes(), &interrupt);
        common.write(QUEUE_DRIVER, &0x5000u32.to_le_bytes(), &interrupt);

        let queue = &common.queues[0];
        assert_eq!(
            (queue.desc, queue.driver, queue.device),
            (0x2_0000_1000, 0, 0x3000)
        );
        assert!(queue.ready);
    }

    #[test]
    fn a_missing_queue_reads_size_zero_and_ignores_writes() {
        let (mut common, interrupt) = setup();
        common.write(QUEUE_SELECT, &5u16.to_le_bytes(), &interrupt);

        common.write(QUEUE_ENABLE, &1u16.to_le_bytes(), &interrupt);

        assert_eq!(read16(&common, &interrupt, QUEUE_SIZE), 0);
        assert_eq!(read16(&common, &interrupt, QUEUE_MSIX_VECTOR), 0xffff);
    }

    #[test]
    fn out_of_range_vectors_read_back_as_no_vector() {
        let (mut common, interrupt) = setup();

        common.write(QUEUE_MSIX_VECTOR, &1u16.to_le_bytes(), &interrupt);
        common.write(CONFIG_MSIX_VECTOR, &2u16.to_le_bytes(), &interrupt);

        assert_eq!(read16(&common, &interrupt, QUEUE_MSIX_VECTOR), 1);
        assert_eq!(read16(&common, &interrupt, CONFIG_MSIX_VECTOR), 0xffff);
    }

    #[test]
    fn status_writes_are_returned_for_the_state_machine() {
        let (mut common, interrupt) = setup();

        let written = common.write(DEVICE_STATUS, &[3], &interrupt);

        assert_eq!(written, Some(3));
        assert_eq!(common.status, 0, "the transport decides what to accept");
    }

    #[test]
    fn needs_reset_shows_in_the_status_byte() {
        let (mut common, interrupt) = setup();
        common.status = 0x0f;

        interrupt.set_needs_reset();
        let mut status = [0u8];
        common.read(DEVICE_STATUS, &mut status, OFFERED, &interrupt);

        assert_eq!(status[0], 0x4f);
    }

    #[test]
    fn misaligned_and_odd_width_writes_are_ignored() {
        let (mut common, interrupt) = setup();
        let before = common.clone();

        common.write(QUEUE_DESC + 2, &[1, 2, 3, 4], &interrupt);
        common.write(QUEUE_DESC + 4, &0u64.to_le_bytes(), &interrupt);
        common.write(QUEUE_SIZE, &[1, 2, 3], &interrupt);

        assert_eq!(common, before);
    }
}
