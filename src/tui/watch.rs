//! What the TUI waits for a guest to do after a live change (vCPUs onlined or ejected, a disk
//! ejected), and for how long. `hotplug` starts and ends the watches; `App` holds them.

use super::hosts::id::HostId;

/// Seconds the TUI waits for the guest to act on a live change before saying it has not.
pub const WATCH_TICKS: u64 = 15;

/// What the guest is expected to do after a live change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Have this many vCPUs online (it onlines added ones, ejects removed ones).
    Vcpus {
        /// The count before the change.
        from: u32,
        /// The count wanted.
        count: u32,
    },
    /// Eject this disk.
    DiskGone(String),
}

/// A live change the TUI is waiting to see the guest complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The VM's host.
    pub host: HostId,
    /// The VM.
    pub vm: String,
    /// What the guest should do.
    pub expect: Expect,
    /// Tick after which the TUI stops waiting.
    pub until: u64,
}
