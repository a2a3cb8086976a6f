//! One poll of a host, as the runtime's poller (local) and each remote host's worker do it
//! once a second: the list, the live facts of VMs that (re)started since the last poll, and
//! a stats sample of every live VM. Blocking: worker threads only.

use super::action::Action;
use crate::client::Host;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a poller remembers between polls. Owned by its thread.
#[derive(Debug, Default)]
pub struct Poller {
    /// vmd's pid per live VM when its facts were last read (a new pid: read them again).
    pids: HashMap<String, Option<u32>>,
    /// When stats were last sampled.
    last_stats: Option<Instant>,
}

impl Poller {
    /// Polls `host` once, handing each action to `send`; returns `None` when `send` refused
    /// (the UI is gone), else whether stats were sampled (at most about once a second: a
    /// wake-up right after an operation refreshes states but adds no second sample to the
    /// charts).
    pub fn poll(&mut self, host: &dyn Host, send: &mut dyn FnMut(Action) -> bool) -> Option<bool> {
        let listed = host.list();
        // VMs with a broken definition still run, and still have stats.
        let live: Vec<(String, Option<u32>)> = listed
            .iter()
            .map(|entry| match entry {
                Ok(status) => (status.config.name.clone(), status.pid),
                Err(broken) => (broken.name.clone(), broken.live.pid),
            })
            .filter(|(_, pid)| pid.is_some())
            .collect();
        if !send(Action::Listed(listed)) {
            return None;
        }
        let sample = self
            .last_stats
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(900));
        for (vm, pid) in &live {
            if self.pids.get(vm) != Some(pid)
                && let Ok(info) = host.info(vm)
            {
                self.pids.insert(vm.clone(), *pid);
                send(Action::Info {
                    vm: vm.clone(),
                    info,
                });
            }
            if sample && let Ok(stats) = host.stats(vm) {
                send(Action::Stats {
                    vm: vm.clone(),
                    stats,
                });
            }
        }
        self.pids.retain(|vm, _| live.iter().any(|(n, _)| n == vm));
        if sample {
            self.last_stats = Some(Instant::now());
        }
        Some(sample)
    }
}
