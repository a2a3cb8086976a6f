//! What a virtio-balloon worker thread may call: wait on its queues' eventfds, read their
//! counters, and signal the guest's irqfd (`write`, in the runtime's list). Releasing the pages
//! the guest gives back or reports free is `madvise(MADV_DONTNEED)` (release.rs), which the
//! runtime's list already allows (glibc's allocator trims with it too).

use crate::engine::confine::syscalls::SyscallList;
use syscalls::Sysno;

/// The balloon worker's list (on top of the runtime's).
pub const SYSCALLS: SyscallList = SyscallList::calls(&[
    // The worker's epoll set: its queues' notify eventfds and its stop eventfd.
    Sysno::epoll_wait,
    Sysno::epoll_pwait,
    // Resetting a notify or stop eventfd's counter.
    Sysno::read,
]);
