//! virtio-net without KVM or a TAP: the device and its worker thread against rings laid out
//! by virtio-queue's mock split queue, with a Unix datagram socket pair standing in for the
//! TAP (one datagram = one frame behind its virtio-net header, as on a TAP).

use crate::engine::memory::GuestRam;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use virtio_bindings::bindings::virtio_net::{VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS};
use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::Queue;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::EventFd;

use super::{NicCounters, VNET_HDR_LEN, VirtioNet};
use crate::engine::devices::virtio::{ActiveQueue, VirtioDevice, VirtioInterrupt};

const MEM_SIZE: usize = 0x10_0000;
const RING_SIZE: u16 = 16;
const RX_RING: u64 = 0x1000;
const TX_RING: u64 = 0x3000;
/// Receive buffers: 16 of 2 KiB from here.
const RX_BUFFERS: u64 = 0x1_0000;
const TX_BUFFERS: u64 = 0x2_0000;
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const WRITE: u16 = VRING_DESC_F_WRITE as u16;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Records what the device signalled.
#[derive(Default)]
struct FakeInterrupt {
    queues: Mutex<Vec<u16>>,
    needs_reset: AtomicBool,
}

impl VirtioInterrupt for FakeInterrupt {
    fn signal_queue(&self, queue: u16) {
        self.queues.lock().unwrap().push(queue);
    }
    fn signal_config(&self) {}
    fn signal_needs_reset(&self) {
        self.needs_reset.store(true, Ordering::SeqCst);
    }
}

/// The driver's view of one split ring.
struct Ring {
    desc: u64,
    avail: u64,
    used: u64,
    notify: EventFd,
    next_desc: u16,
    seen_used: u16,
}

impl Ring {
    /// Lays out a ring at `base` and returns it with the queue the device gets.
    fn new(mem: &GuestRam, base: u64) -> (Ring, Queue, EventFd) {
        let mock = MockSplitQueue::create(mem, GuestAddress(base), RING_SIZE);
        let queue: Queue = mock.create_queue().unwrap();
        let notify = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let ring = Ring {
            desc: mock.desc_table_addr().0,
            avail: mock.avail_addr().0,
            used: mock.used_addr().0,
            notify: notify.try_clone().unwrap(),
            next_desc: 0,
            seen_used: 0,
        };
        (ring, queue, notify)
    }

    /// Publishes one chain of `(address, length, flags)` buffers and notifies the device.
    fn add(&mut self, mem: &GuestRam, buffers: &[(u64, u32, u16)]) -> u16 {
        let head = self.next_desc;
        for (i, &(addr, len, flags)) in buffers.iter().enumerate() {
            let index = self.next_desc;
            self.next_desc = (self.next_desc + 1) % RING_SIZE;
            let (flags, next) = if i + 1 < buffers.len() {
                (flags | VRING_DESC_F_NEXT as u16, self.next_desc)
            } else {
                (flags, 0)
            };
            let raw = RawDescriptor::from(Descriptor::new(addr, len, flags, next));
            mem.write_obj(raw, GuestAddress(self.desc + 16 * u64::from(index)))
                .unwrap();
        }
        let idx: u16 = mem.read_obj(GuestAddress(self.avail + 2)).unwrap();
        let slot = self.avail + 4 + 2 * u64::from(idx % RING_SIZE);
        mem.write_obj(head, GuestAddress(slot)).unwrap();
        mem.write_obj(idx.wrapping_add(1), GuestAddress(self.avail + 2))
            .unwrap();
        self.notify.write(1).unwrap();
        head
    }

    fn used_idx(&self, mem: &GuestRam) -> u16 {
        mem.read_obj(GuestAddress(self.used + 2)).unwrap()
    }

    /// Waits for the next used entry: (head, length).
    fn wait_used(&mut self, mem: &GuestRam) -> (u32, u32) {
        let deadline = Instant::now() + TIMEOUT;
        while self.used_idx(mem) == self.seen_used {
            assert!(Instant::now() < deadline, "the device returned no buffer");
            std::thread::sleep(Duration::from_millis(1));
        }
        let entry = self.used + 4 + 8 * u64::from(self.seen_used % RING_SIZE);
        self.seen_used = self.seen_used.wrapping_add(1);
        (
            mem.read_obj(GuestAddress(entry)).unwrap(),
            mem.read_obj(GuestAddress(entry + 4)).unwrap(),
        )
    }
}

