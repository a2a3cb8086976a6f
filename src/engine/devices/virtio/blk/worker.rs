//! The thread that serves one disk's request queue, so that a vCPU never waits for disk I/O:
//! a driver's notify only signals an eventfd (in KVM, through the ioeventfd), and this thread
//! wakes, drains the available ring and interrupts the guest.
//!
//! It stops when the device is reset or dropped (the `stop` eventfd), and stops touching the
//! queue after a malformed ring or chain, having asked the driver for a reset. A stop with the
//! `drain` flag set (a VM being saved, its vCPUs paused) first serves everything the driver
//! made available, so no request is left half-done; the thread hands its queue back either way,
//! with the progress (next available and used entries) it reached.

use crate::engine::memory::GuestRam;
use std::num::Wrapping;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use virtio_queue::{Queue, QueueT};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::request::{BOUNCE_BUFFER_SIZE, Disk, handle_chain};
use crate::engine::devices::virtio::VirtioInterrupt;

const NOTIFY_TOKEN: u64 = 0;
const STOP_TOKEN: u64 = 1;

/// The guest broke the queue; nothing more is served until a reset.
#[derive(Debug)]
pub(super) struct Broken;

/// State of one disk's worker thread; moved onto the thread by [`Worker::run`].
pub struct Worker {
    mem: GuestRam,
    queue: Queue,
    queue_index: u16,
    notify: EventFd,
    stop: EventFd,
    /// Set before `stop` is signalled when the queue must be drained first.
    drain: Arc<AtomicBool>,
    epoll: Epoll,
    interrupt: Arc<dyn VirtioInterrupt>,
    disk: Disk,
    buffer: Vec<u8>,
}

impl Worker {
    /// A worker for `queue`, woken by `notify`, ended by `stop` (after draining the queue when
    /// `drain` is set).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mem: GuestRam,
        queue: Queue,
        queue_index: u16,
        notify: EventFd,
        stop: EventFd,
        drain: Arc<AtomicBool>,
        interrupt: Arc<dyn VirtioInterrupt>,
        disk: Disk,
    ) -> std::io::Result<Worker> {
        let epoll = Epoll::new()?;
        epoll.ctl(
            ControlOperation::Add,
            notify.as_raw_fd(),
            EpollEvent::new(EventSet::IN, NOTIFY_TOKEN),
        )?;
        epoll.ctl(
            ControlOperation::Add,
            stop.as_raw_fd(),
            EpollEvent::new(EventSet::IN, STOP_TOKEN),
        )?;
        Ok(Worker {
            mem,
            queue,
            queue_index,
            notify,
            stop,
            drain,
            epoll,
            interrupt,
            disk,
            buffer: vec![0; BOUNCE_BUFFER_SIZE],
        })
    }

    /// Serves the queue until `stop` is signalled; returns the queue.
    pub fn run(mut self) -> Queue {
        // The driver may have queued requests before DRIVER_OK (or before a save); serve them.
        let mut broken = self.serve().is_err();
        let mut events = [EpollEvent::default(); 2];
        loop {
            let ready = match self.epoll.wait(-1, &mut events) {
                Ok(ready) => ready,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("virtio-blk worker: epoll failed, stopping: {e}");
                    return self.queue;
                }
            };
            for event in &events[..ready] {
                match event.data() {
                    STOP_TOKEN => {
                        let _ = self.stop.read();
                        if self.drain.load(Ordering::SeqCst) && !broken {
                            let _ = self.notify.read();
                            let _ = self.serve();
                        }
                        return self.queue;
                    }
                    _ => {
                        // Read (reset) the counter even when broken, or the level-triggered
                        // epoll would spin.
                        let _ = self.notify.read();
                        if !broken {
                            broken = self.serve().is_err();
                        }
                    }
                }
            }
        }
    }

    /// Drains the available ring, then interrupts the driver if it wants to know (also the
    /// fuzz entry point's way in).
    pub(super) fn serve(&mut self) -> Result<(), Broken> {
        let result = self.drain();
        match self.queue.needs_notification(&self.mem) {
            Ok(true) => self.interrupt.signal_queue(self.queue_index),
            Ok(false) => {}
            Err(e) => {
                log::warn!("virtio-blk: cannot read used_event: {e}");
                return self.broken();
            }
        }
        result
    }

    fn drain(&mut self) -> Result<(), Broken> {
        loop {
            if let Err(e) = self.queue.disable_notification(&self.mem) {
                log::warn!("virtio-blk: cannot update the used ring flags: {e}");
                return self.broken();
            }
            loop {
                self.check_avail_index()?;
                let Some(chain) = self.queue.pop_descriptor_chain(&self.mem) else {
                    break;
                };
                let head = chain.head_index();
                let started = Instant::now();
                let result = handle_chain(&self.mem, chain, &self.disk, &mut self.buffer);
                self.disk.counters.record_latency(started.elapsed());
                if let Err(e) = self
                    .queue
                    .add_used(&self.mem, head, *result.as_ref().unwrap_or(&0))
                {
                    log::warn!("virtio-blk: cannot complete descriptor {head}: {e}");
                    return self.broken();
                }
                if let Err(malformed) = result {
                    log::warn!("virtio-blk: {malformed}; device needs reset");
                    self.interrupt.signal_queue(self.queue_index);
                    return self.broken();
                }
            }
            match self.queue.enable_notification(&self.mem) {
                Ok(true) => continue,
                Ok(false) => return Ok(()),
                Err(e) => {
                    log::warn!("virtio-blk: cannot read the available ring: {e}");
                    return self.broken();
                }
            }
        }
    }

    /// The driver cannot have more new entries than the queue holds; an index that claims so
    /// is a broken ring (virtio-queue would silently stop iterating).
    fn check_avail_index(&mut self) -> Result<(), Broken> {
        match self.queue.avail_idx(&self.mem, Ordering::Acquire) {
            Ok(avail) if (avail - Wrapping(self.queue.next_avail())).0 <= self.queue.size() => {
                Ok(())
            }
            Ok(avail) => {
                log::warn!(
                    "virtio-blk: available index {} is {} entries ahead of a {}-entry queue",
                    avail.0,
                    (avail - Wrapping(self.queue.next_avail())).0,
                    self.queue.size()
                );
                self.broken()
            }
            Err(e) => {
                log::warn!("virtio-blk: cannot read the available ring: {e}");
                self.broken()
            }
        }
    }

    /// Counts the guest's error and asks the driver for a reset.
    fn broken(&self) -> Result<(), Broken> {
        self.disk.counters.record_error();
        self.interrupt.signal_needs_reset();
        Err(Broken)
    }
}
