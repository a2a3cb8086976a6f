//! What a virtio-blk worker thread may call: wait on its eventfds, signal the guest's irqfd,
//! and read, write, flush, discard and zero its image ([`IMAGE_IO`]).

use crate::engine::confine::syscalls::SyscallList;
use syscalls::Sysno;

/// Reading, writing, flushing, discarding, zeroing and growing an open image: raw files
/// through `pread`/`pwrite`/`fdatasync`/`fallocate`, qcow2 through imago (vectored I/O, and
/// `fstatfs` when it opens a file). Every thread that opens, serves or closes images needs it
/// (closing a qcow2 image writes its cached metadata back).
pub const IMAGE_IO: SyscallList = SyscallList::calls(&[
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
    Sysno::fstatfs,
    Sysno::fadvise64,
]);

/// The block worker's own list (on top of the runtime's and [`IMAGE_IO`]).
pub const SYSCALLS: SyscallList = SyscallList::calls(&[Sysno::epoll_wait, Sysno::epoll_pwait]);
