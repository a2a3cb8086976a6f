//! A fake [`Host`] for the verbs' unit tests: definitions and states in memory, a guest that
//! powers off a few polls after the power button (or never), and a scripted console.

use super::Io;
use crate::client::{
    BrokenVm, ChangeScope, ClientError, Console, Host, RestoreOptions, UndefineOptions, VmState,
    VmStatus, hotplug,
};
use crate::config::{BootConfig, ConfigError, DefinitionError, DiskConfig, VmConfig};
use crate::protocol::{
    BalloonStatus, DiskInfo, DiskStats, MemoryStats, RunState, SaveInfo, VcpuStats, VmInfo, VmStats,
};
use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::sync::{Arc, Mutex, MutexGuard};

/// One fake VM.
#[derive(Debug, Clone)]
pub struct FakeVm {
    config: VmConfig,
    state: RunState,
    /// vCPUs online while running (the fake guest onlines hot-added ones at once).
    vcpus: u32,
    /// Disks of the running VM (the fake guest takes and ejects them at once).
    disks: Vec<DiskInfo>,
    /// Status polls left until a pressed power button takes effect.
    powering_off: Option<u32>,
    /// Names of its snapshots.
    snapshots: Vec<String>,
    /// Its definition file was broken by hand: why.
    broken: Option<DefinitionError>,
}

/// In-memory host.
#[derive(Default)]
pub struct FakeHost {
    /// The VMs by name.
    pub vms: Mutex<BTreeMap<String, FakeVm>>,
    /// Unusable definition files.
    pub broken: Mutex<Vec<DefinitionError>>,
    /// Polls a guest takes to power off after the button; `None`: it ignores the button.
    pub power_off_polls: Option<u32>,
    /// What the console sends as guest output (history first when asked for).
    pub console_history: Vec<u8>,
    /// Live console output.
    pub console_live: Vec<u8>,
    /// Everything written to the console's input.
    pub typed: Arc<Mutex<Vec<u8>>>,
    /// Names whose start fails.
    pub failing_start: Vec<String>,
    /// Save files written, by path: the VM's name.
    pub saves: Mutex<BTreeMap<std::path::PathBuf, String>>,
    /// Memory given with `setmem --live`, by VM.
    pub live_memory: Mutex<BTreeMap<String, u64>>,
}

impl FakeHost {
    /// A host with one demo VM in `state`.
    pub fn with_vm(name: &str, state: RunState) -> FakeHost {
        let host = FakeHost {
            power_off_polls: Some(2),
            ..FakeHost::default()
        };
        host.add(VmConfig::new(name, BootConfig::Demo), state);
        host
    }

    /// Adds a VM.
    pub fn add(&self, config: VmConfig, state: RunState) {
        self.lock().insert(
            config.name.clone(),
            FakeVm {
                vcpus: config.vcpus,
                disks: Vec::new(),
                config,
                state,
                powering_off: None,
                snapshots: Vec::new(),
                broken: None,
            },
        );
    }

    /// Gives `vm` a snapshot called `name`.
    pub fn add_snapshot(&self, vm: &str, name: &str) {
        self.lock()
            .get_mut(vm)
            .expect("add_snapshot needs a defined VM")
            .snapshots
            .push(name.to_string());
    }

    /// Breaks `name`'s definition file as a hand edit would; its live state stays.
    pub fn break_definition(&self, name: &str, error: DefinitionError) {
        self.lock()
            .get_mut(name)
            .expect("break_definition needs a defined VM")
            .broken = Some(error);
    }

    /// Adds an unusable definition file.
    pub fn add_broken(&self, error: DefinitionError) {
        self.broken.lock().expect("lock").push(error);
    }

    /// The stored definition of `name`.
    pub fn config(&self, name: &str) -> VmConfig {
        self.lock()[name].config.clone()
    }

    /// vCPUs online in `name` while it runs.
    pub fn live_vcpus(&self, name: &str) -> Option<u32> {
        let vm = &self.lock()[name];
        matches!(vm.state, RunState::Running | RunState::Paused).then_some(vm.vcpus)
    }

