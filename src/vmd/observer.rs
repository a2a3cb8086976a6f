//! The `observer` thread: the engine tells vmd about the guest's hotplug answers (a vCPU
//! onlined or ejected, a disk ejected) on the vCPU thread that handled them. Recording them
//! writes `state.json` and may close a disk image, which a vCPU thread's filter does not allow
//! (and which should not stall a vCPU), so the facts are queued here and applied on this thread.

use std::io;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use syscalls::Sysno;

use super::supervisor::Supervisor;
use crate::engine::VmObserver;
use crate::engine::confine::syscalls::SyscallList;
use crate::engine::confine::{self, ThreadKind};

/// What the observer may call: rewrite `state.json`, and (with `IMAGE_IO`) flush and close an
/// ejected image.
pub const SYSCALLS: SyscallList =
    SyscallList::calls(&[Sysno::openat, Sysno::rename, Sysno::unlink, Sysno::flock]);

/// A hotplug fact from the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fact {
    Vcpus(u32),
    DiskRemoved(u8),
}

/// The engine's observer of one boot: queues each fact for the observer thread.
pub struct QueuedObserver(Mutex<Sender<Fact>>);

impl QueuedObserver {
    fn send(&self, fact: Fact) {
        let queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.send(fact).is_err() {
            log::warn!("hotplug fact {fact:?} lost: the observer thread has stopped");
        }
    }
}

impl VmObserver for QueuedObserver {
    fn vcpus_changed(&self, online: u32) {
        self.send(Fact::Vcpus(online));
    }

    fn disk_removed(&self, slot: u8) {
        self.send(Fact::DiskRemoved(slot));
    }
}

/// The observer thread's queue; one per vmd.
pub struct Observer {
    queue: Mutex<Sender<Fact>>,
}

impl Observer {
    /// Starts the thread applying facts to `sup` (weakly held: the thread ends with vmd's
    /// supervisor, once every observer handed out is gone too).
    pub fn start(sup: Weak<Supervisor>) -> io::Result<Observer> {
        let (queue, facts) = mpsc::channel();
        confine::spawn(ThreadKind::Observer, "observer".into(), move || {
            while let Ok(fact) = facts.recv() {
                let Some(sup) = sup.upgrade() else {
                    return;
                };
                match fact {
                    Fact::Vcpus(online) => sup.vcpus_changed(online),
                    Fact::DiskRemoved(slot) => sup.disk_removed(slot),
                }
            }
        })?;
        Ok(Observer {
            queue: Mutex::new(queue),
        })
    }

    /// An engine observer feeding this thread.
    pub fn observer(&self) -> Arc<dyn VmObserver> {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::new(QueuedObserver(Mutex::new(queue.clone())))
    }
}
