//! vmux: virt-manager in a terminal, over its own KVM engine.
//!
//! Module walls (see ARCHITECTURE.md): `engine` is the VMM and the only place with `unsafe`;
//! `vmd` is the per-VM process around it; `client` is how the CLI and TUI reach vmd; `config`
//! holds definitions; `cli` and `tui` are the two faces; `progress` is the progress/cancel
//! handle every long operation reports through; `protocol` is the wire format between vmd and its
//! clients (the engine knows nothing of it); `remote` serves the host API to other machines
//! (`vmux agent --stdio`) and reaches theirs over SSH.

pub mod engine;

#[forbid(unsafe_code)]
pub mod assets;

#[forbid(unsafe_code)]
pub mod bootimg;
#[forbid(unsafe_code)]
pub mod cli;
#[forbid(unsafe_code)]
pub mod client;
#[forbid(unsafe_code)]
pub mod cloudinit;
#[forbid(unsafe_code)]
pub mod config;
#[cfg(feature = "fuzz")]
#[doc(hidden)]
#[forbid(unsafe_code)]
pub mod fuzz;
#[forbid(unsafe_code)]
pub mod network;
#[forbid(unsafe_code)]
pub mod progress;
#[forbid(unsafe_code)]
pub mod protocol;
#[forbid(unsafe_code)]
pub mod remote;
#[forbid(unsafe_code)]
pub mod storage;
#[forbid(unsafe_code)]
pub mod tui;
#[forbid(unsafe_code)]
pub mod vmd;

/// The test suite's one rule for missing prerequisites (skip outside CI, fail under CI), the
/// same file the integration tests use, for unit tests that run a host tool.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../tests/common/prereq.rs"]
pub(crate) mod prereq;
