//! Working out a VM's state without asking vmd: from `state.json` (what vmd last wrote) and
//! whether a vmd holds the VM's pid lock. Pure, so every case is unit-tested.

use crate::protocol::RunState;
use crate::vmd::pidfile::Liveness;
use crate::vmd::state_file::StateFile;

/// A VM's live state as seen from outside, known without its definition (from vmd's pid lock
/// and `state.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VmState {
    /// The state to show.
    pub state: RunState,
    /// For `crashed`: why.
    pub reason: Option<String>,
    /// vmd's pid while it runs.
    pub pid: Option<u32>,
    /// vCPUs present (running VMs).
    pub vcpus: Option<u32>,
}

impl VmState {
    /// Whether a vmd is serving the VM (running or paused).
    pub fn is_active(&self) -> bool {
        matches!(self.state, RunState::Running | RunState::Paused)
    }
}

/// Combines the state file and the lock probe.
///
/// - vmd alive and the file is its own: the file's state (vmd keeps it current).
/// - vmd alive but the file is older (vmd is still starting): running.
/// - vmd dead and the file says running or paused: vmd died without recording an end, so the
///   VM crashed.
/// - vmd dead otherwise: the file's final state, or shut off when there is none.
pub fn classify(file: Option<&StateFile>, live: Liveness) -> VmState {
    match (live, file) {
        (Liveness::Alive { pid }, Some(f)) if pid.is_none_or(|p| p == f.pid) => VmState {
            state: f.state,
            reason: f.reason.clone(),
            pid: Some(f.pid),
            vcpus: (f.state == RunState::Running || f.state == RunState::Paused).then_some(f.vcpus),
        },
        (Liveness::Alive { pid }, _) => VmState {
            state: RunState::Running,
            reason: None,
            pid,
            vcpus: None,
        },
        (Liveness::Dead, Some(f)) if matches!(f.state, RunState::Running | RunState::Paused) => {
            VmState {
                state: RunState::Crashed,
                reason: Some(format!("vmd (pid {}) exited unexpectedly", f.pid)),
                pid: None,
                vcpus: None,
            }
        }
        (Liveness::Dead, Some(f)) => VmState {
            state: f.state,
            reason: f.reason.clone(),
            pid: None,
            vcpus: None,
        },
        (Liveness::Dead, None) => VmState {
            state: RunState::ShutOff,
            reason: None,
            pid: None,
            vcpus: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(state: RunState, pid: u32) -> StateFile {
        StateFile {
            state,
            pid,
            vcpus: 2,
            boots: 1,
            started_at: 0,
            reason: (state == RunState::Crashed).then(|| "triple fault".to_string()),
        }
    }

    #[test]
    fn a_live_vmd_with_its_own_file_shows_that_state() {
        let seen = classify(
            Some(&file(RunState::Paused, 10)),
            Liveness::Alive { pid: Some(10) },
        );
        assert_eq!(seen.state, RunState::Paused);
        assert_eq!((seen.pid, seen.vcpus), (Some(10), Some(2)));
    }

    #[test]
    fn a_live_vmd_with_an_older_file_is_starting_and_shown_running() {
        let seen = classify(
            Some(&file(RunState::ShutOff, 9)),
            Liveness::Alive { pid: Some(10) },
        );
        assert_eq!(seen.state, RunState::Running);
        assert_eq!(seen.pid, Some(10));
    }

    #[test]
    fn a_dead_vmd_that_said_running_crashed() {
        let seen = classify(Some(&file(RunState::Running, 321)), Liveness::Dead);
        assert_eq!(seen.state, RunState::Crashed);
        assert_eq!(
            seen.reason.as_deref(),
            Some("vmd (pid 321) exited unexpectedly")
        );
        assert_eq!(seen.pid, None);
    }

    #[test]
    fn a_recorded_crash_keeps_its_reason() {
        let seen = classify(Some(&file(RunState::Crashed, 5)), Liveness::Dead);
        assert_eq!(seen.state, RunState::Crashed);
        assert_eq!(seen.reason.as_deref(), Some("triple fault"));
    }

    #[test]
    fn a_clean_power_off_is_shut_off() {
        let seen = classify(Some(&file(RunState::ShutOff, 5)), Liveness::Dead);
        assert_eq!(seen.state, RunState::ShutOff);
        assert!(!seen.is_active());
    }

    #[test]
    fn a_vm_never_started_is_shut_off() {
        assert_eq!(classify(None, Liveness::Dead).state, RunState::ShutOff);
    }
}