struct Rig {
    mem: GuestRam,
    net: VirtioNet,
    rx: Ring,
    tx: Ring,
    interrupt: Arc<FakeInterrupt>,
    counters: Arc<NicCounters>,
    /// The host end: what the TAP's other side would see.
    host: UnixDatagram,
}

fn rig(name: &str) -> Rig {
    let (device_end, host) = UnixDatagram::pair().unwrap();
    device_end.set_nonblocking(true).unwrap();
    // Never block the test on a worker that stopped reading.
    host.set_nonblocking(true).unwrap();
    let mut net = VirtioNet::new(name, Arc::new(device_end), MAC, "vm-test-0");
    let counters = net.counters();
    let mem = crate::engine::memory::test_ram(0, MEM_SIZE as u64);
    let (rx, rx_queue, rx_notify) = Ring::new(&mem, RX_RING);
    let (tx, tx_queue, tx_notify) = Ring::new(&mem, TX_RING);
    let interrupt = Arc::new(FakeInterrupt::default());
    net.activate(
        mem.clone(),
        interrupt.clone(),
        vec![
            ActiveQueue {
                index: 0,
                queue: rx_queue,
                notify: rx_notify,
            },
            ActiveQueue {
                index: 1,
                queue: tx_queue,
                notify: tx_notify,
            },
        ],
    )
    .unwrap();
    Rig {
        mem,
        net,
        rx,
        tx,
        interrupt,
        counters,
        host,
    }
}

/// A frame: broadcast destination, our MAC as source, EtherType 0x88b5 (local
/// experimental), then `payload_len` bytes of `fill`.
fn frame(fill: u8, payload_len: usize) -> Vec<u8> {
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&MAC);
    frame.extend_from_slice(&[0x88, 0xb5]);
    frame.extend(std::iter::repeat_n(fill, payload_len));
    frame
}

/// `frame` behind a virtio-net header whose fields are all set (what must not pass).
fn with_dirty_header(frame: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0xff; VNET_HDR_LEN];
    bytes.extend_from_slice(frame);
    bytes
}

impl Rig {
    /// Posts receive buffer `n` (2 KiB at RX_BUFFERS + n * 2 KiB).
    fn post_rx(&mut self, n: u64) {
        self.rx
            .add(&self.mem, &[(RX_BUFFERS + n * 0x800, 0x800, WRITE)]);
    }

    /// The guest sends `bytes` (header included) from one descriptor.
    fn send(&mut self, bytes: &[u8]) {
        self.mem
            .write_slice(bytes, GuestAddress(TX_BUFFERS))
            .unwrap();
        self.tx
            .add(&self.mem, &[(TX_BUFFERS, bytes.len() as u32, 0)]);
    }

    /// The next frame the host side got, waiting up to 200 ms.
    fn host_receive(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 70_000];
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            if let Ok(len) = self.host.recv(&mut buf) {
                buf.truncate(len);
                return Some(buf);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn rx_buffer(&self, n: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        self.mem
            .read_slice(&mut bytes, GuestAddress(RX_BUFFERS + n * 0x800))
            .unwrap();
        bytes
    }

    /// CPU time the worker thread has used, nanoseconds.
    fn worker_cpu_ns(&self, name: &str) -> u64 {
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim_end() == name {
                let schedstat = std::fs::read_to_string(dir.join("schedstat")).unwrap();
                return schedstat
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
            }
        }
        panic!("no worker thread named {name}");
    }
}

const CLEAN_HEADER: [u8; VNET_HDR_LEN] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

#[test]
fn the_configuration_space_holds_the_mac_and_link_up() {
    let net = VirtioNet::new(
        "net-cfg",
        Arc::new(UnixDatagram::pair().unwrap().0),
        MAC,
        "t",
    );
    let mut config = [0xaau8; 12];

    net.read_config(0, &mut config);

    assert_eq!(&config[..6], &MAC);
    assert_eq!(u16::from_le_bytes([config[6], config[7]]), 1, "link up");
    assert_eq!(&config[10..], &[0, 0], "past the end reads as zero");
}

#[test]
fn the_device_offers_mac_and_status_and_nothing_that_needs_offloads() {
    let net = VirtioNet::new(
        "net-feat",
        Arc::new(UnixDatagram::pair().unwrap().0),
        MAC,
        "t",
    );

    assert_eq!(
        net.features(),
        (1 << VIRTIO_NET_F_MAC) | (1 << VIRTIO_NET_F_STATUS)
    );
    assert_eq!(net.queue_max_sizes(), &[256, 256]);
}

