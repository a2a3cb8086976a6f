//! The fake host's finer test hooks: how a guest answers the power button, a quiet boot, a
//! vmd pid, scripted memory statistics, snapshots, and broken definition files with a chosen
//! path and line. Each plays something the real host can meet (a guest that takes its time
//! to power off or never does, a guest that prints nothing at boot, ...).

use super::FakeHost;
use crate::client::ClientError;
use crate::config::DefinitionError;
use crate::protocol::{MemoryStats, RunState};

/// How the fake guests answer the power button.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum PowerButton {
    /// They power off before `shutdown` returns.
    #[default]
    AtOnce,
    /// They power off after this many more status polls (`state` or `status`).
    AfterPolls(u32),
    /// They ignore it and keep running.
    Ignored,
}

impl FakeHost {
    /// From now on the guests power off only after `polls` more status polls (`state` or
    /// `status` calls) once the power button was pressed, as a real guest takes a while to
    /// shut down; `shutdown` returns while they still run.
    pub fn delay_power_off(&self, polls: u32) {
        self.inner().power_button = PowerButton::AfterPolls(polls);
    }

    /// From now on the guests ignore the power button (as a guest without ACPI support or
    /// one stuck in its boot loader does): `shutdown` returns and the VM keeps running.
    pub fn ignore_power_button(&self) {
        self.inner().power_button = PowerButton::Ignored;
    }

    /// From now on the guests print nothing when they boot (no banner, no prompt), so a
    /// console's history holds only what the test [`emit`](FakeHost::emit)s.
    pub fn quiet_boot(&self) {
        self.inner().quiet_boot = true;
    }

    /// The vmd of running VM `name` has process id `pid` (until it stops).
    pub fn set_pid(&self, name: &str, pid: u32) {
        if let Some(vm) = self.inner().vms.get_mut(name)
            && vm.pid.is_some()
        {
            vm.pid = Some(pid);
        }
    }

    /// Makes every later `memory_stats` call for `name` return `stats`.
    pub fn set_memory_stats(&self, name: &str, stats: MemoryStats) {
        if let Some(vm) = self.inner().vms.get_mut(name) {
            vm.memory_stats_override = Some(stats);
        }
    }

    /// Gives VM `name` a snapshot called `snapshot`: a plain undefine is refused.
    pub fn add_snapshot(&self, name: &str, snapshot: &str) {
        if let Some(vm) = self.inner().vms.get_mut(name) {
            vm.snapshots.push(snapshot.to_string());
        }
    }

    /// Lists the unusable definition file `error` describes beside the good ones.
    pub fn add_broken_definition(&self, error: DefinitionError) {
        self.inner().broken.push(error);
    }

    /// Breaks VM `name`'s definition file as a hand edit would: loading it fails with
    /// `error` and its text becomes `text`. A running VM keeps running; a later `update`
    /// repairs it.
    pub fn break_definition_with(&self, name: &str, error: DefinitionError, text: &str) {
        if let Some(vm) = self.inner().vms.get_mut(name) {
            vm.broken = Some((error, text.to_string()));
        }
    }

    /// Presses `name`'s power button; the guest answers as [`PowerButton`] says.
    pub(super) fn press_power_button(&self, name: &str) -> Result<(), ClientError> {
        let button = self.inner().power_button;
        match button {
            PowerButton::AtOnce => self.power_off(name),
            PowerButton::AfterPolls(polls) => self.with_vm(name, |vm, _| {
                FakeHost::live(vm, name)?;
                vm.powering_off = Some(polls);
                Ok(())
            }),
            PowerButton::Ignored => self.with_vm(name, |vm, _| FakeHost::live(vm, name)),
        }
    }

    /// One status poll of `name`: a guest shutting down counts it and powers off when its
    /// count has run out.
    pub(super) fn power_button_poll(&self, name: &str) {
        let console = {
            let mut state = self.inner();
            let Some(vm) = state.vms.get_mut(name) else {
                return;
            };
            match vm.powering_off {
                Some(0) => {
                    vm.powering_off = None;
                    vm.state = RunState::ShutOff;
                    vm.reason = None;
                    vm.pid = None;
                    vm.console.clone()
                }
                Some(left) => {
                    vm.powering_off = Some(left - 1);
                    return;
                }
                None => return,
            }
        };
        console.hang_up();
    }
}

#[cfg(test)]
mod tests {
    use crate::client::fake::FakeHost;
    use crate::client::{ClientError, Host, UndefineOptions};
    use crate::config::{BootConfig, VmConfig};
    use crate::protocol::RunState;
    use std::io::Read;

    fn running() -> FakeHost {
        FakeHost::running_web()
    }

    fn state(host: &FakeHost) -> RunState {
        host.state("web").expect("state").state
    }

    #[test]
    fn a_slow_guest_powers_off_after_the_given_status_polls() {
        let host = running();
        host.delay_power_off(1);
        host.shutdown("web").expect("shutdown");

        let polls = [state(&host), state(&host)];

        assert_eq!(polls, [RunState::Running, RunState::ShutOff]);
    }

    #[test]
    fn a_guest_that_ignores_the_power_button_keeps_running() {
        let host = running();
        host.ignore_power_button();
        host.shutdown("web").expect("shutdown");
        for _ in 0..5 {
            assert_eq!(state(&host), RunState::Running);
        }
    }

    #[test]
    fn a_quiet_guest_leaves_only_what_it_emits_in_the_history() {
        let host = FakeHost::with_vms([VmConfig::new("web", BootConfig::Demo)]);
        host.quiet_boot();
        host.start("web").expect("start");
        host.emit("web", b"banner\n");
        let mut console = host.console("web", true).expect("console");
        host.destroy("web").expect("destroy");

        let mut history = String::new();
        console.output.read_to_string(&mut history).expect("read");

        assert_eq!(history, "banner\n");
    }

    #[test]
    fn a_vm_with_a_snapshot_is_undefined_only_with_its_snapshot_metadata() {
        let host = FakeHost::with_vms([VmConfig::new("web", BootConfig::Demo)]);
        host.add_snapshot("web", "s1");

        let refused = host.undefine("web");
        let with_metadata = host.undefine_with(
            "web",
            UndefineOptions {
                snapshots_metadata: true,
            },
        );

        assert!(
            matches!(refused, Err(ClientError::HasSnapshots { snapshots, .. }) if snapshots == ["s1"])
        );
        with_metadata.expect("undefine with --snapshots-metadata");
        assert!(host.status("web").is_err());
    }
}
