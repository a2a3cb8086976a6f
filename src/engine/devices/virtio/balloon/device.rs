//! [`VirtioBalloon`]: the memory balloon as a virtio device. Lives inside its transport on
//! vCPU threads; the pages move on the worker thread it starts at activation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crate::engine::confine::{self, ThreadKind};
use crate::engine::memory::GuestRam;
use virtio_queue::QueueState;
use vmm_sys_util::eventfd::EventFd;

use super::worker::{Role, Stopped, Worker, WorkerQueue};
use super::{Balloon, F_DEFLATE_ON_OOM, F_REPORTING, F_STATS_VQ};
use crate::engine::devices::virtio::{
    ActivateError, ActiveQueue, DeviceStateError, TRANSPORT_FEATURES, VirtioDevice,
    VirtioInterrupt, read_config_bytes,
};
use crate::engine::snapshot::{BalloonState, DeviceState};

/// virtio device id of the balloon.
pub const VIRTIO_ID_BALLOON: u32 = 5;
/// Size of each queue.
const QUEUE_SIZE: u16 = 256;
/// Queues the device has room for: inflate, deflate, stats, reporting.
const QUEUE_SIZES: [u16; 4] = [QUEUE_SIZE; 4];
/// `struct virtio_balloon_config`: num_pages, actual, free_page_hint_cmd_id, poison_val.
const CONFIG_SIZE: usize = 16;
/// Offset of `actual`, the one field the driver writes.
const ACTUAL_OFFSET: u64 = 4;

/// The memory balloon. Created by the engine for every VM that has one, owned by its
/// transport; its [`Balloon`] handle is how the host sets the target.
pub struct VirtioBalloon {
    balloon: Balloon,
    acked: u64,
    /// The statistics buffer held while quiesced or restored, handed to the next worker.
    stats_head: Option<u16>,
    worker: Option<WorkerHandle>,
}

struct WorkerHandle {
    stop: EventFd,
    drain: Arc<AtomicBool>,
    thread: JoinHandle<Stopped>,
}

impl VirtioBalloon {
    /// A balloon controlled through `balloon`.
    pub fn new(balloon: Balloon) -> VirtioBalloon {
        VirtioBalloon {
            balloon,
            acked: 0,
            stats_head: None,
            worker: None,
        }
    }

    fn stop_worker(&mut self, drain: bool) -> Option<Stopped> {
        let worker = self.worker.take()?;
        self.balloon.set_interrupt(None);
        worker.drain.store(drain, Ordering::SeqCst);
        // Cannot fail on a fresh eventfd with a zero counter; log rather than leak silently.
        if let Err(e) = worker.stop.write(1) {
            log::error!("balloon: cannot stop the worker: {e}");
            return None;
        }
        match worker.thread.join() {
            Ok(stopped) => Some(stopped),
            Err(_) => {
                log::error!("balloon: the worker thread panicked");
                None
            }
        }
    }

    /// Which role queue `index` has under the negotiated features.
    fn role(&self, index: u16) -> Option<Role> {
        let mut roles = vec![Role::Inflate, Role::Deflate];
        if self.acked & F_STATS_VQ != 0 {
            roles.push(Role::Stats);
        }
        if self.acked & F_REPORTING != 0 {
            roles.push(Role::Reporting);
        }
        roles.get(usize::from(index)).copied()
    }

    fn config(&self) -> [u8; CONFIG_SIZE] {
        let mut config = [0u8; CONFIG_SIZE];
        config[0..4].copy_from_slice(&self.balloon.target_pages().to_le_bytes());
        config[4..8].copy_from_slice(&self.balloon.actual_pages().to_le_bytes());
        config
    }
}

impl Drop for VirtioBalloon {
    fn drop(&mut self) {
        self.stop_worker(false);
    }
}

impl VirtioDevice for VirtioBalloon {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BALLOON
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn features(&self) -> u64 {
        F_STATS_VQ | F_DEFLATE_ON_OOM | F_REPORTING
    }

