//! The thread that moves one NIC's frames: host → guest through the receive queue (0) and
//! guest → host through the transmit queue (1), so that a vCPU never waits for the network.
//!
//! It sleeps in epoll on four things: the receive and transmit queues' notify eventfds
//! (ioeventfds in KVM), the backend fd (the TAP, edge-triggered) and a stop eventfd.
//!
//! Receive: a frame is read from the backend only when it can go somewhere. When the driver
//! has no receive buffer left, at most one frame waits in the worker, the backend is left
//! alone (the kernel queues, then drops, what else arrives) and the worker sleeps until the
//! driver notifies the receive queue. So a guest that stops reading costs neither CPU nor
//! memory. Work per wakeup is bounded ([`BATCH`] frames a direction) so one busy direction
//! cannot starve the other; leftover work makes the next epoll wait return at once.
//!
//! A bad chain costs its frame (dropped and counted, the chain handed back). A broken ring
//! (an available index further ahead than the queue holds, a used ring that cannot be
//! written) makes the device ask for a reset, and that queue is not touched again until then.

use crate::engine::memory::GuestRam;
use std::io;
use std::num::Wrapping;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use virtio_bindings::bindings::virtio_ring::VRING_AVAIL_F_NO_INTERRUPT;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::FrameBackend;
use super::frame::{
    ETH_HLEN, FRAME_BUFFER_LEN, VNET_HDR_LEN, clean_header, read_chain, write_chain,
};
use super::stats::NicCounters;
use crate::engine::devices::virtio::VirtioInterrupt;

/// Index of the receive queue.
pub const RX_QUEUE: u16 = 0;
/// Index of the transmit queue.
pub const TX_QUEUE: u16 = 1;
/// Most frames moved in one direction before the worker looks at its other events.
pub const BATCH: usize = 64;

const RX_TOKEN: u64 = 0;
const TX_TOKEN: u64 = 1;
const BACKEND_TOKEN: u64 = 2;
const STOP_TOKEN: u64 = 3;

/// The guest broke a queue's ring; that queue is not served until a reset.
#[derive(Debug)]
struct Broken;

/// One queue the worker serves.
pub struct WorkerQueue {
    /// The queue, as activated by the transport.
    pub queue: Queue,
    /// Signalled when the driver notifies it.
    pub notify: EventFd,
}

/// State of one NIC's worker thread; moved onto the thread by [`Worker::run`].
pub struct Worker {
    mem: GuestRam,
    rx: WorkerQueue,
    tx: WorkerQueue,
    stop: EventFd,
    /// Set before `stop` is signalled when the transmit queue must be drained first.
    drain: Arc<AtomicBool>,
    epoll: Epoll,
    interrupt: Arc<dyn VirtioInterrupt>,
    backend: Arc<dyn FrameBackend>,
    counters: Arc<NicCounters>,
    /// Header and frame read from the backend, waiting for a receive buffer when
    /// `rx_pending` is set.
    rx_frame: Vec<u8>,
    /// Length of the frame in `rx_frame` that no buffer has taken yet.
    rx_pending: Option<usize>,
    /// The backend may hold frames not read yet (it is polled edge-triggered).
    backend_readable: bool,
    /// The receive queue ran dry; only a notify can bring buffers.
    rx_starved: bool,
    rx_broken: bool,
    /// The transmit queue had more chains than one batch.
    tx_more: bool,
    tx_frame: Vec<u8>,
    tx_broken: bool,
}

