//! Helpers shared by the integration tests, one module for all of them (each test binary
//! compiles it with `mod common;` and uses what it needs):
//!
//! * [`prereq`]: the one rule for missing prerequisites (skip outside CI, fail under CI);
//! * [`binary`]: running the real `vmux` binary with `VMUX_HOME` in a temp directory;
//! * [`crash`]: varied kill timing and the count of kills that landed, for the crash tests;
//! * [`netns`]: a network namespace with its own `VMUX_HOME` for real networks and VMs;
//! * [`sshd`]: a test sshd on loopback whose logins run this build's `vmux agent --stdio`;
//! * [`storage`]: qemu-img/qemu-io runners and a temporary vmux home with pools and VMs;
//! * [`tmux`]: a private tmux server for the end-to-end TUI tests;
//! * [`tui`]: a headless TUI harness over the fakes, with fixtures and rendering helpers.

#![allow(dead_code)]

pub mod binary;
pub mod crash;
pub mod netns;
pub mod prereq;
pub mod sshd;
pub mod storage;
pub mod tmux;
pub mod tui;
