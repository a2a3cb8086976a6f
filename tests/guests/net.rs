//! `net`: a network guest on the first virtio-net device. Brings it up over the modern
//! transport with MSI-X (receive queue 0 on vector 0x41, transmit queue 1 on 0x42, features
//! VERSION_1, MAC and STATUS), runs DHCP (DISCOVER, OFFER, REQUEST, ACK), prints
//! `net: lease <ip> gateway <gw>`, pings its gateway (`net: gateway <gw> replied`), then keeps
//! answering ARP and ICMP echo addressed to it, halting between receive interrupts (MSI-X;
//! the transmit queue is polled, with its interrupts suppressed).
//!
//! For benchmarks it also serves three UDP ports: a datagram to 5001 saying
//! `<count> <bytes>` makes it send `count` datagrams of `bytes` payload bytes back to the
//! sender as fast as the transmit queue allows; datagrams to 5002 are counted and dropped;
//! one to 5003 is answered with that count in decimal. For the anti-spoofing test a datagram
//! to 5004 makes it send, to the sender, one UDP datagram from its own MAC and address (port
//! 7001), one from a forged address (7002), one from a forged MAC (7003), and a gratuitous ARP
//! claiming the forged address. tests/guests/README.md lists the lines.

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

use core::fmt;
use kit::console::{Ascii, Dec};
use kit::pci::{Bdf, Config};
use kit::time::Deadline;
use kit::virtio::{self, DESC_F_WRITE, Device, QUEUE_SIZE, Queue};

const F_MAC: u64 = 1 << 5;
const F_STATUS: u64 = 1 << 16;
/// `struct virtio_net_hdr_v1`.
const HDR: usize = 12;
/// Bytes per buffer: header and the largest untagged frame, rounded up.
const BUF: usize = 2048;
const SLOTS: usize = QUEUE_SIZE as usize;

const ETH_ARP: u16 = 0x0806;
const ETH_IP: u16 = 0x0800;
const PROTO_ICMP: u8 = 1;
const PROTO_UDP: u8 = 17;
const DHCP_CLIENT: u16 = 68;
const DHCP_SERVER: u16 = 67;
const XID: u32 = 0x766d_7578;
const ECHO_ID: u16 = 0x766d;
const PORT_BURST: u16 = 5001;
const PORT_SINK: u16 = 5002;
const PORT_REPORT: u16 = 5003;
const PORT_SPOOF: u16 = 5004;
/// Destination ports of the spoof test's datagrams: own addresses, forged IP, forged MAC.
const SPOOF_PORTS: [u16; 3] = [7001, 7002, 7003];
const BROADCAST: [u8; 6] = [0xff; 6];

/// Receive buffers; the device writes them, the program reads them once returned.
#[repr(C, align(4096))]
struct RxBuffers([[u8; BUF]; SLOTS]);
/// Transmit buffers; the program writes them, the device reads them while in flight.
#[repr(C, align(4096))]
struct TxBuffers([[u8; BUF]; SLOTS]);

static mut RX: RxBuffers = RxBuffers([[0; BUF]; SLOTS]);
static mut TX: TxBuffers = TxBuffers([[0; BUF]; SLOTS]);

/// An IPv4 address printed dotted.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Ip([u8; 4]);

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(
            f,
            "{}.{}.{}.{}",
            Dec(a.into()),
            Dec(b.into()),
            Dec(c.into()),
            Dec(d.into())
        )
    }
}

/// A MAC address printed as `52:54:00:12:34:56`.
struct Mac([u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = b"0123456789abcdef";
        let mut text = [b':'; 17];
        for (chunk, byte) in text.chunks_mut(3).zip(self.0) {
            if let [hi, lo, ..] = chunk {
                *hi = digits[usize::from(byte >> 4)];
                *lo = digits[usize::from(byte & 0xf)];
            }
        }
        Ascii(&text).fmt(f)
    }
}

/// What a received frame told the main loop.
#[derive(Clone, Copy)]
enum Event {
    None,
    Offer(Lease),
    Ack(Lease),
    Nak,
    GatewayMac,
    EchoReply,
    /// Send `count` datagrams of `size` bytes to `to`.
    Burst {
        to: Peer,
        count: u64,
        size: usize,
    },
    /// Send the spoof test's frames to `to`.
    Spoof { to: Peer },
}