impl Worker {
    /// A worker moving frames between `backend` and the queues, ended by `stop` (after sending
    /// every frame the driver made available when `drain` is set).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mem: GuestRam,
        rx: WorkerQueue,
        tx: WorkerQueue,
        stop: EventFd,
        drain: Arc<AtomicBool>,
        interrupt: Arc<dyn VirtioInterrupt>,
        backend: Arc<dyn FrameBackend>,
        counters: Arc<NicCounters>,
    ) -> io::Result<Worker> {
        let epoll = Epoll::new()?;
        let watch = |fd: i32, events: EventSet, token: u64| {
            epoll.ctl(ControlOperation::Add, fd, EpollEvent::new(events, token))
        };
        watch(rx.notify.as_raw_fd(), EventSet::IN, RX_TOKEN)?;
        watch(tx.notify.as_raw_fd(), EventSet::IN, TX_TOKEN)?;
        watch(
            backend.as_fd().as_raw_fd(),
            EventSet::IN | EventSet::EDGE_TRIGGERED,
            BACKEND_TOKEN,
        )?;
        watch(stop.as_raw_fd(), EventSet::IN, STOP_TOKEN)?;
        Ok(Worker {
            mem,
            rx,
            tx,
            stop,
            drain,
            epoll,
            interrupt,
            backend,
            counters,
            rx_frame: vec![0; FRAME_BUFFER_LEN],
            rx_pending: None,
            backend_readable: true,
            rx_starved: false,
            rx_broken: false,
            tx_more: true,
            tx_frame: vec![0; FRAME_BUFFER_LEN],
            tx_broken: false,
        })
    }

    /// Moves frames until `stop` is signalled; returns the receive and transmit queues. A frame
    /// read from the backend that no buffer took yet is dropped (as a full queue would).
    pub fn run(mut self) -> (Queue, Queue) {
        let mut events = [EpollEvent::default(); 4];
        loop {
            // The driver may have queued buffers before DRIVER_OK, and the backend may hold
            // frames from before this activation: the first pass looks at everything.
            self.pass();
            let timeout = if self.has_leftover_work() { 0 } else { -1 };
            let ready = match self.epoll.wait(timeout, &mut events) {
                Ok(ready) => ready,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("virtio-net worker: epoll failed, stopping: {e}");
                    return (self.rx.queue, self.tx.queue);
                }
            };
            for event in &events[..ready] {
                match event.data() {
                    STOP_TOKEN => {
                        let _ = self.stop.read();
                        if self.drain.load(Ordering::SeqCst) {
                            self.tx_more = true;
                            while self.tx_more && !self.tx_broken {
                                self.process_tx();
                            }
                        }
                        return (self.rx.queue, self.tx.queue);
                    }
                    RX_TOKEN => {
                        // Read (reset) the counter even when broken, or the level-triggered
                        // epoll would spin.
                        let _ = self.rx.notify.read();
                        self.rx_starved = false;
                    }
                    TX_TOKEN => {
                        let _ = self.tx.notify.read();
                        self.tx_more = true;
                    }
                    _ => self.backend_readable = true,
                }
            }
        }
    }

    /// One round of work without waiting: a transmit batch, then a receive batch, each only
    /// when it may have something to do (also the fuzz entry point's way in).
    pub(super) fn pass(&mut self) {
        if self.tx_more && !self.tx_broken {
            self.process_tx();
        }
        if self.rx_has_work() {
            self.process_rx();
        }
    }

    fn rx_has_work(&self) -> bool {
        !self.rx_broken && !self.rx_starved && (self.backend_readable || self.rx_pending.is_some())
    }

    /// Work a batch limit left behind: the next wait must not sleep.
    fn has_leftover_work(&self) -> bool {
        (self.tx_more && !self.tx_broken) || self.rx_has_work()
    }

    /// Sends up to [`BATCH`] guest frames to the backend, then interrupts the driver if it
    /// wants to know.
    fn process_tx(&mut self) {
        let mut sent = 0;
        let result = self.drain_tx(&mut sent);
        self.tx_more = matches!(result, Ok(true));
        if let Err(Broken) = result {
            self.tx_broken = true;
        }
        // Nothing completed, nothing to tell (a wake-up can find the queue empty).
        if !self.tx_broken && sent > 0 {
            notify_driver(&mut self.tx, &self.mem, &*self.interrupt, TX_QUEUE)
                .unwrap_or_else(|Broken| self.tx_broken = true);
        }
    }

    /// `Ok(true)` when chains are left over after a full batch.
    fn drain_tx(&mut self, sent: &mut usize) -> Result<bool, Broken> {
        loop {
            disable_notification(&mut self.tx, &self.mem, &*self.interrupt)?;
            loop {
                if *sent == BATCH {
                    return Ok(true);
                }
                check_avail_index(&self.tx, &self.mem, &*self.interrupt)?;
                let Some(chain) = self.tx.queue.pop_descriptor_chain(&self.mem) else {
                    break;
                };
                let head = chain.head_index();
                transmit(
                    &self.mem,
                    chain,
                    &mut self.tx_frame,
                    &*self.backend,
                    &self.counters,
                );
                add_used(&mut self.tx, &self.mem, &*self.interrupt, head, 0)?;
                *sent += 1;
            }
            if !enable_notification(&mut self.tx, &self.mem, &*self.interrupt)? {
                return Ok(false);
            }
        }
    }

    /// Delivers up to [`BATCH`] backend frames into receive buffers, then interrupts the
    /// driver if it wants to know.
    fn process_rx(&mut self) {
        let mut delivered = 0;
        let result = self.drain_rx(&mut delivered);
        if let Err(Broken) = result {
            self.rx_broken = true;
            return;
        }
        if delivered > 0 {
            notify_driver(&mut self.rx, &self.mem, &*self.interrupt, RX_QUEUE)
                .unwrap_or_else(|Broken| self.rx_broken = true);
        }
    }

    fn drain_rx(&mut self, delivered: &mut usize) -> Result<(), Broken> {
        // Notifications are wanted only when buffers run out (below).
        disable_notification(&mut self.rx, &self.mem, &*self.interrupt)?;
        while *delivered < BATCH {
            let Some(len) = self.pending_frame() else {
                return Ok(());
            };
            check_avail_index(&self.rx, &self.mem, &*self.interrupt)?;
            let Some(chain) = self.rx.queue.pop_descriptor_chain(&self.mem) else {
                if enable_notification(&mut self.rx, &self.mem, &*self.interrupt)? {
                    continue;
                }
                self.rx_starved = true;
                return Ok(());
            };
            self.rx_pending = None;
            let head = chain.head_index();
            clean_header(&mut self.rx_frame);
            let written = match write_chain(&self.mem, chain, &self.rx_frame[..len]) {
                Ok(written) => {
                    self.counters.record_rx((len - VNET_HDR_LEN) as u64);
                    written
                }
                Err(bad) => {
                    log::debug!("virtio-net: dropping a received frame: {bad}");
                    self.counters.record_rx_drop();
                    0
                }
            };
            add_used(&mut self.rx, &self.mem, &*self.interrupt, head, written)?;
            *delivered += 1;
        }
        Ok(())
    }

    /// The frame waiting for a receive buffer, reading the next one from the backend when
    /// none waits; `None` when the backend has nothing.
    fn pending_frame(&mut self) -> Option<usize> {
        while self.rx_pending.is_none() && self.backend_readable {
            match nix::unistd::read(self.backend.as_fd(), &mut self.rx_frame) {
                Ok(len) if len >= VNET_HDR_LEN + ETH_HLEN => self.rx_pending = Some(len),
                Ok(_) => self.counters.record_rx_drop(),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => self.backend_readable = false,
                Err(e) => {
                    // A TAP whose interface went down reads EIO until it comes back up;
                    // the next edge (a frame arriving) tries again.
                    log::debug!("virtio-net: cannot read from the host side: {e}");
                    self.backend_readable = false;
                }
            }
        }
        self.rx_pending
    }
}

