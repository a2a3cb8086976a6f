//! Thread confinement hooks: how a process that confines its threads (vmd) gets every thread
//! started through one place, and each thread confined before it runs its body.
//!
//! seccomp filters are per thread and a new thread inherits its creator's. So that a thread's
//! filter can be narrower than its creator's, a confined process makes all of its threads on a
//! single *thread factory* ([`Confiner::make_thread`]) whose own filter is the union of every
//! kind's list; each new thread then adds the filter of its [`ThreadKind`]
//! ([`Confiner::enter`]) before its body runs, so its effective filter is its own list. A vCPU
//! that activates a disk therefore asks the factory for the worker thread instead of being
//! allowed to `clone` itself.
//!
//! Without an installed [`Confiner`] (tests, `vmux run`, `VMUX_SECCOMP=off`) [`spawn`] is a
//! plain named `std::thread` spawn. The system-call lists live beside the code that makes the
//! calls ([`syscalls::SyscallList`]); the SIGSYS handler that reports a blocked call is in
//! [`sigsys`]. The policy (which lists, the factory, what a violation does) is vmd's.

pub mod ioctls;
pub mod sigsys;
pub mod syscalls;

use std::io;
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::{self, JoinHandle};

/// The kinds of thread a confined vmd runs; each gets its own system-call filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThreadKind {
    /// vmd's main thread: the boot loop (builds each boot, waits for it, records the end).
    Main,
    /// The thread factory: makes every other thread.
    Factory,
    /// Records a blocked system call in the VM's state and ends vmd.
    Reaper,
    /// Writes vmd's own log (rate-limited, rotated).
    Log,
    /// A vCPU: `KVM_RUN` and exit dispatch (`vcpuN`).
    Vcpu,
    /// A virtio-blk request worker (`blkN`).
    BlockWorker,
    /// A virtio-net worker.
    NetWorker,
    /// A virtio-balloon worker (`balloon`): serves its queues and releases the pages the
    /// guest gives back.
    BalloonWorker,
    /// Accepts control connections.
    Control,
    /// Serves one control connection (commands, hotplug, snapshots).
    Connection,
    /// Pushes events to one subscribed connection.
    Events,
    /// Streams console output to one console connection.
    ConsoleOut,
    /// Samples statistics once a second.
    Stats,
    /// Writes `console.log`.
    ConsoleLog,
    /// Turns SIGTERM/SIGINT into a destroy.
    Signals,
    /// Applies the engine's hotplug facts to vmd's state (so vCPU threads never write files).
    Observer,
}

impl ThreadKind {
    /// Every kind, in declaration order.
    pub const ALL: [ThreadKind; 16] = [
        ThreadKind::Main,
        ThreadKind::Factory,
        ThreadKind::Reaper,
        ThreadKind::Log,
        ThreadKind::Vcpu,
        ThreadKind::BlockWorker,
        ThreadKind::NetWorker,
        ThreadKind::BalloonWorker,
        ThreadKind::Control,
        ThreadKind::Connection,
        ThreadKind::Events,
        ThreadKind::ConsoleOut,
        ThreadKind::Stats,
        ThreadKind::ConsoleLog,
        ThreadKind::Signals,
        ThreadKind::Observer,
    ];

    /// The kind's name as written in `VMUX_SECCOMP_TEST_VIOLATION` and in the docs.
    pub fn name(self) -> &'static str {
        match self {
            ThreadKind::Main => "main",
            ThreadKind::Factory => "factory",
            ThreadKind::Reaper => "reaper",
            ThreadKind::Log => "log",
            ThreadKind::Vcpu => "vcpu",
            ThreadKind::BlockWorker => "blk",
            ThreadKind::NetWorker => "net",
            ThreadKind::BalloonWorker => "balloon",
            ThreadKind::Control => "control",
            ThreadKind::Connection => "conn",
            ThreadKind::Events => "events",
            ThreadKind::ConsoleOut => "console-out",
            ThreadKind::Stats => "stats",
            ThreadKind::ConsoleLog => "console-log",
            ThreadKind::Signals => "signals",
            ThreadKind::Observer => "observer",
        }
    }

    /// The kind named `name` (see [`ThreadKind::name`]).
    pub fn from_name(name: &str) -> Option<ThreadKind> {
        ThreadKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// A process's confinement of its threads (implemented by vmd).
pub trait Confiner: Send + Sync {
    /// Runs `job` on the thread factory. `job` spawns one thread and hands its handle back;
    /// it never blocks.
    fn make_thread(&self, job: Box<dyn FnOnce() + Send>);

    /// Confines the calling thread, new and of kind `kind`, before its body runs. Does not
    /// return if the thread cannot be confined (the process ends with the reason recorded).
    fn enter(&self, kind: ThreadKind);
}

/// The system calls of the engine's own thread kinds (vCPU, block, net and balloon workers), on top of
/// [`syscalls::RUNTIME`]; empty for vmd's kinds, whose lists live in vmd.
pub fn engine_syscalls(kind: ThreadKind) -> Vec<syscalls::SyscallList> {
    use super::devices::virtio::blk::syscalls as blk;
    match kind {
        ThreadKind::Vcpu => vec![super::vcpu::syscalls::SYSCALLS],
        ThreadKind::BlockWorker => vec![blk::SYSCALLS, blk::IMAGE_IO],
        ThreadKind::NetWorker => vec![super::devices::virtio::net::syscalls::SYSCALLS],
        ThreadKind::BalloonWorker => vec![super::devices::virtio::balloon::syscalls::SYSCALLS],
        _ => Vec::new(),
    }
}

/// What every thread that opens, serves or closes disk images needs (vmd's main, connection
/// and observer threads besides the block workers).
pub const IMAGE_IO: syscalls::SyscallList = super::devices::virtio::blk::syscalls::IMAGE_IO;

static CONFINER: OnceLock<Arc<dyn Confiner>> = OnceLock::new();

/// Makes `confiner` confine every thread [`spawn`] starts from now on. Only the first call
/// takes effect; returns whether this one did.
pub fn install(confiner: Arc<dyn Confiner>) -> bool {
    CONFINER.set(confiner).is_ok()
}

/// Whether a [`Confiner`] is installed.
pub fn is_installed() -> bool {
    CONFINER.get().is_some()
}

/// Starts a thread named `name` of kind `kind` running `body`: on the thread factory and
/// confined first when a [`Confiner`] is installed, else a plain spawn.
pub fn spawn<F, T>(kind: ThreadKind, name: String, body: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let builder = thread::Builder::new().name(name);
    let Some(confiner) = CONFINER.get() else {
        return builder.spawn(body);
    };
    let for_thread = Arc::clone(confiner);
    let confined = move || {
        for_thread.enter(kind);
        body()
    };
    let (reply, handle) = mpsc::sync_channel(1);
    confiner.make_thread(Box::new(move || {
        let _ = reply.send(builder.spawn(confined));
    }));
    handle
        .recv()
        .unwrap_or_else(|_| Err(io::Error::other("the thread factory has stopped")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_its_name() {
        for kind in ThreadKind::ALL {
            assert_eq!(ThreadKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(ThreadKind::from_name("vcpu0"), None);
    }

    #[test]
    fn without_a_confiner_spawn_is_a_named_thread() {
        let handle = spawn(ThreadKind::Stats, "probe".into(), || {
            thread::current().name().map(str::to_owned)
        })
        .expect("spawn");
        assert_eq!(handle.join().expect("join").as_deref(), Some("probe"));
    }
}
