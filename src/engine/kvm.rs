//! Opening `/dev/kvm` and checking that this host's KVM can run a vmux VM.
//!
//! The two ways this usually fails on a fresh machine get their own messages with the fix:
//! the device is missing (module not loaded, virtualization off in firmware) or the user may
//! not open it (not in the `kvm` group).

use kvm_ioctls::{Cap, Kvm};

/// Why KVM cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// `/dev/kvm` does not exist.
    #[error(
        "/dev/kvm is missing: load the KVM module (modprobe kvm_intel or modprobe kvm_amd) and \
         make sure virtualization (VT-x/AMD-V) is enabled in the firmware"
    )]
    Missing(#[source] kvm_ioctls::Error),
    /// `/dev/kvm` exists but may not be opened.
    #[error(
        "permission denied opening /dev/kvm: add your user to the kvm group \
         (sudo usermod -aG kvm $USER) and log in again"
    )]
    PermissionDenied(#[source] kvm_ioctls::Error),
    /// Opening failed for another reason.
    #[error("cannot open /dev/kvm")]
    Open(#[source] kvm_ioctls::Error),
    /// A capability vmux relies on is absent.
    #[error("this host's KVM lacks {0}: run vmux on a newer Linux kernel")]
    MissingCapability(&'static str),
}

/// Capabilities every VM needs, with the names errors use.
const REQUIRED: &[(Cap, &str)] = &[
    (Cap::Irqchip, "an in-kernel irqchip (KVM_CAP_IRQCHIP)"),
    (Cap::UserMemory, "user memory regions (KVM_CAP_USER_MEMORY)"),
    (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
    (Cap::Pit2, "an in-kernel PIT (KVM_CAP_PIT2)"),
    (Cap::Irqfd, "irqfd (KVM_CAP_IRQFD)"),
    (
        Cap::ImmediateExit,
        "immediate exit (KVM_CAP_IMMEDIATE_EXIT)",
    ),
    (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
];

/// Classifies a failure to open the KVM device by its errno.
fn open_error(error: kvm_ioctls::Error) -> KvmError {
    match error.errno() {
        libc::ENOENT | libc::ENODEV | libc::ENXIO => KvmError::Missing(error),
        libc::EACCES | libc::EPERM => KvmError::PermissionDenied(error),
        _ => KvmError::Open(error),
    }
}

/// Opens `/dev/kvm` and checks the capabilities vmux needs.
pub fn open() -> Result<Kvm, KvmError> {
    let kvm = Kvm::new().map_err(open_error)?;
    for (cap, name) in REQUIRED {
        if !kvm.check_extension(*cap) {
            return Err(KvmError::MissingCapability(name));
        }
    }
    Ok(kvm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_says_to_load_the_module() {
        let err = open_error(kvm_ioctls::Error::new(libc::ENOENT));
        assert!(matches!(err, KvmError::Missing(_)));
        assert!(err.to_string().contains("kvm_intel"), "{err}");
    }

    #[test]
    fn permission_denied_says_to_join_the_kvm_group() {
        let err = open_error(kvm_ioctls::Error::new(libc::EACCES));
        assert!(matches!(err, KvmError::PermissionDenied(_)));
        assert!(err.to_string().contains("kvm group"), "{err}");
    }
}