    /// The state of `name`.
    pub fn run_state(&self, name: &str) -> RunState {
        self.lock()[name].state
    }

    /// Whether `name` is defined.
    pub fn exists(&self, name: &str) -> bool {
        self.lock().contains_key(name)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, FakeVm>> {
        self.vms.lock().expect("lock")
    }

    fn with<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut FakeVm) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut vms = self.lock();
        let vm = vms
            .get_mut(name)
            .ok_or_else(|| ConfigError::UnknownVm(name.to_string()))?;
        f(vm)
    }

    fn running(&self, name: &str) -> Result<(), ClientError> {
        self.with(name, |vm| match vm.state {
            RunState::Running | RunState::Paused => Ok(()),
            _ => Err(ClientError::NotRunning(name.to_string())),
        })
    }

    fn set_state(&self, name: &str, state: RunState) -> Result<(), ClientError> {
        self.running(name)?;
        self.with(name, |vm| {
            vm.state = state;
            Ok(())
        })
    }

    /// One poll of a guest that was asked to power off.
    fn power_off_step(vm: &mut FakeVm) {
        if let Some(left) = vm.powering_off {
            if left == 0 {
                vm.state = RunState::ShutOff;
                vm.powering_off = None;
            } else {
                vm.powering_off = Some(left - 1);
            }
        }
    }

    fn status_of(vm: &FakeVm) -> VmStatus {
        let live = matches!(vm.state, RunState::Running | RunState::Paused);
        VmStatus {
            config: vm.config.clone(),
            state: vm.state,
            reason: (vm.state == RunState::Crashed).then(|| "triple fault at RIP 0x1000".into()),
            pid: live.then_some(4242),
            vcpus: live.then_some(vm.vcpus),
        }
    }
}

impl Host for FakeHost {
    fn list(&self) -> Vec<Result<VmStatus, BrokenVm>> {
        let mut all: Vec<_> = self
            .lock()
            .values()
            .map(|vm| {
                let status = Self::status_of(vm);
                match &vm.broken {
                    None => Ok(status),
                    Some(error) => Err(BrokenVm {
                        name: vm.config.name.clone(),
                        error: Box::new(error.clone()),
                        live: status.live(),
                    }),
                }
            })
            .collect();
        all.extend(
            self.broken
                .lock()
                .expect("lock")
                .iter()
                .cloned()
                .map(|error| {
                    Err(BrokenVm {
                        name: error
                            .path
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        error: Box::new(error),
                        live: VmState {
                            state: RunState::ShutOff,
                            reason: None,
                            pid: None,
                            vcpus: None,
                        },
                    })
                }),
        );
        all
    }

    fn state(&self, name: &str) -> Result<VmState, ClientError> {
        self.with(name, |vm| {
            Self::power_off_step(vm);
            Ok(Self::status_of(vm).live())
        })
    }

    fn definition_text(&self, name: &str) -> Result<String, ClientError> {
        self.with(name, |vm| match &vm.broken {
            Some(_) => Ok(format!("name = \"{name}\"\nvcpus = \"two\"\n")),
            None => Ok(toml::to_string(&vm.config).expect("a fake definition serializes")),
        })
    }

    fn status(&self, name: &str) -> Result<VmStatus, ClientError> {
        self.with(name, |vm| {
            if let Some(error) = &vm.broken {
                return Err(ConfigError::BrokenVm {
                    name: name.to_string(),
                    source: error.clone(),
                }
                .into());
            }
            Self::power_off_step(vm);
            Ok(Self::status_of(vm))
        })
    }

    fn info(&self, name: &str) -> Result<VmInfo, ClientError> {
        self.running(name)?;
        self.with(name, |vm| {
            Ok(VmInfo {
                name: name.to_string(),
                state: vm.state,
                pid: 4242,
                vcpus: vm.vcpus,
                max_vcpus: vm.config.max_vcpus,
                memory_bytes: vm.config.memory,
                started_at: 0,
                boots: 1,
                protocol: crate::protocol::PROTOCOL_VERSION,
                disks: vm.disks.clone(),
                boot_image: None,
            })
        })
    }

