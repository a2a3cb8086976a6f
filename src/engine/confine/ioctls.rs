//! ioctl request numbers for the system-call lists, computed the way `<asm-generic/ioctl.h>`
//! does (direction, size, type, number), with the sizes of kvm-bindings' structures.

use kvm_bindings::{
    kvm_fpu, kvm_ioeventfd, kvm_irq_routing, kvm_irqfd, kvm_lapic_state, kvm_mp_state, kvm_msrs,
    kvm_regs, kvm_sregs, kvm_translation,
};
use std::mem::size_of;

/// KVM's ioctl type byte.
pub const KVMIO: u64 = 0xae;

const NONE: u64 = 0;
const WRITE: u64 = 1;
const READ: u64 = 2;

const fn request(direction: u64, kind: u64, number: u64, size: usize) -> u64 {
    (direction << 30) | ((size as u64) << 16) | (kind << 8) | number
}

/// `_IO(type, nr)`.
pub const fn io(kind: u64, number: u64) -> u64 {
    request(NONE, kind, number, 0)
}

/// `_IOR(type, nr, size)`.
pub const fn ior(kind: u64, number: u64, size: usize) -> u64 {
    request(READ, kind, number, size)
}

/// `_IOW(type, nr, size)`.
pub const fn iow(kind: u64, number: u64, size: usize) -> u64 {
    request(WRITE, kind, number, size)
}

/// `_IOWR(type, nr, size)`.
pub const fn iowr(kind: u64, number: u64, size: usize) -> u64 {
    request(READ | WRITE, kind, number, size)
}

/// The mask that keeps an ioctl request's type byte (to allow a whole family, e.g. KVM's).
pub const TYPE_MASK: u64 = 0xff << 8;

/// `KVM_RUN`.
pub const KVM_RUN: u64 = io(KVMIO, 0x80);
/// `KVM_GET_REGS`.
pub const KVM_GET_REGS: u64 = ior(KVMIO, 0x81, size_of::<kvm_regs>());
/// `KVM_GET_SREGS`.
pub const KVM_GET_SREGS: u64 = ior(KVMIO, 0x83, size_of::<kvm_sregs>());
/// `KVM_TRANSLATE`.
pub const KVM_TRANSLATE: u64 = iowr(KVMIO, 0x85, size_of::<kvm_translation>());
/// `KVM_GET_FPU`.
pub const KVM_GET_FPU: u64 = ior(KVMIO, 0x8c, size_of::<kvm_fpu>());
/// `KVM_GET_LAPIC`.
pub const KVM_GET_LAPIC: u64 = ior(KVMIO, 0x8e, size_of::<kvm_lapic_state>());
/// `KVM_GET_MSRS`.
pub const KVM_GET_MSRS: u64 = iowr(KVMIO, 0x88, size_of::<kvm_msrs>());
/// `KVM_SET_MP_STATE`.
pub const KVM_SET_MP_STATE: u64 = iow(KVMIO, 0x99, size_of::<kvm_mp_state>());
/// `KVM_IRQFD`.
pub const KVM_IRQFD: u64 = iow(KVMIO, 0x76, size_of::<kvm_irqfd>());
/// `KVM_IOEVENTFD`.
pub const KVM_IOEVENTFD: u64 = iow(KVMIO, 0x79, size_of::<kvm_ioeventfd>());
/// `KVM_SET_GSI_ROUTING`.
pub const KVM_SET_GSI_ROUTING: u64 = iow(KVMIO, 0x6a, size_of::<kvm_irq_routing>());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_requests_match_the_kernel_headers() {
        // Values from <linux/kvm.h> as the kernel computes them on x86_64.
        assert_eq!(KVM_RUN, 0xae80);
        assert_eq!(KVM_GET_REGS, 0x8090_ae81);
        assert_eq!(KVM_GET_SREGS, 0x8138_ae83);
        assert_eq!(KVM_IRQFD, 0x4020_ae76);
        assert_eq!(KVM_IOEVENTFD, 0x4040_ae79);
        assert_eq!(KVM_SET_GSI_ROUTING, 0x4008_ae6a);
        assert_eq!(KVM_SET_MP_STATE, 0x4004_ae99);
    }
}
