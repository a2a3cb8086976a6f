//! [`VirtioNet`]: a NIC as a virtio device. Lives inside its transport on vCPU threads; the
//! frames move on the worker thread it starts at activation.

use crate::engine::memory::GuestRam;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use virtio_bindings::bindings::virtio_net::{
    VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP,
};
use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_queue::Queue;
use vmm_sys_util::eventfd::EventFd;

use super::FrameBackend;
use super::stats::NicCounters;
use super::worker::{RX_QUEUE, TX_QUEUE, Worker, WorkerQueue};
use crate::engine::confine::{self, ThreadKind};
use crate::engine::devices::virtio::{
    ActivateError, ActiveQueue, DeviceStateError, VirtioDevice, VirtioInterrupt,
};
use crate::engine::snapshot::DeviceState;

/// Size of each queue (the most a virtio-pci queue may have here).
const QUEUE_SIZE: u16 = 256;
/// `struct virtio_net_config` up to `max_virtqueue_pairs`: mac, status, pairs (bytes).
const CONFIG_SIZE: usize = 10;

/// One virtio-net NIC. Created by the engine for each `NicSpec`, owned by its transport.
pub struct VirtioNet {
    name: String,
    backend: Arc<dyn FrameBackend>,
    counters: Arc<NicCounters>,
    config: [u8; CONFIG_SIZE],
    worker: Option<WorkerHandle>,
}

struct WorkerHandle {
    stop: EventFd,
    drain: Arc<AtomicBool>,
    thread: JoinHandle<(Queue, Queue)>,
}

impl VirtioNet {
    /// A NIC with MAC `mac` whose frames go to and come from `backend`. `name` names the
    /// worker thread (at most 15 bytes are kept by the OS); `tap` is the host interface the
    /// stats are reported under.
    pub fn new(name: &str, backend: Arc<dyn FrameBackend>, mac: [u8; 6], tap: &str) -> VirtioNet {
        VirtioNet {
            name: name.to_owned(),
            backend,
            counters: Arc::new(NicCounters::new(tap, mac)),
            config: config_space(mac),
            worker: None,
        }
    }

    /// The live counters, for whoever samples stats after the device is handed to its
    /// transport.
    pub fn counters(&self) -> Arc<NicCounters> {
        self.counters.clone()
    }

    /// Stops the worker (after it sent every available frame when `drain`) and returns the
    /// receive and transmit queues.
    fn stop_worker(&mut self, drain: bool) -> Option<(Queue, Queue)> {
        let worker = self.worker.take()?;
        worker.drain.store(drain, Ordering::SeqCst);
        // If the write failed the thread would never stop; it cannot fail on a fresh
        // eventfd with a zero counter, so log rather than leak silently.
        if let Err(e) = worker.stop.write(1) {
            log::error!("{}: cannot stop the worker: {e}", self.name);
            return None;
        }
        match worker.thread.join() {
            Ok(queues) => Some(queues),
            Err(_) => {
                log::error!("{}: the worker thread panicked", self.name);
                None
            }
        }
    }
}

/// `struct virtio_net_config`: the MAC, the link up, one queue pair.
fn config_space(mac: [u8; 6]) -> [u8; CONFIG_SIZE] {
    let mut config = [0u8; CONFIG_SIZE];
    config[..6].copy_from_slice(&mac);
    config[6..8].copy_from_slice(&(VIRTIO_NET_S_LINK_UP as u16).to_le_bytes());
    config[8..10].copy_from_slice(&1u16.to_le_bytes());
    config
}

impl Drop for VirtioNet {
    fn drop(&mut self) {
        self.stop_worker(false);
    }
}

impl VirtioDevice for VirtioNet {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        (1 << VIRTIO_NET_F_MAC) | (1 << VIRTIO_NET_F_STATUS)
    }

    fn ack_features(&mut self, _features: u64) {
        // Nothing depends on them: MAC and STATUS only describe the configuration space,
        // which reads the same either way.
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        crate::engine::devices::virtio::read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // Every field is read-only to a modern driver: the MAC is set by the host, and
        // changing it would need VIRTIO_NET_F_CTRL_MAC_ADDR, which is not offered.
    }

    fn activate(
        &mut self,
        mem: GuestRam,
        interrupt: Arc<dyn VirtioInterrupt>,
        queues: Vec<ActiveQueue>,
    ) -> Result<(), ActivateError> {
        self.stop_worker(false);
        let mut rx = None;
        let mut tx = None;
        for active in queues {
            let slot = match active.index {
                RX_QUEUE => &mut rx,
                TX_QUEUE => &mut tx,
                _ => continue,
            };
            *slot = Some(WorkerQueue {
                queue: active.queue,
                notify: active.notify,
            });
        }
        let rx = rx.ok_or(ActivateError::MissingQueue { index: RX_QUEUE })?;
        let tx = tx.ok_or(ActivateError::MissingQueue { index: TX_QUEUE })?;
        let stop = EventFd::new(libc::EFD_NONBLOCK).map_err(ActivateError::CreateEventFd)?;
        let stop_for_worker = stop.try_clone().map_err(ActivateError::CreateEventFd)?;
        let drain = Arc::new(AtomicBool::new(false));
        let spawn_error = |source| ActivateError::SpawnWorker {
            name: self.name.clone(),
            source,
        };
        let worker = Worker::new(
            mem,
            rx,
            tx,
            stop_for_worker,
            drain.clone(),
            interrupt,
            self.backend.clone(),
            self.counters.clone(),
        )
        .map_err(spawn_error)?;
        // Made by the thread factory in a confined vmd: this runs on a vCPU thread, which may
        // not create threads itself.
        let thread = confine::spawn(ThreadKind::NetWorker, self.name.clone(), move || {
            worker.run()
        })
        .map_err(spawn_error)?;
        self.worker = Some(WorkerHandle {
            stop,
            drain,
            thread,
        });
        Ok(())
    }

    fn reset(&mut self) {
        self.stop_worker(false);
    }

    fn quiesce(&mut self) -> Vec<(u16, virtio_queue::QueueState)> {
        self.stop_worker(true)
            .map(|(rx, tx)| vec![(RX_QUEUE, rx.state()), (TX_QUEUE, tx.state())])
            .unwrap_or_default()
    }

    fn save_device(&self) -> DeviceState {
        DeviceState::Net
    }

    fn restore_device(&mut self, state: &DeviceState) -> Result<(), DeviceStateError> {
        match state {
            DeviceState::Net => Ok(()),
            other => Err(DeviceStateError::WrongDevice {
                expected: "virtio-net",
                found: other.type_name(),
            }),
        }
    }
}