    fn stats(&self, name: &str) -> Result<VmStats, ClientError> {
        self.running(name)?;
        Ok(VmStats {
            uptime_ms: 61_000,
            vcpus: vec![VcpuStats {
                index: 0,
                tid: 4243,
                cpu_time_ns: 2_000_000_000,
                cpu_percent: 12.5,
                exits: 1000,
            }],
            cpu_percent: 12.5,
            memory_bytes: 256 << 20,
            memory_touched_bytes: 8 << 20,
            rss_bytes: 20 << 20,
            exits: 1000,
            exits_per_sec: 42.0,
            serial_out_bytes: 77,
            disks: vec![DiskStats {
                target: "vda".into(),
                read_ops: 300,
                read_bytes: 3 << 20,
                write_ops: 40,
                write_bytes: 160 << 10,
                flushes: 7,
                errors: 0,
                average_latency_ns: 125_000,
                read_bytes_per_sec: 1536.0 * 1024.0,
                write_bytes_per_sec: 0.0,
                read_ops_per_sec: 150.0,
                write_ops_per_sec: 0.0,
            }],
            nics: Vec::new(),
            balloon: None,
            guest_free_bytes: None,
        })
    }

    fn define(&self, config: &VmConfig) -> Result<(), ClientError> {
        if self.exists(&config.name) {
            return Err(ConfigError::VmExists(config.name.clone()).into());
        }
        self.add(config.clone(), RunState::ShutOff);
        Ok(())
    }

    fn update(&self, config: &VmConfig) -> Result<(), ClientError> {
        self.with(&config.name, |vm| {
            vm.config = config.clone();
            vm.broken = None;
            Ok(())
        })
    }

    fn update_from(&self, original: &VmConfig, config: &VmConfig) -> Result<(), ClientError> {
        self.with(&config.name, |vm| {
            if vm.config != *original {
                return Err(ClientError::Config(crate::config::ConfigError::Changed(
                    original.name.clone(),
                )));
            }
            vm.config = config.clone();
            Ok(())
        })
    }

    fn undefine_with(&self, name: &str, options: UndefineOptions) -> Result<(), ClientError> {
        self.with(name, |vm| {
            if vm.snapshots.is_empty() || options.snapshots_metadata {
                Ok(())
            } else {
                Err(ClientError::HasSnapshots {
                    name: name.to_string(),
                    snapshots: vm.snapshots.clone(),
                })
            }
        })?;
        self.lock().remove(name);
        Ok(())
    }

    fn set_autostart(&self, name: &str, enabled: bool) -> Result<(), ClientError> {
        self.with(name, |vm| {
            vm.config.autostart = enabled;
            Ok(())
        })
    }

    fn start(&self, name: &str) -> Result<(), ClientError> {
        let fails = self.failing_start.iter().any(|n| n == name);
        self.with(name, |vm| {
            if matches!(vm.state, RunState::Running | RunState::Paused) {
                return Err(ClientError::AlreadyRunning(name.to_string()));
            }
            if let Some(error) = &vm.broken {
                return Err(ConfigError::BrokenVm {
                    name: name.to_string(),
                    source: error.clone(),
                }
                .into());
            }
            if fails {
                return Err(ClientError::StartFailed {
                    name: name.to_string(),
                    message: "the engine refused".into(),
                });
            }
            vm.state = RunState::Running;
            vm.vcpus = vm.config.vcpus;
            Ok(())
        })
    }

    fn shutdown(&self, name: &str) -> Result<(), ClientError> {
        self.running(name)?;
        let polls = self.power_off_polls;
        self.with(name, |vm| {
            vm.powering_off = polls;
            Ok(())
        })
    }

    fn destroy(&self, name: &str) -> Result<(), ClientError> {
        self.set_state(name, RunState::ShutOff)
    }

