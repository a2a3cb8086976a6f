//! Fuzz entry point for one NIC's queues: the input is the queue sizes, frames the host side
//! sends, then guest RAM holding both queues' descriptor tables, rings and buffers; the NIC's
//! real worker makes one pass (a transmit batch through [`super::frame::read_chain`], a
//! receive batch through [`super::frame::write_chain`]) over a socket pair standing in for
//! the TAP.

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::NicCounters;
use super::frame::FRAME_BUFFER_LEN;
use super::worker::{Worker, WorkerQueue};
use crate::engine::fuzz::support::{Input, Quiet, eventfd, guest_ram, queue_at, queue_size};

/// Byte 0 and 1 pick the receive and transmit queue sizes, byte 2 bit 0 EVENT_IDX, byte 3
/// how many host frames follow (0-3), each a 16-bit length (mod 2048) and its bytes; the
/// rest is guest RAM from address 0: the receive queue's table and rings, then the transmit
/// queue's.
pub fn pass(data: &[u8]) {
    let mut input = Input::new(data);
    let rx_size = queue_size(input.byte());
    let tx_size = queue_size(input.byte());
    let event_idx = input.byte() & 1 != 0;
    let frames = input.byte() % 4;
    let Ok((host, device)) = UnixDatagram::pair() else {
        return;
    };
    if host.set_nonblocking(true).is_err() || device.set_nonblocking(true).is_err() {
        return;
    }
    for _ in 0..frames {
        let len = usize::from(input.u16() % 2048);
        let _ = host.send(input.take(len));
    }
    let Some(mem) = guest_ram(input.rest()) else {
        return;
    };
    let Some((rx, rx_end)) = queue_at(&mem, 0, rx_size, event_idx) else {
        return;
    };
    let Some((tx, _)) = queue_at(&mem, rx_end, tx_size, event_idx) else {
        return;
    };
    let (Some(rx_notify), Some(tx_notify), Some(stop)) = (eventfd(), eventfd(), eventfd()) else {
        return;
    };
    let Ok(mut worker) = Worker::new(
        mem,
        WorkerQueue {
            queue: rx,
            notify: rx_notify,
        },
        WorkerQueue {
            queue: tx,
            notify: tx_notify,
        },
        stop,
        Arc::new(AtomicBool::new(false)),
        Arc::new(Quiet),
        Arc::new(device),
        Arc::new(NicCounters::new("fuzz", [0x52, 0x54, 0, 0, 0, 1])),
    ) else {
        return;
    };
    worker.pass();
    worker.pass();
    // What the guest transmitted reached the host side whole or not at all.
    let mut frame = vec![0u8; FRAME_BUFFER_LEN];
    while host.recv(&mut frame).is_ok() {}
}
