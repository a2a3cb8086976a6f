//! The run state of one boot: each vCPU's state machine, the pause request, and the latch
//! holding how the boot ended.
//!
//! One Mutex + Condvar guards it all, so "all vCPUs are parked" and "the boot is over" are
//! observed consistently. vCPU threads consult it only when they come back from KVM after a
//! kick (never on the hot exit path). Anyone may end the boot ([`Lifecycle::request_exit`]:
//! devices on vCPU threads, `VmHandle` on control threads); the first reason wins and every vCPU
//! is kicked out of the guest. A single vCPU can also be told to leave while the boot goes on
//! ([`Lifecycle::request_stop`]: CPU hot-remove once the guest ejected it), and a vCPU index can
//! be registered again for a new thread ([`Lifecycle::register_vcpu`]: hot-add after an eject).
//!
//! Lock order: this lock may be held while kicking a vCPU (which takes the vCPU's own kick
//! lock); a vCPU thread never takes this lock while holding its kick lock.

use super::VmExit;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// How long [`Lifecycle::pause`] waits for every vCPU to park before giving up. Kicked vCPUs
/// park within microseconds; this only bounds a broken host.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where one vCPU thread is in its life.
///
/// `Created → Running ⇄ Paused → Exited`; `Created → Exited` when the boot ends before the
/// thread first enters the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcpuState {
    /// Built, thread not yet in the guest.
    Created,
    /// Executing guest code (or handling one of its exits).
    Running,
    /// Parked by a pause request, out of the guest.
    Paused,
    /// Its thread has finished with the guest.
    Exited,
}

/// Something that can force a vCPU out of `KVM_RUN` promptly.
pub trait Kick: Send + Sync {
    /// Makes the vCPU's current or next `KVM_RUN` return to userspace.
    fn kick(&self);
}

/// What a vCPU thread should do after a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// Enter the guest (again).
    Run,
    /// The boot is over: leave the thread.
    Exit,
}

/// Control requests that do not fit the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// The boot has ended.
    #[error("the VM is not running")]
    NotRunning,
    /// `pause` while paused.
    #[error("the VM is already paused")]
    AlreadyPaused,
    /// `resume` while running.
    #[error("the VM is not paused")]
    NotPaused,
    /// Some vCPU did not park in time.
    #[error("vCPUs did not stop within {} s", PAUSE_TIMEOUT.as_secs())]
    PauseTimedOut,
}

#[derive(Debug)]
struct Inner {
    exit: Option<VmExit>,
    pause_requested: bool,
    /// Indexed by vCPU index (= APIC id); indices never registered read as `Exited`.
    vcpus: Vec<VcpuState>,
    /// Whether each vCPU has entered the guest at least once since it was registered.
    entered: Vec<bool>,
    /// Whether each vCPU was told to leave while the boot goes on (hot-remove).
    stop: Vec<bool>,
}