#[test]
fn a_guest_frame_reaches_the_host_behind_a_clean_header() {
    let mut rig = rig("net-tx");
    let sent = frame(0x5a, 100);

    rig.send(&with_dirty_header(&sent));
    let (head, len) = rig.tx.wait_used(&rig.mem);

    let got = rig.host_receive().expect("a frame on the host side");
    assert_eq!(&got[..VNET_HDR_LEN], &CLEAN_HEADER);
    assert_eq!(&got[VNET_HDR_LEN..], &sent[..]);
    assert_eq!((head, len), (0, 0));
    let stats = rig.counters.snapshot();
    assert_eq!((stats.tx_packets, stats.tx_bytes), (1, sent.len() as u64));
    assert!(rig.interrupt.queues.lock().unwrap().contains(&1));
}

#[test]
fn a_driver_that_sets_no_interrupt_gets_no_transmit_interrupt() {
    let mut rig = rig("net-noint");
    rig.mem.write_obj(1u16, GuestAddress(rig.tx.avail)).unwrap();

    rig.send(&with_dirty_header(&frame(3, 60)));
    rig.tx.wait_used(&rig.mem);
    rig.host_receive().expect("the frame went out");
    // The interrupt, if any, follows the used entry: give the worker time to send it.
    std::thread::sleep(Duration::from_millis(50));

    assert!(!rig.interrupt.queues.lock().unwrap().contains(&1));
}

