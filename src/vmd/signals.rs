//! Termination signals: `SIGTERM` and `SIGINT` end the VM like `destroy` (so `kill <vmd>` and
//! a service manager's stop leave a clean `shut off`, not `crashed`); `SIGHUP` is ignored (vmd
//! has no terminal).
//!
//! The signals are blocked in the main thread before any other thread exists, so every thread
//! inherits the mask and one dedicated thread receives them with `sigwait`.

use std::io;
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};

use syscalls::Sysno;

use super::supervisor::Supervisor;
use crate::engine::confine::syscalls::SyscallList;
use crate::engine::confine::{self, ThreadKind};

/// What the `signals` thread may call: wait for the signals, and kick the vCPUs on destroy.
pub const SYSCALLS: SyscallList = SyscallList::calls(&[Sysno::rt_sigtimedwait, Sysno::tgkill]);

/// Blocks the termination signals in the calling thread (and every thread it starts later).
pub fn block() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(signal);
    }
    if let Err(e) = set.thread_block() {
        log::warn!("cannot block termination signals: {e}");
    }
    set
}

/// Starts the thread that turns `SIGTERM`/`SIGINT` into a destroy.
pub fn spawn_handler(set: SigSet, sup: Arc<Supervisor>) -> io::Result<()> {
    confine::spawn(ThreadKind::Signals, "signals".into(), move || {
        loop {
            match set.wait() {
                Ok(Signal::SIGHUP) => {}
                Ok(signal) => {
                    log::info!("{signal}: destroying the VM");
                    sup.destroy();
                }
                Err(e) => {
                    log::warn!("sigwait failed: {e}");
                    return;
                }
            }
        }
    })
    .map(drop)
}