    fn reboot(&self, name: &str) -> Result<(), ClientError> {
        self.running(name)
    }

    fn reset(&self, name: &str) -> Result<(), ClientError> {
        self.running(name)
    }

    fn suspend(&self, name: &str) -> Result<(), ClientError> {
        self.set_state(name, RunState::Paused)
    }

    fn resume(&self, name: &str) -> Result<(), ClientError> {
        self.set_state(name, RunState::Running)
    }

    fn console(&self, name: &str, history: bool) -> Result<Console, ClientError> {
        self.running(name)?;
        let mut bytes = if history {
            self.console_history.clone()
        } else {
            Vec::new()
        };
        bytes.extend_from_slice(&self.console_live);
        Ok(Console {
            output: Box::new(Cursor::new(bytes)),
            input: Box::new(SharedWriter(self.typed.clone())),
        })
    }

    fn set_vcpus(&self, name: &str, count: u32, scope: ChangeScope) -> Result<(), ClientError> {
        self.set_vcpus_of(name, count, scope)
    }

    fn attach_disk(
        &self,
        name: &str,
        disk: &DiskConfig,
        scope: ChangeScope,
    ) -> Result<String, ClientError> {
        let image = std::path::PathBuf::from(disk.source.to_string());
        self.with(name, |vm| {
            let running = matches!(vm.state, RunState::Running | RunState::Paused);
            if scope.live && !running {
                return Err(ClientError::LiveNeedsRunning(name.to_string()));
            }
            let live = scope.live.then(|| vm.disks.clone());
            let image_use = hotplug::ImageUse {
                writable: true,
                ..hotplug::ImageUse::default()
            };
            let plan = hotplug::check_attach(
                &vm.config,
                disk,
                &image,
                scope,
                live.as_deref(),
                &image_use,
            )?;
            if scope.live {
                vm.disks.push(DiskInfo {
                    target: plan.target.clone(),
                    path: image.clone(),
                    read_only: disk.readonly,
                    slot: vm.disks.len() as u8 + 1,
                    removing: false,
                    removal_requested_at: None,
                });
            }
            if let Some(updated) = plan.updated {
                vm.config = updated;
            }
            Ok(plan.target)
        })
    }

    fn save(
        &self,
        name: &str,
        path: &std::path::Path,
        paused: Option<bool>,
    ) -> Result<SaveInfo, ClientError> {
        self.running(name)?;
        self.set_state(name, RunState::ShutOff)?;
        self.saves
            .lock()
            .expect("lock")
            .insert(path.to_path_buf(), name.to_string());
        Ok(SaveInfo {
            path: path.to_path_buf(),
            file_bytes: 9 << 20,
            saved_memory_bytes: 8 << 20,
            save_ms: 250,
            paused_after_restore: paused.unwrap_or(false),
        })
    }

    fn restore(
        &self,
        path: &std::path::Path,
        options: RestoreOptions,
    ) -> Result<String, ClientError> {
        let name = self
            .saves
            .lock()
            .expect("lock")
            .get(path)
            .cloned()
            .ok_or_else(|| {
                ClientError::Invalid(format!("{} is not a vmux save file", path.display()))
            })?;
        self.start(&name)?;
        if options.paused == Some(true) {
            self.with(&name, |vm| {
                vm.state = RunState::Paused;
                Ok(())
            })?;
        }
        Ok(name)
    }

    fn managed_save(&self, name: &str, paused: Option<bool>) -> Result<SaveInfo, ClientError> {
        self.running(name)?;
        self.with(name, |vm| {
            vm.state = RunState::Saved;
            Ok(())
        })?;
        Ok(SaveInfo {
            path: format!("/state/vms/{name}/managed.save").into(),
            file_bytes: 9 << 20,
            saved_memory_bytes: 8 << 20,
            save_ms: 250,
            paused_after_restore: paused.unwrap_or(false),
        })
    }

