//! Forcing a vCPU thread out of `KVM_RUN`.
//!
//! A vCPU halted with the in-kernel irqchip sleeps inside `KVM_RUN` and never returns on its
//! own, so a kick does two things: it sets `immediate_exit` in the vCPU's `kvm_run` page (so a
//! `KVM_RUN` that has not started yet returns `EINTR` at once) and sends the thread a real-time
//! signal whose handler does nothing (so a `KVM_RUN` in progress returns `EINTR`). Together they
//! leave no window where a kick is lost. The vCPU thread clears `immediate_exit` after each
//! `EINTR` and before it looks at why it was kicked.

use super::super::lifecycle::Kick;
use kvm_bindings::kvm_run;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

/// The signal used for kicks: the first real-time signal libc leaves to applications.
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn ignore_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the no-op handler for [`kick_signal`] once per process (without a handler the
/// signal's default action would kill the process).
pub fn install_kick_handler() -> Result<(), vmm_sys_util::errno::Error> {
    static INSTALLED: OnceLock<Result<(), vmm_sys_util::errno::Error>> = OnceLock::new();
    *INSTALLED
        .get_or_init(|| vmm_sys_util::signal::register_signal_handler(kick_signal(), ignore_kick))
}

/// The parts of a vCPU a kick touches. Both are cleared before they stop being valid.
struct Target {
    /// The vCPU's `kvm_run` page while its `VcpuFd` is alive.
    run: *mut kvm_run,
    /// The vCPU's thread while it is running guest code.
    thread: Option<libc::pthread_t>,
}

/// Kicks one vCPU; shared between its thread and everyone who may kick it.
pub struct VcpuKick {
    target: Mutex<Target>,
}

// SAFETY: `run` points into the vCPU's kvm_run mapping and is only dereferenced under the
// Mutex while the owner guarantees the mapping is alive (it is cleared in `detach_run` before
// the VcpuFd is dropped); `pthread_t` is an opaque id usable from any thread.
unsafe impl Send for VcpuKick {}
// SAFETY: as above; all access goes through the Mutex.
unsafe impl Sync for VcpuKick {}

impl VcpuKick {
    /// A kick for the vCPU whose `kvm_run` page is at `run`. The caller must call
    /// [`VcpuKick::detach_run`] before that page is unmapped.
    pub fn new(run: *mut kvm_run) -> VcpuKick {
        VcpuKick {
            target: Mutex::new(Target { run, thread: None }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Target> {
        self.target.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the calling thread as the vCPU's thread, to be signalled from now on.
    pub fn attach_current_thread(&self) {
        // SAFETY: pthread_self has no preconditions.
        let thread = unsafe { libc::pthread_self() };
        self.lock().thread = Some(thread);
    }

    /// Stops signalling the thread; called by the thread before it returns.
    pub fn detach_thread(&self) {
        self.lock().thread = None;
    }

    /// Forgets the `kvm_run` page; called before the vCPU fd is closed.
    pub fn detach_run(&self) {
        self.lock().run = std::ptr::null_mut();
    }

    /// Sets `immediate_exit` to `value`.
    pub fn set_immediate_exit(&self, value: u8) {
        let target = self.lock();
        if let Some(flag) = immediate_exit_flag(&target) {
            flag.store(value, Ordering::SeqCst);
        }
    }
}

/// The `immediate_exit` byte of a live `kvm_run` page, viewed as an atomic.
fn immediate_exit_flag(target: &Target) -> Option<&AtomicU8> {
    if target.run.is_null() {
        return None;
    }
    // SAFETY: `run` is non-null only while the kvm_run mapping is alive (see `Target`), and we
    // hold the lock that `detach_run` needs, so it stays mapped for the borrow's lifetime (tied
    // to `target`). The byte is shared with the kernel and written only atomically from
    // userspace; `AtomicU8` has the same layout as `u8` and no alignment requirement beyond it.
    Some(unsafe { AtomicU8::from_ptr(std::ptr::addr_of_mut!((*target.run).immediate_exit)) })
}

impl Kick for VcpuKick {
    fn kick(&self) {
        let target = self.lock();
        if let Some(flag) = immediate_exit_flag(&target) {
            flag.store(1, Ordering::SeqCst);
        }
        if let Some(thread) = target.thread {
            // SAFETY: `thread` is set only between `attach_current_thread` and
            // `detach_thread`, both called by that thread itself while it runs, and we hold the
            // lock `detach_thread` needs, so the thread has not finished and the id is valid.
            // The signal's handler is installed before any vCPU thread starts.
            unsafe {
                libc::pthread_kill(thread, kick_signal());
            }
        }
    }
}
