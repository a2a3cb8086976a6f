//! The thread serving one balloon's queues, so a vCPU never waits for `madvise`: the driver's
//! notify only signals an eventfd (an ioeventfd in KVM), and this thread wakes, drains the
//! queue and interrupts the guest.
//!
//! - inflate: each buffer holds page numbers (u32, 4 KiB units) the guest gives up; they are
//!   released on the host, then the buffer is returned.
//! - deflate: page numbers the guest takes back; nothing to do on the host (a released page
//!   faults back in as zeroes), the buffer is returned.
//! - stats: the driver's one statistics buffer is read and kept; every [`STATS_PERIOD`] it is
//!   returned so the driver refills it with fresh numbers.
//! - reporting: each descriptor is a free guest range (address, length) the driver reports; it
//!   is released on the host before the buffer is returned, so the guest cannot reuse the
//!   memory while it is being released.
//!
//! A broken ring (available index too far ahead, an unwritable used ring) makes the device ask
//! for a reset, and that queue is not served again until then. Page numbers outside guest RAM
//! are skipped and logged: the buffer still completes.

use std::io;
use std::num::Wrapping;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::engine::memory::GuestRam;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::release::{Ranges, release};
use super::{Balloon, BalloonStats};
use crate::engine::devices::virtio::VirtioInterrupt;

/// How often the driver is asked for fresh statistics.
pub const STATS_PERIOD: Duration = Duration::from_secs(2);
/// Most bytes of one statistics buffer read (the spec defines 10 tags of 10 bytes).
const MAX_STATS_BYTES: u32 = 4096;
/// Bytes of one `virtio_balloon_stat` (u16 tag, u64 value, packed).
const STAT_BYTES: usize = 10;
const STOP_TOKEN: u64 = u64::MAX;

/// What a queue is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Pages given to the host.
    Inflate,
    /// Pages taken back.
    Deflate,
    /// Memory statistics.
    Stats,
    /// Free page reporting.
    Reporting,
}

/// One queue the worker serves.
pub struct WorkerQueue {
    /// Its index on the device.
    pub index: u16,
    /// What it is for.
    pub role: Role,
    /// The queue.
    pub queue: Queue,
    /// Signalled when the driver notifies it.
    pub notify: EventFd,
    broken: bool,
}

impl WorkerQueue {
    /// Queue `index` serving `role`.
    pub fn new(index: u16, role: Role, queue: Queue, notify: EventFd) -> WorkerQueue {
        WorkerQueue {
            index,
            role,
            queue,
            notify,
            broken: false,
        }
    }
}

/// What the worker hands back when it stops.
pub struct Stopped {
    /// Each queue, (index, queue).
    pub queues: Vec<(u16, Queue)>,
    /// The statistics buffer it was holding (descriptor head), if any.
    pub stats_head: Option<u16>,
}

/// State of one balloon's worker thread; moved onto the thread by [`Worker::run`].
pub struct Worker {
    mem: GuestRam,
    queues: Vec<WorkerQueue>,
    stop: EventFd,
    drain: Arc<AtomicBool>,
    epoll: Epoll,
    interrupt: Arc<dyn VirtioInterrupt>,
    balloon: Balloon,
    /// The statistics buffer the device holds until the next request.
    stats_head: Option<u16>,
    next_stats_request: Instant,
}

impl Worker {
    /// A worker for `queues`, ended by `stop` (after draining the page queues when `drain` is
    /// set). `stats_head` is a statistics buffer already held (a restored device).
    pub fn new(
        mem: GuestRam,
        queues: Vec<WorkerQueue>,
        stop: EventFd,
        drain: Arc<AtomicBool>,
        interrupt: Arc<dyn VirtioInterrupt>,
        balloon: Balloon,
        stats_head: Option<u16>,
    ) -> io::Result<Worker> {
        let epoll = Epoll::new()?;
        for (token, queue) in queues.iter().enumerate() {
            epoll.ctl(
                ControlOperation::Add,
                queue.notify.as_raw_fd(),
                EpollEvent::new(EventSet::IN, token as u64),
            )?;
        }
        epoll.ctl(
            ControlOperation::Add,
            stop.as_raw_fd(),
            EpollEvent::new(EventSet::IN, STOP_TOKEN),
        )?;
        Ok(Worker {
            mem,
            queues,
            stop,
            drain,
            epoll,
            interrupt,
            balloon,
            stats_head,
            next_stats_request: Instant::now() + STATS_PERIOD,
        })
    }

