//! Saving and restoring a virtio PCI function: quiescing the device for a save (its worker
//! finishes what the driver made available, then stops and hands back the queues' progress),
//! carrying on after a save, and rebuilding a function from a saved [`FunctionState`].
//!
//! A restore runs on a freshly built function in the same slot with the same device: the
//! guest-writable configuration space (BAR addresses, command register, MSI-X control), the
//! MSI-X table (with its KVM routes), the common configuration, the interrupt state and the
//! device's own state go back, the queue notifications follow the BAR, and a device that was
//! running is activated again with its queues where they were. Every saved value is checked as
//! a guest write would be: a damaged or hand-made save cannot configure what a driver could
//! not.

use virtio_queue::{Queue, QueueState, QueueT};

use super::VirtioPciDevice;
use super::common_cfg::QueueConfig;
use crate::engine::devices::virtio::{
    ActiveQueue, DeviceStateError, STATUS_DRIVER_OK, STATUS_FEATURES_OK,
};
use crate::engine::snapshot::{
    FunctionKind, FunctionState, QueueConfigState, QueueProgress, TransportState,
};

/// Why a saved function cannot be restored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FunctionStateError {
    /// The device rejected its saved state.
    #[error(transparent)]
    Device(#[from] DeviceStateError),
    /// The transport's saved registers are not ones a driver could have set.
    #[error("{0}")]
    Invalid(String),
    /// Starting the device again failed.
    #[error("cannot start the device again: {0}")]
    Activate(String),
}

impl VirtioPciDevice {
    /// Stops the device for a save (the vCPUs are paused) after it finished what the driver
    /// made available, keeping its queues' progress. Does nothing to a device the driver has
    /// not started. [`resume`](Self::resume) carries on.
    pub fn quiesce(&mut self) {
        if self.activated && self.quiesced.is_none() {
            self.quiesced = Some(self.device.quiesce());
        }
    }

    /// Makes the device's completed work durable (a disk's flush).
    pub fn sync(&self) -> std::io::Result<()> {
        self.device.sync()
    }

    /// Starts a quiesced device again where it stopped.
    pub fn resume(&mut self) {
        let Some(progress) = self.quiesced.take() else {
            return;
        };
        let progress: Vec<QueueProgress> = progress
            .into_iter()
            .map(|(index, state)| QueueProgress::from_queue(index, state))
            .collect();
        if let Err(e) = self.start_queues(&progress) {
            log::warn!("virtio device cannot carry on after the save: {e}; device needs reset");
            self.activated = false;
            self.interrupt.set_needs_reset();
        }
    }

    /// The function's state for a save (after [`quiesce`](Self::quiesce)), as `kind` in `slot`.
    pub fn save_state(&self, slot: u8, kind: FunctionKind) -> FunctionState {
        let common = &self.common;
        let mut transport = TransportState {
            device_feature_select: common.device_feature_select,
            driver_feature_select: common.driver_feature_select,
            driver_features: common.driver_features,
            status: common.status,
            config_generation: 0,
            queue_select: common.queue_select,
            queues: common
                .queues
                .iter()
                .map(|q| QueueConfigState {
                    size: q.size,
                    ready: q.ready,
                    desc: q.desc,
                    driver: q.driver,
                    device: q.device,
                })
                .collect(),
            isr: 0,
            needs_reset: false,
            config_vector: 0,
            queue_vectors: Vec::new(),
            activated: self.activated,
            progress: self
                .quiesced
                .iter()
                .flatten()
                .map(|&(index, state)| QueueProgress::from_queue(index, state))
                .collect(),
        };
        self.interrupt.save_into(&mut transport);
        FunctionState {
            slot,
            kind,
            bar: self.bar_base,
            config: self.config.writable_dwords(),
            msix: self.msix.save_state(),
            transport,
            device: self.device.save_device(),
        }
    }

    /// Takes back a saved state into this freshly built function (same device, same slot),
    /// and starts the device again when it was running.
    pub fn restore_state(&mut self, saved: &FunctionState) -> Result<(), FunctionStateError> {
        let transport = &saved.transport;
        if transport.queues.len() != self.common.queues.len() {
            return Err(FunctionStateError::Invalid(format!(
                "the saved device has {} queues where this one has {}",
                transport.queues.len(),
                self.common.queues.len()
            )));
        }
        if transport.driver_features & !self.offered_features != 0 {
            return Err(DeviceStateError::Features {
                acked: transport.driver_features,
                offered: self.offered_features,
            }
            .into());
        }
        let mut queues = Vec::with_capacity(transport.queues.len());
        for (index, (saved_queue, current)) in
            transport.queues.iter().zip(&self.common.queues).enumerate()
        {
            if !saved_queue.size.is_power_of_two() || saved_queue.size > current.max_size {
                return Err(FunctionStateError::Invalid(format!(
                    "saved queue {index} has size {} (this device allows powers of two up to {})",
                    saved_queue.size, current.max_size
                )));
            }
            queues.push(QueueConfig {
                max_size: current.max_size,
                size: saved_queue.size,
                ready: saved_queue.ready,
                desc: saved_queue.desc,
                driver: saved_queue.driver,
                device: saved_queue.device,
            });
        }
        self.config.restore_writable_dwords(&saved.config);
        self.msix.restore_state(&saved.msix);
        self.common.device_feature_select = transport.device_feature_select;
        self.common.driver_feature_select = transport.driver_feature_select;
        self.common.driver_features = transport.driver_features;
        self.common.status = transport.status;
        self.common.queue_select = transport.queue_select;
        self.common.queues = queues;
        self.interrupt.restore_from(transport);
        self.sync_ioevents();
        if transport.status & STATUS_FEATURES_OK != 0 {
            self.device.ack_features(transport.driver_features);
        }
        self.device.restore_device(&saved.device)?;
        if transport.activated {
            if transport.status & STATUS_DRIVER_OK == 0 {
                return Err(FunctionStateError::Invalid(
                    "the saved device was running without DRIVER_OK".into(),
                ));
            }
            self.start_queues(&transport.progress)
                .map_err(FunctionStateError::Activate)?;
        }
        Ok(())
    }

    /// Activates the device with the queues of `progress` (each validated against guest
    /// memory), as at `DRIVER_OK` but carrying on from where they were.
    fn start_queues(&mut self, progress: &[QueueProgress]) -> Result<(), String> {
        let mut queues = Vec::with_capacity(progress.len());
        for saved in progress {
            let index = usize::from(saved.index);
            let Some(config) = self.common.queues.get(index) else {
                return Err(format!("queue {index} does not exist"));
            };
            if !config.ready || saved.max_size != config.max_size || saved.size != config.size {
                return Err(format!(
                    "queue {index}'s progress does not match its configuration"
                ));
            }
            let queue = queue_from(saved.queue_state())
                .filter(|q| q.is_valid(&self.mem))
                .ok_or_else(|| format!("queue {index} lies outside guest RAM or is misaligned"))?;
            let notify = self.queue_events[index]
                .try_clone()
                .map_err(|e| format!("cannot clone queue {index}'s eventfd: {e}"))?;
            queues.push(ActiveQueue {
                index: saved.index,
                queue,
                notify,
            });
        }
        let interrupt = self.interrupt.clone();
        self.device
            .activate(self.mem.clone(), interrupt, queues)
            .map_err(|e| e.to_string())?;
        self.activated = true;
        Ok(())
    }
}

fn queue_from(state: QueueState) -> Option<Queue> {
    Queue::try_from(state).ok()
}
