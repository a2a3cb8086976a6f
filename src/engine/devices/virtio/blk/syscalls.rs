//! What a virtio-blk worker thread may call: wait on its eventfds, signal the guest's irqfd,
//! and read, write, flush, discard and zero its image (raw files through `pread`/`pwrite`/
//! `fdatasync`/`fallocate`, qcow2 through imago, which may also grow the file).

use crate::engine::confine::syscalls::SyscallList;
use syscalls::Sysno;

/// The block worker's list (on top of the runtime's).
pub const SYSCALLS: SyscallList = SyscallList::calls(&[
    Sysno::epoll_wait,
    Sysno::epoll_pwait,
    Sysno::read,
    Sysno::pread64,
    Sysno::pwrite64,
    Sysno::preadv,
    Sysno::pwritev,
    Sysno::preadv2,
    Sysno::pwritev2,
    Sysno::fsync,
    Sysno::fdatasync,
    Sysno::fallocate,
    Sysno::ftruncate,
    Sysno::lseek,
    Sysno::fstat,
    Sysno::statx,
]);
