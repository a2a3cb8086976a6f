//! Entry points for the coverage-guided fuzz harnesses in `fuzz/` and for the corpus replay
//! test (`tests/fuzz_corpus.rs`). Each takes arbitrary bytes, lays them out the way a hostile
//! guest could (guest RAM, rings, register accesses), and runs the real device code on them;
//! only the edges are doubles: an in-memory disk, a socket pair in place of the TAP, and a VM
//! interface that records nothing instead of calling KVM. Not a stable API.

mod pci;
pub(crate) mod support;

pub use crate::engine::devices::virtio::blk::fuzz::serve_queue as virtio_blk;
pub use crate::engine::devices::virtio::net::fuzz::pass as virtio_net;
pub use pci::registers as pci;
pub use support::Input;
