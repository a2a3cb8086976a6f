//! The fake host's VM-state operations, following the real host's rules: a save needs a
//! running VM and shuts it off, a restore needs a save the host wrote (defining the VM from it
//! if needed) and a VM that is not running, a managed save shows the VM as `saved` until the
//! next start resumes it, and `setmem` never goes above the defined memory.

use std::path::{Path, PathBuf};

use super::{FakeHost, FakeVm};
use crate::client::{ChangeScope, ClientError, RestoreOptions};
use crate::config::{ConfigError, VmConfig, format_size};
use crate::protocol::{BalloonStatus, MemoryStats, RunState, SaveInfo};

/// A save file the fake host wrote.
#[derive(Debug, Clone)]
pub(super) struct FakeSave {
    config: VmConfig,
    paused: bool,
}

fn live(vm: &FakeVm, name: &str) -> Result<(), ClientError> {
    FakeHost::live(vm, name)
}

/// What a save of `vm` reports.
fn saved(vm: &FakeVm, path: PathBuf, paused: bool) -> SaveInfo {
    let memory = vm.config.memory / 4;
    SaveInfo {
        path,
        file_bytes: memory + (64 << 10),
        saved_memory_bytes: memory,
        save_ms: 120,
        paused_after_restore: paused,
    }
}

impl FakeHost {
    /// Stops `name` after a save, ending its consoles.
    fn stop_saved(&self, name: &str, to: RunState) -> Result<(), ClientError> {
        let console = self.with_vm(name, |vm, _| {
            vm.state = to;
            vm.pid = None;
            vm.reason = None;
            vm.powering_off = None;
            Ok(vm.console.clone())
        })?;
        console.hang_up();
        Ok(())
    }

    pub(super) fn save_vm(
        &self,
        name: &str,
        path: &Path,
        paused: Option<bool>,
    ) -> Result<SaveInfo, ClientError> {
        let (info, save) = self.with_vm(name, |vm, _| {
            live(vm, name)?;
            let paused = paused.unwrap_or(vm.state == RunState::Paused);
            let save = FakeSave {
                config: vm.config.clone(),
                paused,
            };
            Ok((saved(vm, path.to_path_buf(), paused), save))
        })?;
        self.inner().saves.insert(path.to_path_buf(), save);
        self.stop_saved(name, RunState::ShutOff)?;
        Ok(info)
    }

    pub(super) fn restore_vm(
        &self,
        path: &Path,
        options: RestoreOptions,
    ) -> Result<String, ClientError> {
        let save = self.inner().saves.get(path).cloned().ok_or_else(|| {
            ClientError::Invalid(format!("{} is not a vmux save file", path.display()))
        })?;
        let name = save.config.name.clone();
        if !self.inner().vms.contains_key(&name) {
            use crate::client::Host;
            self.define(&save.config)?;
        }
        {
            use crate::client::Host;
            self.start(&name)?;
        }
        let paused = options.paused.unwrap_or(save.paused);
        self.with_vm(&name, |vm, _| {
            if paused {
                vm.state = RunState::Paused;
            }
            Ok(())
        })?;
        Ok(name)
    }

    pub(super) fn managed_save_vm(
        &self,
        name: &str,
        paused: Option<bool>,
    ) -> Result<SaveInfo, ClientError> {
        let info = self.with_vm(name, |vm, _| {
            live(vm, name)?;
            let paused = paused.unwrap_or(vm.state == RunState::Paused);
            vm.managed_save = Some(paused);
            Ok(saved(
                vm,
                PathBuf::from(format!("/state/vms/{name}/managed.save")),
                paused,
            ))
        })?;
        self.stop_saved(name, RunState::Saved)?;
        Ok(info)
    }

    pub(super) fn remove_managed_save(&self, name: &str) -> Result<(), ClientError> {
        self.with_vm(name, |vm, _| {
            if vm.managed_save.take().is_none() {
                return Err(ClientError::Invalid(format!(
                    "VM '{name}' has no managed save"
                )));
            }
            vm.state = RunState::ShutOff;
            Ok(())
        })
    }

