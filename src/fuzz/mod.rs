//! Entry points for the coverage-guided fuzz harnesses in `fuzz/` (one libFuzzer target per
//! entry of [`TARGETS`]) and for the corpus replay test (`tests/fuzz_corpus.rs`). Each takes
//! arbitrary bytes and runs the real parser or device on them; the only doubles are at the
//! edges (an in-memory disk, a sparse in-memory boot disk, a socket pair for a TAP, no KVM).
//! A target panics only where the code under test broke one of its promises (a crash, or a
//! property such as "a definition that loads saves and loads back the same"). Not a stable
//! API.

mod bootimg;
mod config;
mod console;
mod control;
mod storage;

pub use crate::engine::fuzz::Input;

/// A fuzz target: its name (the folder of its seed corpus, `fuzz/corpus/<name>/`) and its
/// entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `scripts/fuzz.sh` runs them.
pub const TARGETS: &[Target] = &[
    ("virtio_blk", crate::engine::fuzz::virtio_blk),
    ("virtio_net", crate::engine::fuzz::virtio_net),
    ("pci", crate::engine::fuzz::pci),
    ("control", control::lines),
    ("qcow2_header", storage::qcow2_header),
    ("qcow2_open", storage::qcow2_open),
    ("definitions", config::definitions),
    ("cloudinit", config::cloudinit),
    ("console", console::feed),
    ("bootimg", bootimg::inspect),
];

/// The entry point of the target called `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}
