//! virtio-blk (virtio 1.x §5.2): one request queue served by a worker thread per disk.
//!
//! - `device.rs`: [`VirtioBlk`], the [`VirtioDevice`](super::VirtioDevice): features, the
//!   configuration space, starting and stopping the worker.
//! - `worker.rs`: the thread draining the queue.
//! - `request.rs`: one request, from descriptor chain to status byte.
//! - `backend.rs`: [`DiskBackend`] and the raw-file implementation.
//! - `stats.rs`: per-disk counters.

mod backend;
mod device;
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub mod fuzz;
mod request;
mod stats;
pub(crate) mod syscalls;
mod worker;

pub use backend::{BackendError, DiskBackend, RawFile};
pub use device::VirtioBlk;
pub use stats::{DiskCounters, DiskStats};

#[cfg(test)]
mod tests;