/// The shared run state of one boot.
pub struct Lifecycle {
    inner: Mutex<Inner>,
    changed: Condvar,
    /// Indexed like `Inner::vcpus`; `None` for indices never registered.
    kicks: RwLock<Vec<Option<Arc<dyn Kick>>>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

impl Lifecycle {
    /// A boot with no vCPUs yet and no exit.
    pub fn new() -> Lifecycle {
        Lifecycle {
            inner: Mutex::new(Inner {
                exit: None,
                pause_requested: false,
                vcpus: Vec::new(),
                entered: Vec::new(),
                stop: Vec::new(),
            }),
            changed: Condvar::new(),
            kicks: RwLock::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn kick_all(&self) {
        let kicks = self.kicks.read().unwrap_or_else(PoisonError::into_inner);
        for kick in kicks.iter().flatten() {
            kick.kick();
        }
    }

    fn kick_one(&self, index: usize) {
        let kicks = self.kicks.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(Some(kick)) = kicks.get(index) {
            kick.kick();
        }
    }

    /// Registers a vCPU after the last registered index (state `Created`); returns its index.
    #[cfg(test)]
    pub fn add_vcpu(&self, kick: Arc<dyn Kick>) -> usize {
        let index = self.lock().vcpus.len();
        self.register_vcpu(index, kick);
        index
    }

    /// Registers vCPU `index` (state `Created`, never entered, no stop request) for a thread
    /// about to start. An index registered before is reused: its previous thread must have
    /// finished (hot-add of a vCPU the guest ejected earlier).
    pub fn register_vcpu(&self, index: usize, kick: Arc<dyn Kick>) {
        let mut inner = self.lock();
        let mut kicks = self.kicks.write().unwrap_or_else(PoisonError::into_inner);
        if kicks.len() <= index {
            kicks.resize(index + 1, None);
            inner.vcpus.resize(index + 1, VcpuState::Exited);
            inner.entered.resize(index + 1, false);
            // Gaps are not registered vCPUs: a thread for one must not run.
            inner.stop.resize(index + 1, true);
        }
        kicks[index] = Some(kick);
        inner.vcpus[index] = VcpuState::Created;
        inner.entered[index] = false;
        inner.stop[index] = false;
    }

    /// Tells vCPU `index` to leave its thread while the boot goes on (even when paused), and
    /// kicks it out of the guest. Its thread then finishes and reports `Exited`.
    pub fn request_stop(&self, index: usize) {
        {
            let mut inner = self.lock();
            match inner.stop.get_mut(index) {
                Some(stop) => *stop = true,
                None => return,
            }
        }
        self.changed.notify_all();
        self.kick_one(index);
    }

    /// Ends the boot with `exit` unless it has already ended (the first reason wins), and
    /// kicks every vCPU out of the guest.
    pub fn request_exit(&self, exit: VmExit) {
        {
            let mut inner = self.lock();
            if inner.exit.is_none() {
                inner.exit = Some(exit);
            }
        }
        self.changed.notify_all();
        self.kick_all();
    }

    /// How the boot ended, if it has.
    pub fn exit(&self) -> Option<VmExit> {
        self.lock().exit.clone()
    }

    /// Blocks until the boot has ended and returns why.
    pub fn wait_exit(&self) -> VmExit {
        let mut inner = self.lock();
        loop {
            if let Some(exit) = &inner.exit {
                return exit.clone();
            }
            inner = self
                .changed
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The state of vCPU `index`.
    #[cfg(test)]
    pub fn vcpu_state(&self, index: usize) -> Option<VcpuState> {
        self.lock().vcpus.get(index).copied()
    }

    /// Whether the VM is paused (a pause was requested and the boot has not ended).
    pub fn is_paused(&self) -> bool {
        let inner = self.lock();
        inner.pause_requested && inner.exit.is_none()
    }

    /// Stops every vCPU and returns once each is parked (or exited).
    pub fn pause(&self) -> Result<(), LifecycleError> {
        let deadline = Instant::now() + PAUSE_TIMEOUT;
        let mut inner = self.lock();
        if inner.exit.is_some() {
            return Err(LifecycleError::NotRunning);
        }
        if inner.pause_requested {
            return Err(LifecycleError::AlreadyPaused);
        }
        inner.pause_requested = true;
        self.kick_all();
        loop {
            if inner.exit.is_some() {
                return Err(LifecycleError::NotRunning);
            }
            // A vCPU still `Created` has not entered the guest and parks at its first
            // checkpoint, so it counts as stopped.
            if !inner.vcpus.contains(&VcpuState::Running) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                inner.pause_requested = false;
                drop(inner);
                self.changed.notify_all();
                return Err(LifecycleError::PauseTimedOut);
            }
            inner = self
                .changed
                .wait_timeout(inner, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Lets paused vCPUs run again.
    pub fn resume(&self) -> Result<(), LifecycleError> {
        {
            let mut inner = self.lock();
            if inner.exit.is_some() {
                return Err(LifecycleError::NotRunning);
            }
            if !inner.pause_requested {
                return Err(LifecycleError::NotPaused);
            }
            inner.pause_requested = false;
        }
        self.changed.notify_all();
        Ok(())
    }

    /// Called by vCPU `index`'s thread before it enters the guest and whenever it was kicked
    /// out: parks while a pause is requested, and says whether to run or leave (the boot is
    /// over, the vCPU was told to stop, or the index was never registered).
    pub fn checkpoint(&self, index: usize) -> Checkpoint {
        let mut inner = self.lock();
        loop {
            if inner.exit.is_some() || inner.stop.get(index) != Some(&false) {
                return Checkpoint::Exit;
            }
            let wanted = if inner.pause_requested {
                VcpuState::Paused
            } else {
                VcpuState::Running
            };
            let changed = inner.vcpus.get(index) != Some(&wanted);
            if let Some(state) = inner.vcpus.get_mut(index) {
                *state = wanted;
            }
            if changed {
                self.changed.notify_all();
            }
            if wanted == VcpuState::Running {
                if let Some(entered) = inner.entered.get_mut(index) {
                    *entered = true;
                }
                return Checkpoint::Run;
            }
            inner = self
                .changed
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Called by vCPU `index`'s thread as it finishes.
    pub fn vcpu_exited(&self, index: usize) {
        if let Some(state) = self.lock().vcpus.get_mut(index) {
            *state = VcpuState::Exited;
        }
        self.changed.notify_all();
    }

    /// Blocks until vCPU `index` is about to enter the guest for the first time (or is parked
    /// by a pause requested before it ever ran) and returns true, or returns false once the
    /// boot has ended or the vCPU has exited without running.
    pub fn wait_entered(&self, index: usize) -> bool {
        let mut inner = self.lock();
        loop {
            let Some(&state) = inner.vcpus.get(index) else {
                return false;
            };
            if inner.entered.get(index) == Some(&true) || state == VcpuState::Paused {
                return true;
            }
            if inner.exit.is_some() || state == VcpuState::Exited {
                return false;
            }
            inner = self
                .changed
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    #[derive(Default)]
    struct CountKicks(AtomicUsize);

    impl Kick for CountKicks {
        fn kick(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn first_exit_reason_wins() {
        let life = Lifecycle::new();
        life.request_exit(VmExit::PowerOff);
        life.request_exit(VmExit::Reset);
        assert_eq!(life.exit(), Some(VmExit::PowerOff));
    }

    #[test]
    fn exit_request_kicks_every_vcpu() {
        let life = Lifecycle::new();
        let kicks: Vec<Arc<CountKicks>> = (0..3).map(|_| Arc::default()).collect();
        for kick in &kicks {
            life.add_vcpu(kick.clone());
        }
        life.request_exit(VmExit::Destroyed);
        assert!(kicks.iter().all(|k| k.0.load(Ordering::SeqCst) == 1));
    }

    #[test]
    fn pause_waits_until_the_running_vcpu_parks() {
        let life = Arc::new(Lifecycle::new());
        let index = life.add_vcpu(Arc::new(CountKicks::default()));
        assert_eq!(life.checkpoint(index), Checkpoint::Run);
        let vcpu = {
            let life = life.clone();
            thread::spawn(move || {
                // The "vCPU" notices the kick a little later and checkpoints.
                while !life.is_paused() {
                    thread::yield_now();
                }
                life.checkpoint(index)
            })
        };
        life.pause().expect("pause");
        assert_eq!(life.vcpu_state(index), Some(VcpuState::Paused));
        life.resume().expect("resume");
        assert_eq!(vcpu.join().expect("join"), Checkpoint::Run);
        assert_eq!(life.vcpu_state(index), Some(VcpuState::Running));
    }

    #[test]
    fn pause_twice_is_refused() {
        let life = Lifecycle::new();
        life.pause().expect("pause with no vCPU running");
        assert_eq!(life.pause(), Err(LifecycleError::AlreadyPaused));
    }

    #[test]
    fn resume_while_running_is_refused() {
        assert_eq!(Lifecycle::new().resume(), Err(LifecycleError::NotPaused));
    }

    #[test]
    fn control_after_exit_is_refused() {
        let life = Lifecycle::new();
        life.request_exit(VmExit::PowerOff);
        assert_eq!(life.pause(), Err(LifecycleError::NotRunning));
        assert!(!life.is_paused());
    }

    #[test]
    fn vcpu_that_ran_counts_as_entered_after_the_boot_ended() {
        let life = Lifecycle::new();
        let index = life.add_vcpu(Arc::new(CountKicks::default()));
        assert_eq!(life.checkpoint(index), Checkpoint::Run);
        life.request_exit(VmExit::DebugExit(0));
        life.vcpu_exited(index);
        assert!(life.wait_entered(index));
    }

    #[test]
    fn vcpu_that_never_ran_is_not_entered() {
        let life = Lifecycle::new();
        let index = life.add_vcpu(Arc::new(CountKicks::default()));
        life.request_exit(VmExit::Destroyed);
        assert!(!life.wait_entered(index));
    }

    #[test]
    fn stop_request_ends_only_that_vcpu() {
        let life = Lifecycle::new();
        let kicks: Vec<Arc<CountKicks>> = (0..2).map(|_| Arc::default()).collect();
        for kick in &kicks {
            life.add_vcpu(kick.clone());
        }
        life.request_stop(1);
        assert_eq!(life.checkpoint(1), Checkpoint::Exit);
        assert_eq!(life.checkpoint(0), Checkpoint::Run);
        assert_eq!(kicks[1].0.load(Ordering::SeqCst), 1);
        assert_eq!(kicks[0].0.load(Ordering::SeqCst), 0);
        assert_eq!(life.exit(), None);
    }

    #[test]
    fn stop_request_releases_a_paused_vcpu() {
        let life = Arc::new(Lifecycle::new());
        life.add_vcpu(Arc::new(CountKicks::default()));
        let index = life.add_vcpu(Arc::new(CountKicks::default()));
        life.pause().expect("pause");
        let vcpu = {
            let life = life.clone();
            thread::spawn(move || life.checkpoint(index))
        };
        while life.vcpu_state(index) != Some(VcpuState::Paused) {
            thread::yield_now();
        }
        life.request_stop(index);
        assert_eq!(vcpu.join().expect("join"), Checkpoint::Exit);
        assert!(life.is_paused());
    }

    #[test]
    fn registering_a_stopped_index_again_lets_it_run() {
        let life = Lifecycle::new();
        let index = life.add_vcpu(Arc::new(CountKicks::default()));
        life.request_stop(index);
        life.vcpu_exited(index);
        life.register_vcpu(index, Arc::new(CountKicks::default()));
        assert_eq!(life.vcpu_state(index), Some(VcpuState::Created));
        assert_eq!(life.checkpoint(index), Checkpoint::Run);
    }

    #[test]
    fn registering_past_the_end_leaves_the_gap_exited() {
        let life = Lifecycle::new();
        life.register_vcpu(2, Arc::new(CountKicks::default()));
        assert_eq!(life.vcpu_state(1), Some(VcpuState::Exited));
        assert_eq!(life.checkpoint(1), Checkpoint::Exit);
        assert_eq!(life.checkpoint(2), Checkpoint::Run);
    }

    #[test]
    fn paused_vcpu_leaves_when_the_boot_ends() {
        let life = Arc::new(Lifecycle::new());
        let index = life.add_vcpu(Arc::new(CountKicks::default()));
        life.pause().expect("pause");
        let vcpu = {
            let life = life.clone();
            thread::spawn(move || life.checkpoint(index))
        };
        while life.vcpu_state(index) != Some(VcpuState::Paused) {
            thread::yield_now();
        }
        life.request_exit(VmExit::Destroyed);
        assert_eq!(vcpu.join().expect("join"), Checkpoint::Exit);
    }
}