#[test]
fn a_host_frame_lands_in_a_receive_buffer_and_interrupts() {
    let mut rig = rig("net-rx");
    rig.post_rx(0);
    let sent = frame(0x33, 200);

    rig.host.send(&with_dirty_header(&sent)).unwrap();
    let (head, len) = rig.rx.wait_used(&rig.mem);

    assert_eq!((head, len as usize), (0, VNET_HDR_LEN + sent.len()));
    let got = rig.rx_buffer(0, len as usize);
    assert_eq!(&got[..VNET_HDR_LEN], &CLEAN_HEADER);
    assert_eq!(&got[VNET_HDR_LEN..], &sent[..]);
    let stats = rig.counters.snapshot();
    assert_eq!((stats.rx_packets, stats.rx_bytes), (1, sent.len() as u64));
    let deadline = Instant::now() + TIMEOUT;
    while !rig.interrupt.queues.lock().unwrap().contains(&0) {
        assert!(Instant::now() < deadline, "no receive interrupt");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn frames_wait_without_spinning_until_the_guest_posts_buffers() {
    let name = "net-starve";
    let mut rig = rig(name);
    let mut queued = 0u8;
    for n in 0..4u8 {
        if rig.host.send(&with_dirty_header(&frame(n, 60))).is_ok() {
            queued += 1;
        }
    }
    assert_eq!(queued, 4);

    // No receive buffers: the worker must sleep, not poll.
    std::thread::sleep(Duration::from_millis(50));
    let before = rig.worker_cpu_ns(name);
    std::thread::sleep(Duration::from_millis(300));
    let idle_ns = rig.worker_cpu_ns(name) - before;
    for n in 0..4 {
        rig.post_rx(n);
    }
    let mut fills = Vec::new();
    for n in 0..4 {
        let (_, len) = rig.rx.wait_used(&rig.mem);
        fills.push(rig.rx_buffer(n, len as usize)[VNET_HDR_LEN + 14]);
    }

    assert!(
        idle_ns < 20_000_000,
        "worker used {idle_ns} ns while starved"
    );
    assert_eq!(fills, [0, 1, 2, 3], "every frame arrived, in order");
    assert_eq!(rig.counters.snapshot().rx_dropped, 0);
}

#[test]
fn a_transmit_chain_with_a_writable_buffer_is_dropped_and_counted() {
    let mut rig = rig("net-badtx");
    rig.mem
        .write_slice(&with_dirty_header(&frame(1, 60)), GuestAddress(TX_BUFFERS))
        .unwrap();

    rig.tx.add(&rig.mem, &[(TX_BUFFERS, 86, WRITE)]);
    rig.tx.wait_used(&rig.mem);
    rig.send(&with_dirty_header(&frame(2, 60)));
    rig.tx.wait_used(&rig.mem);

    let first = rig.host_receive().expect("the good frame");
    assert_eq!(
        first[VNET_HDR_LEN + 14],
        2,
        "only the good frame got through"
    );
    assert!(rig.host_receive().is_none());
    let stats = rig.counters.snapshot();
    assert_eq!((stats.tx_packets, stats.tx_dropped), (1, 1));
    assert!(!rig.interrupt.needs_reset.load(Ordering::SeqCst));
}

#[test]
fn a_runt_transmit_frame_is_dropped_and_counted() {
    let mut rig = rig("net-runt");

    rig.send(&[0u8; VNET_HDR_LEN + 5]);
    let (_, len) = rig.tx.wait_used(&rig.mem);

    assert_eq!(len, 0);
    assert!(rig.host_receive().is_none());
    assert_eq!(rig.counters.snapshot().tx_dropped, 1);
}

#[test]
fn a_receive_buffer_too_small_costs_the_frame_not_the_buffer_chain() {
    let mut rig = rig("net-small");
    rig.rx.add(&rig.mem, &[(RX_BUFFERS, 40, WRITE)]);
    rig.post_rx(1);

    rig.host.send(&with_dirty_header(&frame(9, 500))).unwrap();
    rig.host.send(&with_dirty_header(&frame(8, 20))).unwrap();
    let (_, small_len) = rig.rx.wait_used(&rig.mem);
    let (_, good_len) = rig.rx.wait_used(&rig.mem);

    assert_eq!(small_len, 0, "the too-small buffer comes back empty");
    assert_eq!(good_len as usize, VNET_HDR_LEN + 34);
    assert_eq!(rig.rx_buffer(1, good_len as usize)[VNET_HDR_LEN + 14], 8);
    let stats = rig.counters.snapshot();
    assert_eq!((stats.rx_packets, stats.rx_dropped), (1, 1));
}

#[test]
fn an_available_index_far_ahead_asks_for_a_reset() {
    let rig = rig("net-ahead");

    rig.mem
        .write_obj(100u16, GuestAddress(rig.tx.avail + 2))
        .unwrap();
    rig.tx.notify.write(1).unwrap();

    let deadline = Instant::now() + TIMEOUT;
    while !rig.interrupt.needs_reset.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "no reset requested");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(rig.tx.used_idx(&rig.mem), 0, "nothing was consumed");
}

#[test]
fn a_reset_stops_the_worker_and_nothing_is_read_after_it() {
    let mut rig = rig("net-reset");

    rig.net.reset();
    rig.post_rx(0);
    rig.host.send(&with_dirty_header(&frame(1, 60))).unwrap();
    std::thread::sleep(Duration::from_millis(100));

    assert_eq!(rig.rx.used_idx(&rig.mem), 0);
    assert_eq!(rig.counters.snapshot().rx_packets, 0);
}

/// xorshift64: a deterministic stream of guest "ring traffic".
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_chains_and_frames_never_panic_or_hang_the_worker() {
    let name = "net-noise";
    let mut rig = rig(name);
    let mut noise = Noise(0x2545_f491_4f6c_dd1d);

    for _ in 0..2_000 {
        let roll = noise.next();
        let addr = noise.next() % (MEM_SIZE as u64 + 0x1000);
        let len = (noise.next() % 0x3000) as u32;
        let flags = (noise.next() % 8) as u16;
        match roll % 5 {
            0 => {
                rig.rx.add(&rig.mem, &[(addr, len, flags)]);
            }
            1 => {
                rig.tx.add(&rig.mem, &[(addr, len, flags)]);
            }
            2 => {
                let size = (noise.next() % 1600) as usize;
                let _ = rig.host.send(&vec![(roll >> 8) as u8; size]);
            }
            3 => {
                // Scribble over the rings.
                let at = GuestAddress(RX_RING + noise.next() % 0x3000);
                rig.mem.write_obj(noise.next() as u16, at).unwrap();
                rig.rx.notify.write(1).unwrap();
            }
            _ => {
                let _ = rig.host.recv(&mut [0u8; 2048]);
            }
        }
    }

    // Whatever the noise left, the worker still stops promptly on reset.
    let started = Instant::now();
    rig.net.reset();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        !std::fs::read_dir("/proc/self/task").unwrap().any(|t| {
            std::fs::read_to_string(t.unwrap().path().join("comm"))
                .is_ok_and(|c| c.trim_end() == name)
        }),
        "the worker thread is gone"
    );
}
