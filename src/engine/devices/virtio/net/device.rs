//! [`VirtioNet`]: a NIC as a virtio device. Lives inside its transport on vCPU threads; the
//! frames move on the worker thread it starts at activation.

use crate::engine::memory::GuestRam;
use std::sync::Arc;
use std::thread::JoinHandle;

use virtio_bindings::bindings::virtio_net::{
    VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP,
};
use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use vmm_sys_util::eventfd::EventFd;

use super::FrameBackend;
use super::stats::NicCounters;
use super::worker::{RX_QUEUE, TX_QUEUE, Worker, WorkerQueue};
use crate::engine::confine::{self, ThreadKind};
use crate::engine::devices::virtio::{ActivateError, ActiveQueue, VirtioDevice, VirtioInterrupt};

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
    thread: JoinHandle<()>,
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

    fn stop_worker(&mut self) {
        if let Some(worker) = self.worker.take() {
            // If the write failed the thread would never stop; it cannot fail on a fresh
            // eventfd with a zero counter, so log rather than leak silently.
            if let Err(e) = worker.stop.write(1) {
                log::error!("{}: cannot stop the worker: {e}", self.name);
                return;
            }
            if worker.thread.join().is_err() {
                log::error!("{}: the worker thread panicked", self.name);
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
        self.stop_worker();
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
        self.stop_worker();
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
        let spawn_error = |source| ActivateError::SpawnWorker {
            name: self.name.clone(),
            source,
        };
        let worker = Worker::new(
            mem,
            rx,
            tx,
            stop_for_worker,
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
        self.worker = Some(WorkerHandle { stop, thread });
        Ok(())
    }

    fn reset(&mut self) {
        self.stop_worker();
    }
}