/// Where a reply goes.
#[derive(Clone, Copy)]
struct Peer {
    mac: [u8; 6],
    ip: [u8; 4],
    port: u16,
}

/// What DHCP offered or granted.
#[derive(Clone, Copy)]
struct Lease {
    ip: [u8; 4],
    server: [u8; 4],
    router: Option<[u8; 4]>,
}

struct Nic {
    rx: Queue,
    tx: Queue,
    mac: [u8; 6],
    ip: [u8; 4],
    gateway: [u8; 4],
    gateway_mac: Option<[u8; 6]>,
    tx_next: usize,
    tx_inflight: usize,
    sink_count: u64,
}

fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

fn put16(b: &mut [u8], at: usize, value: u16) {
    if let Some(slot) = b.get_mut(at..at + 2) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
}

fn put(b: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(slot) = b.get_mut(at..at + bytes.len()) {
        slot.copy_from_slice(bytes);
    }
}

fn four(b: &[u8], at: usize) -> [u8; 4] {
    match b.get(at..at + 4) {
        Some(&[a, b, c, d]) => [a, b, c, d],
        _ => [0; 4],
    }
}

fn six(b: &[u8], at: usize) -> [u8; 6] {
    let mut out = [0; 6];
    if let Some(src) = b.get(at..at + 6) {
        out.copy_from_slice(src);
    }
    out
}

