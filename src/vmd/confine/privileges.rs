//! Process-wide privilege limits for vmd: a private umask, no new privileges, and no
//! capabilities once the privileged setup (the NICs' TAPs) is done.
//!
//! Capabilities belong to each thread, so they are dropped twice: by the thread factory when it
//! starts (every other thread is its child) and by the main thread once its TAPs are open.

use caps::{CapSet, Capability, CapsHashSet};

/// Errors limiting privileges.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// `PR_SET_NO_NEW_PRIVS` failed.
    #[error("cannot set no_new_privs")]
    NoNewPrivs(#[source] nix::Error),
    /// A capability set could not be changed.
    #[error("cannot drop the capabilities of thread {thread}: {message}")]
    Capabilities {
        /// The thread.
        thread: String,
        /// What the caps library reported.
        message: String,
    },
}

/// Files vmd creates are private to its user (umask 077), and neither vmd nor anything it
/// could execute may gain privileges (`PR_SET_NO_NEW_PRIVS`, inherited by every thread made
/// afterwards). Call before any thread exists.
pub fn restrict_process() -> Result<(), PrivilegeError> {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    nix::sys::prctl::set_no_new_privs().map_err(PrivilegeError::NoNewPrivs)
}

/// Drops every capability of the calling thread: the bounding set (while it still may), then
/// the ambient, inheritable, effective and permitted sets. A thread that has none (vmd run
/// by an unprivileged user) has nothing to do.
pub fn drop_capabilities() -> Result<(), PrivilegeError> {
    let thread = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned();
    let fail = |e: caps::errors::CapsError| PrivilegeError::Capabilities {
        thread: thread.clone(),
        message: e.to_string(),
    };
    let effective = caps::read(None, CapSet::Effective).map_err(fail)?;
    if effective.contains(&Capability::CAP_SETPCAP) {
        for cap in caps::read(None, CapSet::Bounding).map_err(fail)? {
            caps::drop(None, CapSet::Bounding, cap).map_err(fail)?;
        }
    }
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::set(None, set, &CapsHashSet::new()).map_err(fail)?;
    }
    Ok(())
}
