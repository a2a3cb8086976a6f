//! What a virtio-net worker thread may call: wait on the TAP and its eventfds, move frames
//! between the TAP and the guest's queues, and signal the guest's irqfd.

use crate::engine::confine::syscalls::SyscallList;
use syscalls::Sysno;

/// The net worker's list (on top of the runtime's).
pub const SYSCALLS: SyscallList = SyscallList::calls(&[
    Sysno::epoll_wait,
    Sysno::epoll_pwait,
    Sysno::epoll_ctl,
    Sysno::read,
    Sysno::readv,
]);