    fn ack_features(&mut self, features: u64) {
        self.acked = features;
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config(), offset, data);
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // `actual` is written whole by drivers; a partial write updates those bytes.
        let mut actual = self.balloon.actual_pages().to_le_bytes();
        let mut changed = false;
        for (i, &byte) in data.iter().enumerate() {
            let Some(at) = offset
                .checked_add(i as u64)
                .and_then(|o| o.checked_sub(ACTUAL_OFFSET))
                .and_then(|o| usize::try_from(o).ok())
            else {
                continue;
            };
            if let Some(slot) = actual.get_mut(at) {
                *slot = byte;
                changed = true;
            }
        }
        if changed {
            self.balloon.set_actual_pages(u32::from_le_bytes(actual));
        }
    }

    fn activate(
        &mut self,
        mem: GuestRam,
        interrupt: Arc<dyn VirtioInterrupt>,
        queues: Vec<ActiveQueue>,
    ) -> Result<(), ActivateError> {
        if let Some(stopped) = self.stop_worker(false) {
            self.stats_head = stopped.stats_head;
        }
        let mut served = Vec::new();
        for active in queues {
            if let Some(role) = self.role(active.index) {
                served.push(WorkerQueue::new(
                    active.index,
                    role,
                    active.queue,
                    active.notify,
                ));
            }
        }
        for (index, role) in [(0, Role::Inflate), (1, Role::Deflate)] {
            if !served.iter().any(|q| q.role == role) {
                return Err(ActivateError::MissingQueue { index });
            }
        }
        let stop = EventFd::new(libc::EFD_NONBLOCK).map_err(ActivateError::CreateEventFd)?;
        let stop_for_worker = stop.try_clone().map_err(ActivateError::CreateEventFd)?;
        let drain = Arc::new(AtomicBool::new(false));
        let spawn_error = |source| ActivateError::SpawnWorker {
            name: "balloon".into(),
            source,
        };
        let worker = Worker::new(
            mem,
            served,
            stop_for_worker,
            drain.clone(),
            interrupt.clone(),
            self.balloon.clone(),
            self.stats_head.take(),
        )
        .map_err(spawn_error)?;
        // Made by the thread factory in a confined vmd: this runs on a vCPU thread, which may
        // not create threads itself.
        let thread = confine::spawn(ThreadKind::BalloonWorker, "balloon".into(), move || {
            worker.run()
        })
        .map_err(spawn_error)?;
        self.worker = Some(WorkerHandle {
            stop,
            drain,
            thread,
        });
        self.balloon.set_interrupt(Some(interrupt));
        Ok(())
    }

    fn reset(&mut self) {
        self.stop_worker(false);
        self.stats_head = None;
        self.acked = 0;
        // A driver that goes away gives every page back.
        self.balloon.set_actual_pages(0);
    }

    fn quiesce(&mut self) -> Vec<(u16, QueueState)> {
        let Some(stopped) = self.stop_worker(true) else {
            return Vec::new();
        };
        self.stats_head = stopped.stats_head;
        stopped
            .queues
            .into_iter()
            .map(|(index, queue)| (index, queue.state()))
            .collect()
    }

    fn save_device(&self) -> DeviceState {
        DeviceState::Balloon(BalloonState {
            acked_features: self.acked,
            target_pages: self.balloon.target_pages(),
            actual_pages: self.balloon.actual_pages(),
            stats_head: self.stats_head,
        })
    }

    fn restore_device(&mut self, state: &DeviceState) -> Result<(), DeviceStateError> {
        let DeviceState::Balloon(saved) = state else {
            return Err(DeviceStateError::WrongDevice {
                expected: "virtio-balloon",
                found: state.type_name(),
            });
        };
        let offered = self.features() | TRANSPORT_FEATURES;
        if saved.acked_features & !offered != 0 {
            return Err(DeviceStateError::Features {
                acked: saved.acked_features,
                offered,
            });
        }
        self.acked = saved.acked_features;
        self.stats_head = saved.stats_head.filter(|&head| head < QUEUE_SIZE);
        self.balloon.restore(saved.target_pages, saved.actual_pages);
        Ok(())
    }
}