    fn managed_save_remove(&self, name: &str) -> Result<(), ClientError> {
        self.with(name, |vm| {
            if vm.state != RunState::Saved {
                return Err(ClientError::Invalid(format!(
                    "VM '{name}' has no managed save"
                )));
            }
            vm.state = RunState::ShutOff;
            Ok(())
        })
    }

    fn set_memory(&self, name: &str, bytes: u64, scope: ChangeScope) -> Result<(), ClientError> {
        let memory = self.config(name).memory;
        if bytes > memory {
            return Err(ClientError::Invalid(format!(
                "VM '{name}' has {memory} bytes of memory; setmem cannot give it {bytes}"
            )));
        }
        if scope.live {
            if self.live_vcpus(name).is_none() {
                return Err(ClientError::LiveNeedsRunning(name.to_string()));
            }
            self.live_memory
                .lock()
                .expect("lock")
                .insert(name.to_string(), bytes);
        }
        if scope.config {
            self.with(name, |vm| {
                vm.config.current_memory = (bytes < vm.config.memory).then_some(bytes);
                Ok(())
            })?;
        }
        Ok(())
    }

    fn memory_stats(&self, name: &str) -> Result<MemoryStats, ClientError> {
        self.running(name)?;
        let memory = self.config(name).memory;
        let current = self
            .live_memory
            .lock()
            .expect("lock")
            .get(name)
            .copied()
            .unwrap_or(memory);
        Ok(MemoryStats {
            memory_bytes: memory,
            current_bytes: current,
            balloon: Some(BalloonStatus {
                target_bytes: memory - current,
                actual_bytes: memory - current,
                released_bytes: memory - current,
                driver_ready: true,
            }),
            free_bytes: Some(100 << 20),
            available_bytes: Some(150 << 20),
            total_bytes: Some(current),
            disk_caches_bytes: None,
            swap_in_bytes: Some(0),
            swap_out_bytes: Some(0),
            major_faults: Some(7),
            minor_faults: Some(4000),
            updated_at: Some(1_700_000_000),
            rss_bytes: 30 << 20,
        })
    }

    fn force_detach_disk(&self, name: &str, target: &str) -> Result<(), ClientError> {
        self.with(name, |vm| {
            if !matches!(vm.state, RunState::Running | RunState::Paused) {
                return Err(ClientError::LiveNeedsRunning(name.to_string()));
            }
            let before = vm.disks.len();
            vm.disks.retain(|d| d.target != target);
            if vm.disks.len() == before {
                return Err(ClientError::Invalid(format!(
                    "running VM '{name}' has no disk {target}"
                )));
            }
            Ok(())
        })
    }

    fn detach_disk(&self, name: &str, target: &str, scope: ChangeScope) -> Result<(), ClientError> {
        self.with(name, |vm| {
            let running = matches!(vm.state, RunState::Running | RunState::Paused);
            if scope.live && !running {
                return Err(ClientError::LiveNeedsRunning(name.to_string()));
            }
            let live = scope.live.then(|| vm.disks.clone());
            let updated = hotplug::check_detach(&vm.config, target, scope, live.as_deref())?;
            if scope.live {
                vm.disks.retain(|d| d.target != target);
            }
            if let Some(updated) = updated {
                vm.config = updated;
            }
            Ok(())
        })
    }
}

impl FakeHost {
    fn set_vcpus_of(&self, name: &str, count: u32, scope: ChangeScope) -> Result<(), ClientError> {
        self.with(name, |vm| {
            let live = matches!(vm.state, RunState::Running | RunState::Paused);
            if scope.live && !live {
                return Err(ClientError::LiveNeedsRunning(name.to_string()));
            }
            let live_max = scope.live.then_some(vm.config.max_vcpus);
            let updated = hotplug::check_vcpus(&vm.config, count, scope, live_max)?;
            if scope.live {
                vm.vcpus = count;
            }
            if let Some(updated) = updated {
                vm.config = updated;
            }
            Ok(())
        })
    }
}

/// Appends to a shared buffer (the fake console's input side).
pub struct SharedWriter(pub Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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
