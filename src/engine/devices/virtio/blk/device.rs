//! [`VirtioBlk`]: a disk as a virtio device. Lives inside its transport on vCPU threads;
//! the requests themselves run on the worker thread it starts at activation.

use crate::engine::memory::GuestRam;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use virtio_bindings::bindings::virtio_blk::{
    VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX,
    VIRTIO_BLK_F_WRITE_ZEROES,
};
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_queue::Queue;
use vmm_sys_util::eventfd::EventFd;

use super::backend::DiskBackend;
use super::request::{Disk, MAX_DISCARD_SECTORS, MAX_DISCARD_SEGMENTS, SECTOR_SIZE, SERIAL_LEN};
use super::stats::DiskCounters;
use super::worker::Worker;
use crate::engine::confine::{self, ThreadKind};
use crate::engine::devices::virtio::{
    ActivateError, ActiveQueue, DeviceStateError, TRANSPORT_FEATURES, VirtioDevice, VirtioInterrupt,
};
use crate::engine::snapshot::DeviceState;

/// Size of the request queue (the most a virtio-pci queue may have here).
const QUEUE_SIZE: u16 = 256;
/// Size of `struct virtio_blk_config` up to `write_zeroes_may_unmap` and its padding, bytes.
const CONFIG_SIZE: usize = 60;

/// One virtio-blk disk. Created by the engine for each `DiskSpec`, owned by its transport.
pub struct VirtioBlk {
    name: String,
    backend: Arc<dyn DiskBackend>,
    serial: [u8; SERIAL_LEN],
    offered: u64,
    acked: u64,
    counters: Arc<DiskCounters>,
    config: [u8; CONFIG_SIZE],
    worker: Option<WorkerHandle>,
}

struct WorkerHandle {
    stop: EventFd,
    drain: Arc<AtomicBool>,
    thread: JoinHandle<Queue>,
}

impl VirtioBlk {
    /// A disk over `backend`. `name` names the worker thread (at most 15 bytes are kept by
    /// the OS); `serial` is what GET_ID returns, truncated to 20 bytes.
    pub fn new(name: &str, backend: Arc<dyn DiskBackend>, serial: &str) -> VirtioBlk {
        let mut serial_bytes = [0u8; SERIAL_LEN];
        let len = serial.len().min(SERIAL_LEN);
        serial_bytes[..len].copy_from_slice(&serial.as_bytes()[..len]);

        let read_only = backend.read_only();
        let mut offered = (1 << VIRTIO_BLK_F_SEG_MAX) | (1 << VIRTIO_BLK_F_FLUSH);
        if read_only {
            offered |= 1 << VIRTIO_BLK_F_RO;
        } else {
            if backend.supports_discard() {
                offered |= 1 << VIRTIO_BLK_F_DISCARD;
            }
            if backend.supports_write_zeroes() {
                offered |= 1 << VIRTIO_BLK_F_WRITE_ZEROES;
            }
        }
        let config = config_space(backend.capacity() / SECTOR_SIZE);
        VirtioBlk {
            name: name.to_owned(),
            backend,
            serial: serial_bytes,
            offered,
            acked: 0,
            counters: Arc::new(DiskCounters::default()),
            config,
            worker: None,
        }
    }

    /// The live counters, for whoever samples stats after the device is handed to its
    /// transport.
    pub fn counters(&self) -> Arc<DiskCounters> {
        self.counters.clone()
    }

    /// Stops the worker (after it served everything available when `drain`) and returns the
    /// queue it was serving.
    fn stop_worker(&mut self, drain: bool) -> Option<Queue> {
        let worker = self.worker.take()?;
        worker.drain.store(drain, Ordering::SeqCst);
        // If the write failed the thread would never stop; it cannot fail on a fresh
        // eventfd with a zero counter, so log rather than leak silently.
        if let Err(e) = worker.stop.write(1) {
            log::error!("{}: cannot stop the worker: {e}", self.name);
            return None;
        }
        match worker.thread.join() {
            Ok(queue) => Some(queue),
            Err(_) => {
                log::error!("{}: the worker thread panicked", self.name);
                None
            }
        }
    }
}