    /// Serves the queues until `stop` is signalled; hands them back.
    pub fn run(mut self) -> Stopped {
        // Buffers may have been queued before DRIVER_OK (or before a save).
        for token in 0..self.queues.len() {
            self.serve(token);
        }
        let mut events = vec![EpollEvent::default(); self.queues.len() + 1];
        loop {
            let timeout = self.stats_timeout_ms();
            let ready = match self.epoll.wait(timeout, &mut events) {
                Ok(ready) => ready,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("virtio-balloon worker: epoll failed, stopping: {e}");
                    return self.stopped();
                }
            };
            for event in &events[..ready] {
                let token = event.data();
                if token == STOP_TOKEN {
                    let _ = self.stop.read();
                    if self.drain.load(Ordering::SeqCst) {
                        for token in 0..self.queues.len() {
                            self.serve(token);
                        }
                    }
                    return self.stopped();
                }
                let Ok(token) = usize::try_from(token) else {
                    continue;
                };
                if let Some(queue) = self.queues.get(token) {
                    // Read (reset) the counter even when broken, or epoll would spin.
                    let _ = queue.notify.read();
                }
                self.serve(token);
            }
            if Instant::now() >= self.next_stats_request {
                self.request_stats();
            }
        }
    }

    fn stopped(self) -> Stopped {
        Stopped {
            queues: self
                .queues
                .into_iter()
                .map(|q| (q.index, q.queue))
                .collect(),
            stats_head: self.stats_head,
        }
    }

    /// Milliseconds until the statistics buffer is due back; forever without one.
    fn stats_timeout_ms(&self) -> i32 {
        if self.stats_head.is_none() {
            return -1;
        }
        let left = self
            .next_stats_request
            .saturating_duration_since(Instant::now());
        i32::try_from(left.as_millis()).unwrap_or(i32::MAX)
    }

    /// Returns the held statistics buffer so the driver sends fresh numbers.
    fn request_stats(&mut self) {
        self.next_stats_request = Instant::now() + STATS_PERIOD;
        let Some(head) = self.stats_head.take() else {
            return;
        };
        if let Some(token) = self.queues.iter().position(|q| q.role == Role::Stats) {
            self.complete(token, head);
        }
    }

    /// Takes every available buffer of queue `token` and handles it.
    fn serve(&mut self, token: usize) {
        loop {
            let Some(queue) = self.queues.get_mut(token) else {
                return;
            };
            if queue.broken {
                return;
            }
            if !avail_index_sane(queue, &self.mem) {
                self.break_queue(token);
                return;
            }
            let Some(chain) = queue.queue.pop_descriptor_chain(&self.mem) else {
                return;
            };
            let head = chain.head_index();
            let role = queue.role;
            let descriptors: Vec<Descriptor> = chain.collect();
            match role {
                Role::Inflate => {
                    self.inflate(&descriptors);
                    self.complete(token, head);
                }
                Role::Deflate => self.complete(token, head),
                Role::Stats => {
                    self.read_stats(&descriptors);
                    // A driver that sends a second buffer gets the first one back.
                    if let Some(previous) = self.stats_head.replace(head) {
                        self.complete(token, previous);
                    }
                }
                Role::Reporting => {
                    self.report(&descriptors);
                    self.complete(token, head);
                }
            }
        }
    }

    /// Releases the pages an inflate buffer names.
    fn inflate(&self, descriptors: &[Descriptor]) {
        let mut ranges = Ranges::default();
        let mut bytes = [0u8; 4096];
        for desc in descriptors.iter().filter(|d| !d.is_write_only()) {
            let mut offset = 0u64;
            let len = u64::from(desc.len()) & !3;
            while offset < len {
                let chunk = (len - offset).min(bytes.len() as u64) as usize;
                let Some(addr) = desc.addr().0.checked_add(offset) else {
                    break;
                };
                if self
                    .mem
                    .read_slice(&mut bytes[..chunk], GuestAddress(addr))
                    .is_err()
                {
                    log::warn!("virtio-balloon: an inflate buffer lies outside guest RAM");
                    break;
                }
                for pfn in bytes[..chunk].chunks_exact(4) {
                    ranges.push(u32::from_le_bytes([pfn[0], pfn[1], pfn[2], pfn[3]]));
                }
                offset += chunk as u64;
            }
        }
        for (addr, len) in ranges.finish() {
            self.give_back(addr, len);
        }
    }

    /// Releases the free ranges a reporting buffer names.
    fn report(&self, descriptors: &[Descriptor]) {
        for desc in descriptors {
            self.give_back(desc.addr().0, u64::from(desc.len()));
        }
    }

    fn give_back(&self, addr: u64, len: u64) {
        match release(&self.mem, addr, len) {
            Ok(()) => self.balloon.add_released(len),
            Err(e) => log::warn!("virtio-balloon: {e}"),
        }
    }

    /// Reads the statistics a stats buffer carries.
    fn read_stats(&self, descriptors: &[Descriptor]) {
        let mut raw = Vec::new();
        for desc in descriptors.iter().filter(|d| !d.is_write_only()) {
            let room = MAX_STATS_BYTES as usize - raw.len();
            let len = (desc.len() as usize).min(room);
            let start = raw.len();
            raw.resize(start + len, 0);
            if self.mem.read_slice(&mut raw[start..], desc.addr()).is_err() {
                raw.truncate(start);
                break;
            }
        }
        let mut stats = BalloonStats::default();
        for entry in raw.chunks_exact(STAT_BYTES) {
            let tag = u16::from_le_bytes([entry[0], entry[1]]);
            let mut value = [0u8; 8];
            value.copy_from_slice(&entry[2..10]);
            stats.record(tag, u64::from_le_bytes(value));
        }
        self.balloon.set_stats(stats);
    }

    /// Returns buffer `head` of queue `token` to the driver and interrupts it if it wants.
    fn complete(&mut self, token: usize, head: u16) {
        let Some(queue) = self.queues.get_mut(token) else {
            return;
        };
        if let Err(e) = queue.queue.add_used(&self.mem, head, 0) {
            log::warn!("virtio-balloon: cannot complete descriptor {head}: {e}");
            self.break_queue(token);
            return;
        }
        match queue.queue.needs_notification(&self.mem) {
            Ok(true) => self.interrupt.signal_queue(queue.index),
            Ok(false) => {}
            Err(e) => {
                log::warn!("virtio-balloon: cannot read used_event: {e}");
                self.break_queue(token);
            }
        }
    }

    fn break_queue(&mut self, token: usize) {
        if let Some(queue) = self.queues.get_mut(token) {
            queue.broken = true;
        }
        self.interrupt.signal_needs_reset();
    }
}

/// The driver cannot have more new entries than the queue holds.
fn avail_index_sane(queue: &WorkerQueue, mem: &GuestRam) -> bool {
    match queue.queue.avail_idx(mem, Ordering::Acquire) {
        Ok(avail) => (avail - Wrapping(queue.queue.next_avail())).0 <= queue.queue.size(),
        Err(_) => false,
    }
}