/// Hands one transmit chain's frame to the backend, or counts it dropped.
fn transmit(
    mem: &GuestRam,
    chain: impl Iterator<Item = Descriptor>,
    buffer: &mut [u8],
    backend: &dyn FrameBackend,
    counters: &NicCounters,
) {
    let len = match read_chain(mem, chain, buffer) {
        Ok(len) => len,
        Err(bad) => {
            log::debug!("virtio-net: dropping a transmitted frame: {bad}");
            counters.record_tx_drop();
            return;
        }
    };
    clean_header(buffer);
    let frame = &buffer[..len];
    loop {
        match nix::unistd::write(backend.as_fd(), frame) {
            Ok(written) if written == len => counters.record_tx((len - VNET_HDR_LEN) as u64),
            Ok(_) => counters.record_tx_drop(),
            Err(Errno::EINTR) => continue,
            Err(e) => {
                // EAGAIN (no room) or a host-side refusal: the frame is lost, as on a real
                // wire; blocking would stall the guest.
                log::debug!("virtio-net: the host refused a frame: {e}");
                counters.record_tx_drop();
            }
        }
        return;
    }
}

/// Stops notifications while a queue is drained (no-op with EVENT_IDX).
fn disable_notification(
    q: &mut WorkerQueue,
    mem: &GuestRam,
    interrupt: &dyn VirtioInterrupt,
) -> Result<(), Broken> {
    q.queue.disable_notification(mem).map_err(|e| {
        log::warn!("virtio-net: cannot update the used ring flags: {e}");
        broken(interrupt)
    })
}

