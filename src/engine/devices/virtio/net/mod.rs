//! virtio-net (virtio 1.x §5.1): one NIC over a TAP, a receive queue and a transmit queue
//! served by a worker thread per NIC.
//!
//! - `device.rs`: [`VirtioNet`], the [`VirtioDevice`](super::VirtioDevice): features (`MAC`,
//!   `STATUS`), the configuration space (MAC, link up), starting and stopping the worker.
//! - `worker.rs`: the thread moving frames between the queues and the TAP.
//! - `frame.rs`: one frame between a descriptor chain and a flat buffer; the virtio-net header.
//! - `stats.rs`: per-NIC counters.
//!
//! No offloads, no mergeable receive buffers, no control queue, one queue pair: what a guest
//! needs to be on a network, and nothing whose correctness depends on host checksum or
//! segmentation paths.

mod device;
mod frame;
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub mod fuzz;
mod stats;
pub(crate) mod syscalls;
mod worker;

use std::os::fd::AsFd;

pub use device::VirtioNet;
#[cfg(test)]
use frame::VNET_HDR_LEN;
pub use stats::{NicCounters, NicStats};

/// The host side of a NIC: a non-blocking fd on which each read returns, and each write
/// takes, one Ethernet frame behind a [`VNET_HDR_LEN`]-byte virtio-net header. A TAP opened
/// with `IFF_VNET_HDR` (`engine::tap::TapDevice`); a datagram socket pair in tests.
pub trait FrameBackend: AsFd + Send + Sync {}

impl<T: AsFd + Send + Sync> FrameBackend for T {}

#[cfg(test)]
mod tests;