/// `struct virtio_blk_config` for a disk of `capacity` sectors.
fn config_space(capacity: u64) -> [u8; CONFIG_SIZE] {
    let mut config = [0u8; CONFIG_SIZE];
    let mut put = |offset: usize, bytes: &[u8]| {
        config[offset..offset + bytes.len()].copy_from_slice(bytes);
    };
    put(0, &capacity.to_le_bytes());
    // seg_max: a chain holds the header and status besides the data segments.
    put(12, &u32::from(QUEUE_SIZE - 2).to_le_bytes());
    put(20, &(SECTOR_SIZE as u32).to_le_bytes());
    put(34, &1u16.to_le_bytes());
    put(36, &MAX_DISCARD_SECTORS.to_le_bytes());
    put(40, &MAX_DISCARD_SEGMENTS.to_le_bytes());
    put(44, &1u32.to_le_bytes());
    put(48, &MAX_DISCARD_SECTORS.to_le_bytes());
    put(52, &MAX_DISCARD_SEGMENTS.to_le_bytes());
    config
}

impl Drop for VirtioBlk {
    fn drop(&mut self) {
        self.stop_worker(false);
    }
}

impl VirtioDevice for VirtioBlk {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        self.offered
    }

    fn ack_features(&mut self, features: u64) {
        self.acked = features;
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        crate::engine::devices::virtio::read_config_bytes(&self.config, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // Every field is read-only: the writeback toggle needs VIRTIO_BLK_F_CONFIG_WCE, which
        // is not offered.
    }

    fn activate(
        &mut self,
        mem: GuestRam,
        interrupt: Arc<dyn VirtioInterrupt>,
        queues: Vec<ActiveQueue>,
    ) -> Result<(), ActivateError> {
        self.stop_worker(false);
        let queue = queues
            .into_iter()
            .find(|q| q.index == 0)
            .ok_or(ActivateError::MissingQueue { index: 0 })?;
        let stop = EventFd::new(libc::EFD_NONBLOCK).map_err(ActivateError::CreateEventFd)?;
        let stop_for_worker = stop.try_clone().map_err(ActivateError::CreateEventFd)?;
        let drain = Arc::new(AtomicBool::new(false));
        let disk = Disk {
            backend: self.backend.clone(),
            capacity_sectors: self.backend.capacity() / SECTOR_SIZE,
            serial: self.serial,
            features: self.acked,
            counters: self.counters.clone(),
        };
        let spawn_error = |source| ActivateError::SpawnWorker {
            name: self.name.clone(),
            source,
        };
        let worker = Worker::new(
            mem,
            queue.queue,
            0,
            queue.notify,
            stop_for_worker,
            drain.clone(),
            interrupt,
            disk,
        )
        .map_err(spawn_error)?;
        // Made by the thread factory in a confined vmd: this runs on a vCPU thread, which may
        // not create threads itself.
        let thread = confine::spawn(ThreadKind::BlockWorker, self.name.clone(), move || {
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
        self.acked = 0;
    }

    fn quiesce(&mut self) -> Vec<(u16, virtio_queue::QueueState)> {
        self.stop_worker(true)
            .map(|q| vec![(0, q.state())])
            .unwrap_or_default()
    }

    fn sync(&self) -> std::io::Result<()> {
        self.backend.flush()
    }

    fn save_device(&self) -> DeviceState {
        DeviceState::Blk {
            acked_features: self.acked,
        }
    }

    fn restore_device(&mut self, state: &DeviceState) -> Result<(), DeviceStateError> {
        match state {
            DeviceState::Blk { acked_features }
                if acked_features & !(self.offered | TRANSPORT_FEATURES) == 0 =>
            {
                self.acked = *acked_features;
                Ok(())
            }
            DeviceState::Blk { acked_features } => Err(DeviceStateError::Features {
                acked: *acked_features,
                offered: self.offered | TRANSPORT_FEATURES,
            }),
            other => Err(DeviceStateError::WrongDevice {
                expected: "virtio-blk",
                found: other.type_name(),
            }),
        }
    }
}
