//! Helpers for the verbs' unit tests: run a verb with its output captured, and bring VMs of
//! the contract-tested fake host ([`FakeHost`]) into a state through the `Host` calls a user
//! would make.

use super::Io;
use crate::client::Host;
use crate::client::fake::FakeHost;
use crate::config::{BootConfig, VmConfig};
use crate::protocol::RunState;

/// Runs `f` with an [`Io`] over buffers; returns its result, stdout and stderr.
pub fn capture<T>(f: impl FnOnce(&mut Io<'_>) -> T) -> (T, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let result = f(&mut Io {
        out: &mut out,
        err: &mut err,
    });
    (
        result,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// A host with one demo VM `name` in `state`, whose guest powers off two status polls after
/// its power button is pressed.
pub fn host_with_vm(name: &str, state: RunState) -> FakeHost {
    let host = FakeHost::new();
    host.delay_power_off(2);
    add_vm(&host, VmConfig::new(name, BootConfig::Demo), state);
    host
}

/// Defines `config` on `host` and brings it into `state` (shut off, running, paused, saved
/// or crashed) as a user would.
pub fn add_vm(host: &FakeHost, config: VmConfig, state: RunState) {
    let name = config.name.clone();
    host.define(&config).expect("define");
    match state {
        RunState::ShutOff => {}
        RunState::Running => host.start(&name).expect("start"),
        RunState::Paused => {
            host.start(&name).expect("start");
            host.suspend(&name).expect("suspend");
        }
        RunState::Saved => {
            host.start(&name).expect("start");
            host.managed_save(&name, None).expect("managedsave");
        }
        RunState::Crashed => {
            host.start(&name).expect("start");
            host.crash(&name, "triple fault at RIP 0x1000");
        }
    }
}

/// The stored definition of `name`.
pub fn config(host: &dyn Host, name: &str) -> VmConfig {
    host.status(name).expect("status").config
}

/// The state of `name`.
pub fn run_state(host: &dyn Host, name: &str) -> RunState {
    host.state(name).expect("state").state
}

/// vCPUs online in `name` while it runs.
pub fn live_vcpus(host: &dyn Host, name: &str) -> Option<u32> {
    host.state(name).expect("state").vcpus
}

/// Whether `name` is defined.
pub fn exists(host: &dyn Host, name: &str) -> bool {
    host.list().iter().any(|vm| match vm {
        Ok(status) => status.config.name == name,
        Err(broken) => broken.name == name,
    })
}
