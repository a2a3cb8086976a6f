//! What a vCPU thread may call: `KVM_RUN` and the calls its exits lead to. Device emulation
//! runs here: a guest that activates a virtio device makes this thread register the device's
//! ioeventfds and irqfds, program MSI routes and prepare the worker's eventfds and epoll set
//! (the worker thread itself is made by the thread factory); a reset or power-off kicks the
//! other vCPUs; a crash report reads registers and translates the instruction pointer.
//! Disk and file I/O are not here: they are the block worker's and vmd's.

use crate::engine::confine::ioctls::{
    KVM_GET_FPU, KVM_GET_LAPIC, KVM_GET_MSRS, KVM_GET_REGS, KVM_GET_SREGS, KVM_IOEVENTFD,
    KVM_IRQFD, KVM_RUN, KVM_SET_GSI_ROUTING, KVM_TRANSLATE,
};
use crate::engine::confine::syscalls::SyscallList;
use syscalls::Sysno;

/// The vCPU thread's list (on top of the runtime's).
pub const SYSCALLS: SyscallList = SyscallList {
    any: &[
        // Kicking the other vCPUs out of KVM_RUN (pthread_kill).
        Sysno::tgkill,
        // Device activation: eventfds (and their duplicates), the worker's epoll set.
        Sysno::eventfd2,
        Sysno::epoll_create1,
        Sysno::epoll_ctl,
        // Reading an eventfd counter back when a device is reset.
        Sysno::read,
    ],
    ioctls: &[
        KVM_RUN,
        KVM_IRQFD,
        KVM_IOEVENTFD,
        KVM_SET_GSI_ROUTING,
        KVM_GET_REGS,
        KVM_GET_SREGS,
        KVM_GET_FPU,
        KVM_GET_LAPIC,
        KVM_GET_MSRS,
        KVM_TRANSLATE,
    ],
    args: &[],
};