/// The Internet checksum of `bytes`.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    let mut chunks = bytes.chunks_exact(2);
    for chunk in &mut chunks {
        if let &[hi, lo] = chunk {
            sum += u32::from(u16::from_be_bytes([hi, lo]));
        }
    }
    if let Some(&last) = chunks.remainder().first() {
        sum += u32::from(last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes an Ethernet and IPv4 header (no options) at the start of `frame` for a packet of
/// `payload` bytes after the IP header; returns where the payload starts.
fn ip_header(
    frame: &mut [u8],
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    payload: usize,
) -> usize {
    put(frame, 0, &dst_mac);
    put(frame, 6, &src_mac);
    put16(frame, 12, ETH_IP);
    let ip = 14;
    put(frame, ip, &[0x45, 0]);
    put16(frame, ip + 2, (20 + payload) as u16);
    put(frame, ip + 4, &[0, 0, 0x40, 0, 64, proto, 0, 0]);
    put(frame, ip + 12, &src);
    put(frame, ip + 16, &dst);
    let sum = frame.get(ip..ip + 20).map_or(0, checksum);
    put16(frame, ip + 10, sum);
    ip + 20
}

/// Writes a UDP header (checksum 0: none) after an IP header; returns where data starts.
fn udp_header(frame: &mut [u8], at: usize, src_port: u16, dst_port: u16, data: usize) -> usize {
    put16(frame, at, src_port);
    put16(frame, at + 2, dst_port);
    put16(frame, at + 4, (8 + data) as u16);
    put16(frame, at + 6, 0);
    at + 8
}

impl Nic {
    /// Queues every receive buffer.
    fn post_receive_buffers(&mut self) {
        let base = (&raw const RX) as u64;
        for slot in 0..SLOTS {
            self.rx.set_desc(
                slot as u16,
                base + (slot * BUF) as u64,
                BUF as u32,
                DESC_F_WRITE,
                0,
            );
            self.rx.publish(slot as u16);
        }
        self.rx.kick();
    }

    /// Takes back transmit buffers the device is done with.
    fn reclaim(&mut self) {
        while self.tx.take_used().is_some() {
            self.tx_inflight = self.tx_inflight.saturating_sub(1);
        }
    }

    /// Builds a frame with `build` (given the buffer after the header, returning the frame
    /// length) and sends it; waits up to 100 ms for a free buffer, else drops it.
    fn send(&mut self, build: impl FnOnce(&mut [u8]) -> usize) -> bool {
        self.reclaim();
        let deadline = Deadline::after_us(100_000);
        while self.tx_inflight >= SLOTS {
            if deadline.passed() {
                return false;
            }
            kit::cpu::pause();
            self.reclaim();
        }
        let slot = self.tx_next % SLOTS;
        // SAFETY: single-threaded; slot `slot` is not in flight (in-order completion), so the
        // device does not read it while the program writes it.
        let buffer = unsafe { &mut (*(&raw mut TX)).0 };
        let Some(buffer) = buffer.get_mut(slot) else {
            return false;
        };
        // Only the virtio-net header is cleared: every builder writes all of its frame's
        // fields, and clearing 2 KiB per frame is slow on an emulating CPU.
        if let Some(header) = buffer.get_mut(..HDR) {
            header.fill(0);
        }
        let Some(frame) = buffer.get_mut(HDR..) else {
            return false;
        };
        let len = build(frame).min(BUF - HDR);
        let addr = (&raw const TX) as u64 + (slot * BUF) as u64;
        self.tx
            .set_desc(slot as u16, addr, (HDR + len) as u32, 0, 0);
        self.tx.publish(slot as u16);
        self.tx.kick();
        self.tx_next = self.tx_next.wrapping_add(1);
        self.tx_inflight += 1;
        true
    }

    /// Handles every returned receive buffer and queues it again.
    fn poll(&mut self) -> Event {
        let mut event = Event::None;
        let mut returned = false;
        while let Some((head, len)) = self.rx.take_used() {
            let slot = head as usize;
            if slot >= SLOTS {
                continue;
            }
            let len = (len as usize).min(BUF);
            let base = (&raw const RX) as *const u8;
            // SAFETY: the device returned buffer `slot` and wrote `len` bytes of it; it does not
            // touch it again until the program publishes it below.
            let frame = unsafe { core::slice::from_raw_parts(base.add(slot * BUF), len) };
            if let Some(frame) = frame.get(HDR..) {
                match self.handle(frame) {
                    Event::None => {}
                    seen => event = seen,
                }
            }
            self.rx.publish(slot as u16);
            returned = true;
        }
        if returned {
            self.rx.kick();
        }
        event
    }

    fn handle(&mut self, frame: &[u8]) -> Event {
        let dst = six(frame, 0);
        if dst != self.mac && dst != BROADCAST {
            return Event::None;
        }
        match be16(frame, 12) {
            ETH_ARP => self.handle_arp(frame),
            ETH_IP => self.handle_ip(frame),
            _ => Event::None,
        }
    }

    fn handle_arp(&mut self, frame: &[u8]) -> Event {
        let op = be16(frame, 20);
        let sender_mac = six(frame, 22);
        let sender_ip = four(frame, 28);
        let target_ip = four(frame, 38);
        if frame.len() < 42 || self.ip == [0; 4] {
            return Event::None;
        }
        if op == 1 && target_ip == self.ip {
            let (mac, ip) = (self.mac, self.ip);
            self.send(|f| {
                put(f, 0, &sender_mac);
                put(f, 6, &mac);
                put16(f, 12, ETH_ARP);
                put(f, 14, &[0, 1, 8, 0, 6, 4, 0, 2]);
                put(f, 22, &mac);
                put(f, 28, &ip);
                put(f, 32, &sender_mac);
                put(f, 38, &sender_ip);
                put(f, 42, &[0; 18]);
                60
            });
        }
        if op == 2 && sender_ip == self.gateway {
            self.gateway_mac = Some(sender_mac);
            return Event::GatewayMac;
        }
        Event::None
    }

    fn handle_ip(&mut self, frame: &[u8]) -> Event {
        let ihl = usize::from(frame.get(14).map_or(0, |v| v & 0xf)) * 4;
        let total = usize::from(be16(frame, 16));
        if ihl < 20 || total < ihl || frame.len() < 14 + total {
            return Event::None;
        }
        let proto = frame.get(23).copied().unwrap_or(0);
        let src = four(frame, 26);
        let dst = four(frame, 30);
        let Some(payload) = frame.get(14 + ihl..14 + total) else {
            return Event::None;
        };
        let from = Peer {
            mac: six(frame, 6),
            ip: src,
            port: be16(payload, 0),
        };
        match proto {
            PROTO_ICMP if dst == self.ip => self.handle_icmp(from, payload),
            PROTO_UDP => self.handle_udp(from, dst, payload),
            _ => Event::None,
        }
    }

    fn handle_icmp(&mut self, from: Peer, icmp: &[u8]) -> Event {
        match icmp.first() {
            Some(8) if icmp.len() <= BUF - HDR - 34 => {
                let (mac, ip) = (self.mac, self.ip);
                self.send(|f| {
                    let at = ip_header(f, from.mac, mac, PROTO_ICMP, ip, from.ip, icmp.len());
                    put(f, at, icmp);
                    put(f, at, &[0, 0, 0, 0]);
                    let sum = f.get(at..at + icmp.len()).map_or(0, checksum);
                    put16(f, at + 2, sum);
                    at + icmp.len()
                });
                Event::None
            }
            Some(0) if be16(icmp, 4) == ECHO_ID && from.ip == self.gateway => Event::EchoReply,
            _ => Event::None,
        }
    }

    fn handle_udp(&mut self, from: Peer, dst: [u8; 4], udp: &[u8]) -> Event {
        let port = be16(udp, 2);
        let data = udp.get(8..).unwrap_or(&[]);
        if port == DHCP_CLIENT {
            return self.handle_dhcp(data);
        }
        if dst != self.ip {
            return Event::None;
        }
        match port {
            PORT_BURST => {
                let mut words = data.split(|b| *b == b' ' || *b == b'\n');
                let count = words.next().and_then(kit::boot::parse_u64).unwrap_or(0);
                let size = words.next().and_then(kit::boot::parse_u64).unwrap_or(18);
                Event::Burst {
                    to: from,
                    count,
                    size: (size as usize).clamp(18, 1472),
                }
            }
            PORT_SINK => {
                self.sink_count += 1;
                Event::None
            }
            PORT_SPOOF => Event::Spoof { to: from },
            PORT_REPORT => {
                let count = self.sink_count;
                let (mac, ip) = (self.mac, self.ip);
                self.send(|f| {
                    let mut digits = [0u8; 20];
                    let text = kit::console::dec_digits(count, &mut digits);
                    let at = ip_header(f, from.mac, mac, PROTO_UDP, ip, from.ip, 8 + text.len());
                    let at = udp_header(f, at, PORT_REPORT, from.port, text.len());
                    put(f, at, text);
                    at + text.len()
                });
                Event::None
            }
            _ => Event::None,
        }
    }

    fn handle_dhcp(&mut self, bootp: &[u8]) -> Event {
        let mine = bootp.first() == Some(&2)
            && four(bootp, 4) == XID.to_be_bytes()
            && six(bootp, 28) == self.mac
            && four(bootp, 236) == [99, 130, 83, 99];
        if !mine {
            return Event::None;
        }
        let mut lease = Lease {
            ip: four(bootp, 16),
            server: [0; 4],
            router: None,
        };
        let mut kind = 0;
        let mut options = bootp.get(240..).unwrap_or(&[]);
        while let Some((&code, rest)) = options.split_first() {
            if code == 255 {
                break;
            }
            if code == 0 {
                options = rest;
                continue;
            }
            let Some((&len, rest)) = rest.split_first() else {
                break;
            };
            let Some((value, rest)) = rest.split_at_checked(usize::from(len)) else {
                break;
            };
            match code {
                53 => kind = value.first().copied().unwrap_or(0),
                54 => lease.server = four(value, 0),
                3 if value.len() >= 4 => lease.router = Some(four(value, 0)),
                _ => {}
            }
            options = rest;
        }
        match kind {
            2 => Event::Offer(lease),
            5 => Event::Ack(lease),
            6 => Event::Nak,
            _ => Event::None,
        }
    }

    /// Broadcasts a DHCP DISCOVER (`request` None) or REQUEST for the offered lease.
    fn send_dhcp(&mut self, request: Option<Lease>) {
        let mac = self.mac;
        self.send(|f| {
            let bootp_len = 300;
            let at = ip_header(f, BROADCAST, mac, PROTO_UDP, [0; 4], [255; 4], 8 + bootp_len);
            let b = udp_header(f, at, DHCP_CLIENT, DHCP_SERVER, bootp_len);
            if let Some(bootp) = f.get_mut(b..b + bootp_len) {
                bootp.fill(0);
            }
            put(f, b, &[1, 1, 6, 0]);
            put(f, b + 4, &XID.to_be_bytes());
            put16(f, b + 10, 0x8000);
            put(f, b + 28, &mac);
            put(f, b + 236, &[99, 130, 83, 99]);
            let mut o = b + 240;
            match request {
                None => put(f, o, &[53, 1, 1]),
                Some(lease) => {
                    put(f, o, &[53, 1, 3, 50, 4]);
                    put(f, o + 5, &lease.ip);
                    put(f, o + 9, &[54, 4]);
                    put(f, o + 11, &lease.server);
                    o += 12;
                }
            }
            put(f, o + 3, &[55, 3, 1, 3, 6, 255]);
            b + bootp_len
        });
    }

    fn send_arp_request(&mut self, target: [u8; 4]) {
        let (mac, ip) = (self.mac, self.ip);
        self.send(|f| {
            put(f, 0, &BROADCAST);
            put(f, 6, &mac);
            put16(f, 12, ETH_ARP);
            put(f, 14, &[0, 1, 8, 0, 6, 4, 0, 1]);
            put(f, 22, &mac);
            put(f, 28, &ip);
            put(f, 32, &[0; 6]);
            put(f, 38, &target);
            put(f, 42, &[0; 18]);
            60
        });
    }

    fn send_echo(&mut self, to_mac: [u8; 6], to: [u8; 4], seq: u16) {
        let (mac, ip) = (self.mac, self.ip);
        self.send(|f| {
            let data = b"vmux guest kit ping";
            let len = 8 + data.len();
            let at = ip_header(f, to_mac, mac, PROTO_ICMP, ip, to, len);
            put(f, at, &[8, 0, 0, 0]);
            put16(f, at + 4, ECHO_ID);
            put16(f, at + 6, seq);
            put(f, at + 8, data);
            let sum = f.get(at..at + len).map_or(0, checksum);
            put16(f, at + 2, sum);
            at + len
        });
    }

    /// Polls for up to `us` microseconds for an event `want` accepts.
    fn wait_for(&mut self, us: u64, want: impl Fn(&Event) -> bool) -> Option<Event> {
        let deadline = Deadline::after_us(us);
        while !deadline.passed() {
            let event = self.poll();
            if want(&event) {
                return Some(event);
            }
            kit::cpu::pause();
        }
        None
    }

    /// DISCOVER → OFFER → REQUEST → ACK, with retries.
    fn dhcp(&mut self) -> Option<Lease> {
        for _ in 0..10 {
            self.send_dhcp(None);
            let Some(Event::Offer(offer)) =
                self.wait_for(2_000_000, |e| matches!(e, Event::Offer(_)))
            else {
                continue;
            };
            for _ in 0..3 {
                self.send_dhcp(Some(offer));
                match self.wait_for(2_000_000, |e| matches!(e, Event::Ack(_) | Event::Nak)) {
                    Some(Event::Ack(lease)) => return Some(lease),
                    Some(_) => break,
                    None => {}
                }
            }
        }
        None
    }

    /// ARP for the gateway, then ping it; whether it answered.
    fn ping_gateway(&mut self) -> bool {
        for _ in 0..5 {
            if self.gateway_mac.is_some() {
                break;
            }
            let gateway = self.gateway;
            self.send_arp_request(gateway);
            self.wait_for(1_000_000, |e| matches!(e, Event::GatewayMac));
        }
        let Some(gateway_mac) = self.gateway_mac else {
            return false;
        };
        for seq in 1..=5 {
            self.send_echo(gateway_mac, self.gateway, seq);
            if self
                .wait_for(1_000_000, |e| matches!(e, Event::EchoReply))
                .is_some()
            {
                return true;
            }
        }
        false
    }

    /// The spoof test: a datagram from the guest's own MAC and address, one from a forged
    /// address (the last octet flipped), one from a forged MAC (the last byte flipped), and a
    /// gratuitous ARP announcing the forged address; prints what it forged.
    fn spoof(&mut self, to: Peer) {
        let mut forged_ip = self.ip;
        if let Some(last) = forged_ip.last_mut() {
            *last ^= 0x80;
        }
        let mut forged_mac = self.mac;
        if let Some(last) = forged_mac.last_mut() {
            *last ^= 0x55;
        }
        let sources = [
            (self.mac, self.ip),
            (self.mac, forged_ip),
            (forged_mac, self.ip),
        ];
        for ((mac, ip), port) in sources.into_iter().zip(SPOOF_PORTS) {
            self.send(|f| {
                let data = b"vmux spoof test";
                let at = ip_header(f, to.mac, mac, PROTO_UDP, ip, to.ip, 8 + data.len());
                let at = udp_header(f, at, port, port, data.len());
                put(f, at, data);
                at + data.len()
            });
        }
        let own_mac = self.mac;
        self.send(|f| {
            put(f, 0, &BROADCAST);
            put(f, 6, &own_mac);
            put16(f, 12, ETH_ARP);
            put(f, 14, &[0, 1, 8, 0, 6, 4, 0, 1]);
            put(f, 22, &own_mac);
            put(f, 28, &forged_ip);
            put(f, 32, &[0; 6]);
            put(f, 38, &forged_ip);
            put(f, 42, &[0; 18]);
            60
        });
        println!(
            "net: spoof test sent: forged ip {} forged mac {}",
            Ip(forged_ip),
            Mac(forged_mac)
        );
    }

    /// Sends `count` UDP datagrams of `size` bytes to `to`, as fast as buffers free up.
    fn burst(&mut self, to: Peer, count: u64, size: usize) {
        let (mac, ip) = (self.mac, self.ip);
        let mut sent = 0;
        for n in 0..count {
            let ok = self.send(|f| {
                let at = ip_header(f, to.mac, mac, PROTO_UDP, ip, to.ip, 8 + size);
                let at = udp_header(f, at, PORT_BURST, to.port, size);
                put(f, at, &n.to_be_bytes());
                at + size
            });
            if ok {
                sent += 1;
            }
        }
        println!(
            "net: burst of {} datagrams of {} bytes sent",
            Dec(sent),
            Dec(size as u64)
        );
    }
}

fn guest_main(_boot: &kit::boot::BootInfo) -> ! {
    kit::apic::init_interrupts();
    kit::time::calibrate();
    let config = Config::Ports;
    let Some(slot) = (0..32u8).find(|&slot| {
        config.ids(slot) == Some((virtio::VENDOR_ID, virtio::DEVICE_ID_NET))
    }) else {
        println!("net: no virtio-net device");
        kit::power::debug_exit(kit::power::EXIT_FAILURE)
    };
    let mut nic = match bring_up(config, slot) {
        Ok(nic) => nic,
        Err(why) => {
            println!("net: {} FAILED: {}", Bdf(slot), Ascii(why.as_bytes()));
            kit::power::debug_exit(kit::power::EXIT_FAILURE)
        }
    };
    nic.post_receive_buffers();
    let Some(lease) = nic.dhcp() else {
        println!("net: no DHCP lease");
        kit::power::debug_exit(kit::power::EXIT_FAILURE)
    };
    nic.ip = lease.ip;
    nic.gateway = lease.router.unwrap_or(lease.server);
    println!("net: lease {} gateway {}", Ip(nic.ip), Ip(nic.gateway));
    if nic.ping_gateway() {
        println!("net: gateway {} replied", Ip(nic.gateway));
    } else {
        println!("net: gateway {} did not reply", Ip(nic.gateway));
    }
    loop {
        match nic.poll() {
            Event::Burst { to, count, size } => nic.burst(to, count, size),
            Event::Spoof { to } => nic.spoof(to),
            _ => {}
        }
        nic.reclaim();
        kit::cpu::wait_for_interrupt();
    }
}

fn bring_up(config: Config, slot: u8) -> Result<Nic, &'static str> {
    let device = Device::probe(config, slot).map_err(virtio::Error::text)?;
    let mut rx = Queue::for_index(0);
    let mut tx = Queue::for_index(1);
    let offered = device
        .bring_up_queues(&mut [&mut rx, &mut tx], F_MAC | F_STATUS)
        .map_err(virtio::Error::text)?;
    // Transmitted buffers are reclaimed when the next frame goes out: no interrupts needed.
    tx.suppress_interrupts();
    if offered & F_MAC == 0 {
        return Err("the device has no MAC address (VIRTIO_NET_F_MAC)");
    }
    let mut mac = [0u8; 6];
    for (offset, byte) in mac.iter_mut().enumerate() {
        *byte = device.config_u8(offset as u64);
    }
    let link_up = offered & F_STATUS == 0 || device.config_u16(6) & 1 != 0;
    println!(
        "net: {} mac {} link {}",
        Bdf(slot),
        Mac(mac),
        Ascii(if link_up { b"up" } else { b"down" })
    );
    Ok(Nic {
        rx,
        tx,
        mac,
        ip: [0; 4],
        gateway: [0; 4],
        gateway_mac: None,
        tx_next: 0,
        tx_inflight: 0,
        sink_count: 0,
    })
}