    pub(super) fn set_memory_of(
        &self,
        name: &str,
        bytes: u64,
        scope: ChangeScope,
    ) -> Result<(), ClientError> {
        self.with_vm(name, |vm, _| {
            if bytes > vm.config.memory {
                return Err(ClientError::Invalid(format!(
                    "VM '{name}' has {} of memory; setmem cannot give it {}",
                    format_size(vm.config.memory),
                    format_size(bytes)
                )));
            }
            if scope.live {
                if !matches!(vm.state, RunState::Running | RunState::Paused) {
                    return Err(ClientError::LiveNeedsRunning(name.to_string()));
                }
                vm.balloon_target = vm.config.memory - bytes;
            }
            if scope.config {
                let mut config = vm.config.clone();
                config.current_memory = (bytes < config.memory).then_some(bytes);
                config
                    .validate()
                    .map_err(|e| ClientError::Config(ConfigError::Invalid(e)))?;
                vm.config = config;
            }
            Ok(())
        })
    }

    pub(super) fn memory_stats_of(&self, name: &str) -> Result<MemoryStats, ClientError> {
        self.with_vm(name, |vm, _| {
            live(vm, name)?;
            if let Some(stats) = &vm.memory_stats_override {
                return Ok(stats.clone());
            }
            let memory = vm.config.memory;
            let current = memory - vm.balloon_target;
            Ok(MemoryStats {
                memory_bytes: memory,
                current_bytes: current,
                balloon: Some(BalloonStatus {
                    target_bytes: vm.balloon_target,
                    actual_bytes: vm.balloon_target,
                    released_bytes: vm.balloon_target,
                    driver_ready: true,
                }),
                free_bytes: Some(current / 2),
                available_bytes: Some(current / 2 + current / 8),
                total_bytes: Some(current),
                disk_caches_bytes: Some(current / 16),
                swap_in_bytes: Some(0),
                swap_out_bytes: Some(0),
                major_faults: Some(12),
                minor_faults: Some(3400),
                updated_at: Some(1_700_000_000),
                rss_bytes: memory / 4 + (14 << 20),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::client::fake::FakeHost;
    use crate::client::{ChangeScope, Host, RestoreOptions};
    use crate::protocol::RunState;

    fn running() -> FakeHost {
        FakeHost::running_web()
    }

    #[test]
    fn a_managed_save_shows_as_saved_and_the_next_start_resumes_it_paused() {
        let host = running();
        host.suspend("web").expect("suspend");

        host.managed_save("web", None).expect("managedsave");
        let saved = host.status("web").expect("status").state;
        host.start("web").expect("start");

        assert_eq!(saved, RunState::Saved);
        assert_eq!(host.status("web").expect("status").state, RunState::Paused);
    }

    #[test]
    fn a_save_restores_the_vm_even_after_it_was_undefined() {
        let host = running();
        let path = std::path::Path::new("/srv/web.save");
        host.save("web", path, Some(false)).expect("save");
        host.undefine("web").expect("undefine");

        let name = host
            .restore(path, RestoreOptions::default())
            .expect("restore");

        assert_eq!(name, "web");
        assert_eq!(host.status("web").expect("status").state, RunState::Running);
    }

    #[test]
    fn setmem_above_the_defined_memory_is_refused() {
        let host = running();
        let err = host
            .set_memory("web", 1 << 40, ChangeScope::LIVE)
            .expect_err("too much");
        assert!(err.to_string().contains("cannot give it"), "{err}");
    }

    #[test]
    fn setmem_live_shows_in_the_memory_stats() {
        let host = running();
        host.set_memory("web", 128 << 20, ChangeScope::LIVE)
            .expect("setmem");
        let stats = host.memory_stats("web").expect("stats");
        assert_eq!(stats.current_bytes, 128 << 20);
    }
}