/// Asks for notifications again; `true` when buffers arrived meanwhile.
fn enable_notification(
    q: &mut WorkerQueue,
    mem: &GuestRam,
    interrupt: &dyn VirtioInterrupt,
) -> Result<bool, Broken> {
    q.queue.enable_notification(mem).map_err(|e| {
        log::warn!("virtio-net: cannot read the available ring: {e}");
        broken(interrupt)
    })
}

fn add_used(
    q: &mut WorkerQueue,
    mem: &GuestRam,
    interrupt: &dyn VirtioInterrupt,
    head: u16,
    len: u32,
) -> Result<(), Broken> {
    q.queue.add_used(mem, head, len).map_err(|e| {
        log::warn!("virtio-net: cannot complete descriptor {head}: {e}");
        broken(interrupt)
    })
}

/// Interrupts the driver for queue `index` if it asked to be: `used_event` with EVENT_IDX,
/// else the available ring's `VRING_AVAIL_F_NO_INTERRUPT` flag (which virtio-queue leaves to
/// the device; a driver polling its transmit queue sets it to save the interrupts).
fn notify_driver(
    q: &mut WorkerQueue,
    mem: &GuestRam,
    interrupt: &dyn VirtioInterrupt,
    index: u16,
) -> Result<(), Broken> {
    let wanted = q.queue.needs_notification(mem).and_then(|wanted| {
        if !wanted || q.queue.event_idx_enabled() {
            return Ok(wanted);
        }
        // needs_notification fenced the used-ring writes before this read.
        let flags: u16 = mem
            .load(GuestAddress(q.queue.avail_ring()), Ordering::Acquire)
            .map_err(virtio_queue::Error::GuestMemory)?;
        Ok(flags & VRING_AVAIL_F_NO_INTERRUPT as u16 == 0)
    });
    match wanted {
        Ok(true) => {
            interrupt.signal_queue(index);
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => {
            log::warn!("virtio-net: cannot read used_event or the ring flags: {e}");
            Err(broken(interrupt))
        }
    }
}

/// The driver cannot have more new entries than the queue holds; an index that claims so is
/// a broken ring (virtio-queue would silently stop iterating).
fn check_avail_index(
    q: &WorkerQueue,
    mem: &GuestRam,
    interrupt: &dyn VirtioInterrupt,
) -> Result<(), Broken> {
    let queue = &q.queue;
    match queue.avail_idx(mem, Ordering::Acquire) {
        Ok(avail) if (avail - Wrapping(queue.next_avail())).0 <= queue.size() => Ok(()),
        Ok(avail) => {
            log::warn!(
                "virtio-net: available index {} is {} entries ahead of a {}-entry queue",
                avail.0,
                (avail - Wrapping(queue.next_avail())).0,
                queue.size()
            );
            Err(broken(interrupt))
        }
        Err(e) => {
            log::warn!("virtio-net: cannot read the available ring: {e}");
            Err(broken(interrupt))
        }
    }
}

/// Asks the driver for a reset.
fn broken(interrupt: &dyn VirtioInterrupt) -> Broken {
    interrupt.signal_needs_reset();
    Broken
}
