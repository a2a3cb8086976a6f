//! An in-memory [`Host`] for tests, benchmarks and demos of the TUI: VMs live in a map, a
//! start is instant, stats are a deterministic function of how often they were sampled, and
//! each console is a tiny line-echoing shell that answers `help`, `cpus`, `mem`, `uptime` and
//! `echo` like the built-in demo guest does.
//!
//! It follows the same rules as the real host (names unique, a running VM cannot be
//! undefined, lifecycle commands need the right state) so that the TUI's error paths can be
//! exercised without vmd. Test hooks (`emit`, `set_stats`, `crash`, `fail_next`,
//! `add_broken`, `break_definition`, and those in `hooks.rs`) let a test play the guest, the
//! host or a user's editor misbehaving. tests/backend_contract.rs runs the same contracts
//! against this fake and the real host.

mod hooks;
mod state;

use super::{
    BrokenVm, ChangeScope, ClientError, Console, Host, RestoreOptions, UndefineOptions, VmState,
    VmStatus, hotplug,
};
use crate::config::{ConfigError, DefinitionError, DiskConfig, DiskSource, VmConfig, format_size};
use crate::protocol::{
    DiskInfo, DiskStats, MemoryStats, PROTOCOL_VERSION, RunState, SaveInfo, VcpuStats, VmInfo,
    VmStats,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Serial history kept per VM, like vmd's ring buffer (bytes).
const HISTORY_BYTES: usize = 1 << 20;
/// Longest input line the fake shell buffers (bytes); longer lines are cut.
const LINE_MAX: usize = 256;
/// The fake shell's prompt: the demo guest's (tests/backend_contract.rs holds them equal).
const PROMPT: &str = "demo$ ";

/// A [`Host`] that keeps everything in memory. Cheap to clone behind an `Arc`.
#[derive(Default)]
pub struct FakeHost {
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    vms: BTreeMap<String, FakeVm>,
    broken: Vec<DefinitionError>,
    next_pid: u32,
    /// Operation name → message of the next failure to report for it.
    failures: HashMap<&'static str, String>,
    /// Save files written by `save`, by path.
    saves: HashMap<PathBuf, state::FakeSave>,
    /// The fake guests ignore eject requests (a guest without hot-plug support).
    deaf_to_ejects: bool,
    /// How the fake guests answer the power button.
    power_button: hooks::PowerButton,
    /// The fake guests print no banner and no prompt when they boot.
    quiet_boot: bool,
}

struct FakeVm {
    config: VmConfig,
    state: RunState,
    reason: Option<String>,
    pid: Option<u32>,
    vcpus: u32,
    boots: u32,
    samples: u64,
    stats_override: Option<VmStats>,
    /// What every `memory_stats` call returns instead of the synthetic numbers.
    memory_stats_override: Option<MemoryStats>,
    console: Arc<FakeConsole>,
    /// Disks of the running VM (the fake guest takes and ejects disks at once).
    disks: Vec<DiskInfo>,
    /// Memory the balloon holds while running, bytes.
    balloon_target: u64,
    /// The managed save: whether it resumes paused (`None`: no managed save).
    managed_save: Option<bool>,
    /// The definition file was broken by hand (the VM keeps running if it runs).
    broken: Option<(DefinitionError, String)>,
    /// Names of its snapshots (an undefine keeps them unless told to drop their metadata).
    snapshots: Vec<String>,
    /// Status polls left until the guest acts on a pressed power button.
    powering_off: Option<u32>,
}

/// Where the fake host pretends a disk's image is.
fn fake_image(disk: &DiskConfig) -> PathBuf {
    match &disk.source {
        DiskSource::Path(path) => path.clone(),
        DiskSource::Volume { pool, volume } => PathBuf::from(format!("/pools/{pool}/{volume}")),
    }
}

/// The disks a fresh boot of `config` has.
fn boot_disks(config: &VmConfig) -> Vec<DiskInfo> {
    let targets = crate::config::assign_targets(&config.disks).unwrap_or_default();
    config
        .disks
        .iter()
        .zip(targets)
        .enumerate()
        .map(|(index, (disk, target))| DiskInfo {
            target,
            path: fake_image(disk),
            read_only: disk.readonly,
            slot: index as u8 + 1,
            removing: false,
            removal_requested_at: None,
        })
        .collect()
}

/// One VM's serial line: history, attached readers and the fake shell's input line.
#[derive(Default)]
struct FakeConsole {
    inner: Mutex<ConsoleInner>,
}

#[derive(Default)]
struct ConsoleInner {
    history: VecDeque<u8>,
    readers: Vec<Sender<Vec<u8>>>,
    line: Vec<u8>,
    /// Facts the shell reports (`cpus`, `mem`), refreshed at each boot.
    vcpus: u32,
    memory: u64,
    uptime_s: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not take every later caller down with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeConsole {
    /// The guest writes `bytes`: keep them in history and hand them to every reader.
    fn emit(&self, bytes: &[u8]) {
        let mut inner = lock(&self.inner);
        inner.history.extend(bytes);
        let excess = inner.history.len().saturating_sub(HISTORY_BYTES);
        inner.history.drain(..excess);
        inner.readers.retain(|tx| tx.send(bytes.to_vec()).is_ok());
    }

    /// Drops every reader: they see end of file, as when vmd exits.
    fn hang_up(&self) {
        lock(&self.inner).readers.clear();
    }

    fn attach(&self, history: bool) -> Receiver<Vec<u8>> {
        let (tx, rx) = channel();
        let mut inner = lock(&self.inner);
        if history && !inner.history.is_empty() {
            let past: Vec<u8> = inner.history.iter().copied().collect();
            // The receiver is alive (we hold it), so this cannot fail.
            let _ = tx.send(past);
        }
        inner.readers.push(tx);
        rx
    }

    fn boot(&self, name: &str, vcpus: u32, memory: u64, quiet: bool) {
        {
            let mut inner = lock(&self.inner);
            inner.vcpus = vcpus;
            inner.memory = memory;
            inner.uptime_s = 0;
            inner.line.clear();
        }
        if quiet {
            return;
        }
        self.emit(
            format!(
                "\x1b[1mvmux demo guest\x1b[0m on {name}: {vcpus} vCPU(s), {} RAM\r\n\
                 type \x1b[32mhelp\x1b[0m for commands\r\n{PROMPT}",
                format_size(memory)
            )
            .as_bytes(),
        );
    }

    /// Guest input: echo it and run complete lines as shell commands.
    fn input(&self, bytes: &[u8]) {
        let mut out = Vec::new();
        for &byte in bytes {
            let command = {
                let mut inner = lock(&self.inner);
                match byte {
                    b'\r' | b'\n' => Some(String::from_utf8_lossy(&inner.line).into_owned()),
                    0x7f | 0x08 => {
                        if inner.line.pop().is_some() {
                            out.extend_from_slice(b"\x08 \x08");
                        }
                        None
                    }
                    0x20..=0x7e => {
                        if inner.line.len() < LINE_MAX {
                            inner.line.push(byte);
                            out.push(byte);
                        }
                        None
                    }
                    _ => None,
                }
            };
            if let Some(command) = command {
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(self.answer(command.trim()).as_bytes());
                out.extend_from_slice(PROMPT.as_bytes());
                lock(&self.inner).line.clear();
            }
        }
        if !out.is_empty() {
            self.emit(&out);
        }
    }

    fn answer(&self, command: &str) -> String {
        let inner = lock(&self.inner);
        let (verb, rest) = command.split_once(' ').unwrap_or((command, ""));
        match verb {
            "" => String::new(),
            "help" => "commands: help cpus mem uptime echo <text>\r\n".into(),
            "cpus" => format!("{} vCPU(s) online\r\n", inner.vcpus),
            "mem" => format!("{} RAM\r\n", format_size(inner.memory)),
            "uptime" => format!("up {} s\r\n", inner.uptime_s),
            "echo" => format!("{rest}\r\n"),
            other => format!("unknown command '{other}'; type help\r\n"),
        }
    }
}

/// Guest output as a blocking reader over the console's channel.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    pending: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.pending.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.pending = chunk;
                    self.pos = 0;
                }
                // The VM stopped: end of file, as when vmd closes the socket.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Guest input: feeds the fake shell.
struct ShellWriter {
    console: Arc<FakeConsole>,
}

impl Write for ShellWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.console.input(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FakeHost {
    /// An empty host (no VMs defined).
    pub fn new() -> FakeHost {
        FakeHost::default()
    }

    /// A host with `configs` defined and shut off.
    pub fn with_vms(configs: impl IntoIterator<Item = VmConfig>) -> FakeHost {
        let host = FakeHost::new();
        for config in configs {
            // Test setup with invalid input is a bug in the test.
            host.define(&config)
                .expect("fake VM definitions must be valid");
        }
        host
    }

    fn inner(&self) -> MutexGuard<'_, FakeState> {
        lock(&self.state)
    }

    /// Plays the guest: `bytes` appear on `name`'s serial console.
    pub fn emit(&self, name: &str, bytes: &[u8]) {
        let console = self.inner().vms.get(name).map(|vm| vm.console.clone());
        if let Some(console) = console {
            console.emit(bytes);
        }
    }

    /// Makes every later `stats` call for `name` return `stats`.
    pub fn set_stats(&self, name: &str, stats: VmStats) {
        if let Some(vm) = self.inner().vms.get_mut(name) {
            vm.stats_override = Some(stats);
        }
    }

    /// The guest faults: the VM becomes `crashed` with `reason` and its consoles end.
    pub fn crash(&self, name: &str, reason: &str) {
        let console = {
            let mut state = self.inner();
            let Some(vm) = state.vms.get_mut(name) else {
                return;
            };
            vm.state = RunState::Crashed;
            vm.reason = Some(reason.to_string());
            vm.pid = None;
            vm.powering_off = None;
            vm.console.clone()
        };
        console.hang_up();
    }

    /// The next call of operation `op` (`"start"`, `"shutdown"`, `"define"`, ...) fails with
    /// `message` as vmd's refusal.
    pub fn fail_next(&self, op: &'static str, message: &str) {
        self.inner().failures.insert(op, message.to_string());
    }

    /// Lists an unusable definition file beside the good ones.
    pub fn add_broken(&self, file: &str, reason: &str) {
        self.add_broken_definition(DefinitionError {
            path: PathBuf::from(file),
            line: None,
            reason: reason.to_string(),
        });
    }

    /// From now on the guests ignore requests to eject a disk (as a guest without PCI
    /// hot-plug support does): a live detach leaves the disk `removing` until it is forced.
    pub fn ignore_ejects(&self) {
        self.inner().deaf_to_ejects = true;
    }

    /// Breaks VM `name`'s definition file as a hand edit would (its text becomes `text`); a
    /// running VM keeps running. A later `update` repairs it.
    pub fn break_definition(&self, name: &str, text: &str, reason: &str) {
        let error = DefinitionError {
            path: PathBuf::from(format!("/fake/vms/{name}.toml")),
            line: Some(1),
            reason: reason.to_string(),
        };
        self.break_definition_with(name, error, text);
    }

    fn injected(&self, op: &'static str, name: &str) -> Result<(), ClientError> {
        match self.inner().failures.remove(op) {
            Some(message) => Err(ClientError::Refused {
                name: name.to_string(),
                message,
            }),
            None => Ok(()),
        }
    }

    /// Runs `f` on VM `name`, refusing unknown names like the definition store does.
    fn with_vm<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut FakeVm, &mut u32) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut state = self.inner();
        let FakeState { vms, next_pid, .. } = &mut *state;
        let vm = vms
            .get_mut(name)
            .ok_or_else(|| ConfigError::UnknownVm(name.to_string()))?;
        f(vm, next_pid)
    }

    fn live(vm: &FakeVm, name: &str) -> Result<(), ClientError> {
        match vm.state {
            RunState::Running | RunState::Paused => Ok(()),
            _ => Err(ClientError::NotRunning(name.to_string())),
        }
    }

    /// Powers the VM off and ends its consoles.
    fn power_off(&self, name: &str) -> Result<(), ClientError> {
        let console = self.with_vm(name, |vm, _| {
            FakeHost::live(vm, name)?;
            vm.state = RunState::ShutOff;
            vm.reason = None;
            vm.pid = None;
            vm.powering_off = None;
            Ok(vm.console.clone())
        })?;
        console.hang_up();
        Ok(())
    }

    fn reboot_vm(&self, name: &str) -> Result<(), ClientError> {
        let quiet = self.inner().quiet_boot;
        let (console, vcpus, memory) = self.with_vm(name, |vm, _| {
            FakeHost::live(vm, name)?;
            vm.powering_off = None;
            vm.boots += 1;
            vm.samples = 0;
            vm.state = RunState::Running;
            vm.vcpus = vm.config.vcpus;
            Ok((vm.console.clone(), vm.vcpus, vm.config.memory))
        })?;
        console.boot(name, vcpus, memory, quiet);
        Ok(())
    }
}

fn status_of(vm: &FakeVm) -> VmStatus {
    let live = matches!(vm.state, RunState::Running | RunState::Paused);
    VmStatus {
        config: vm.config.clone(),
        state: vm.state,
        reason: vm.reason.clone(),
        pid: vm.pid,
        vcpus: live.then_some(vm.vcpus),
    }
}

/// The listing of `vm`: its status, or its broken definition with its live state.
fn listing(vm: &FakeVm) -> Result<VmStatus, BrokenVm> {
    let status = status_of(vm);
    match &vm.broken {
        None => Ok(status),
        Some((error, _)) => Err(BrokenVm {
            name: vm.config.name.clone(),
            error: Box::new(error.clone()),
            live: status.live(),
        }),
    }
}

/// Refuses what needs the definition of a VM whose file is broken, as the store does.
fn definition(vm: &FakeVm) -> Result<(), ClientError> {
    match &vm.broken {
        None => Ok(()),
        Some((error, _)) => Err(ConfigError::BrokenVm {
            name: vm.config.name.clone(),
            source: error.clone(),
        }
        .into()),
    }
}

/// Deterministic stats: a slow wave of CPU use per vCPU and memory touched growing to a
/// plateau, so charts have something to show.
fn synthetic_stats(vm: &FakeVm) -> VmStats {
    let t = vm.samples as f64;
    let vcpus: Vec<VcpuStats> = (0..vm.vcpus)
        .map(|i| {
            let percent = 12.0 + 10.0 * (t * 0.35 + f64::from(i)).sin().abs();
            VcpuStats {
                index: i,
                tid: vm.pid.unwrap_or(0) + 1 + i,
                cpu_time_ns: (t * percent * 1e7) as u64,
                cpu_percent: percent,
                exits: vm.samples * 900,
            }
        })
        .collect();
    let cpu_percent = vcpus.iter().map(|v| v.cpu_percent).sum();
    let touched = (vm.config.memory / 8 + vm.samples * (1 << 20)).min(vm.config.memory);
    VmStats {
        uptime_ms: vm.samples * 1000,
        cpu_percent,
        memory_bytes: vm.config.memory,
        memory_touched_bytes: touched,
        rss_bytes: touched + (14 << 20),
        exits: vm.samples * 900 * u64::from(vm.vcpus),
        exits_per_sec: 900.0 * f64::from(vm.vcpus) + 150.0 * (t * 0.5).cos(),
        serial_out_bytes: vm.samples * 16,
        nics: Vec::new(),
        vcpus,
        disks: synthetic_disks(vm),
        balloon: vm.config.balloon.then_some(crate::protocol::BalloonStatus {
            target_bytes: vm.balloon_target,
            actual_bytes: vm.balloon_target,
            released_bytes: vm.balloon_target,
            driver_ready: true,
        }),
        guest_free_bytes: vm
            .config
            .balloon
            .then_some((vm.config.memory - vm.balloon_target).saturating_sub(touched)),
    }
}

/// One entry per defined disk: steady reads, writes in bursts every few samples.
fn synthetic_disks(vm: &FakeVm) -> Vec<DiskStats> {
    let targets = crate::config::assign_targets(&vm.config.disks).unwrap_or_default();
    targets
        .into_iter()
        .enumerate()
        .map(|(i, target)| {
            let t = vm.samples as f64 + i as f64;
            let read_rate = 512.0 * 1024.0 * (1.0 + (t * 0.3).sin().abs());
            let write_rate = if vm.samples % 5 < 2 {
                2.0 * 1024.0 * 1024.0
            } else {
                0.0
            };
            DiskStats {
                target,
                read_ops: vm.samples * 128,
                read_bytes: vm.samples * (512 << 10),
                write_ops: vm.samples * 200,
                write_bytes: vm.samples * (800 << 10),
                flushes: vm.samples * 2,
                errors: 0,
                average_latency_ns: 80_000,
                read_bytes_per_sec: read_rate,
                write_bytes_per_sec: write_rate,
                read_ops_per_sec: read_rate / 4096.0,
                write_ops_per_sec: write_rate / 4096.0,
            }
        })
        .collect()
}

impl Host for FakeHost {
    fn list(&self) -> Vec<Result<VmStatus, BrokenVm>> {
        let state = self.inner();
        let mut out: Vec<_> = state.vms.values().map(listing).collect();
        out.extend(state.broken.iter().cloned().map(|error| {
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
        }));
        out
    }

    fn status(&self, name: &str) -> Result<VmStatus, ClientError> {
        self.power_button_poll(name);
        self.with_vm(name, |vm, _| {
            definition(vm)?;
            Ok(status_of(vm))
        })
    }

    fn state(&self, name: &str) -> Result<VmState, ClientError> {
        self.power_button_poll(name);
        self.with_vm(name, |vm, _| Ok(status_of(vm).live()))
    }

    fn definition_text(&self, name: &str) -> Result<String, ClientError> {
        self.with_vm(name, |vm, _| match &vm.broken {
            Some((_, text)) => Ok(text.clone()),
            None => toml::to_string(&vm.config)
                .map_err(|e| ClientError::Invalid(format!("cannot write the definition: {e}"))),
        })
    }

    fn info(&self, name: &str) -> Result<VmInfo, ClientError> {
        self.with_vm(name, |vm, _| {
            FakeHost::live(vm, name)?;
            Ok(VmInfo {
                name: name.to_string(),
                state: vm.state,
                pid: vm.pid.unwrap_or(0),
                vcpus: vm.vcpus,
                max_vcpus: vm.config.max_vcpus,
                memory_bytes: vm.config.memory,
                started_at: 1_700_000_000,
                boots: vm.boots,
                protocol: PROTOCOL_VERSION,
                boot_image: None,
                disks: vm.disks.clone(),
            })
        })
    }

    fn stats(&self, name: &str) -> Result<VmStats, ClientError> {
        self.injected("stats", name)?;
        let (stats, console, uptime) = self.with_vm(name, |vm, _| {
            FakeHost::live(vm, name)?;
            if vm.state == RunState::Running {
                vm.samples += 1;
            }
            let stats = vm
                .stats_override
                .clone()
                .unwrap_or_else(|| synthetic_stats(vm));
            Ok((stats, vm.console.clone(), vm.samples))
        })?;
        lock(&console.inner).uptime_s = uptime;
        Ok(stats)
    }

    fn define(&self, config: &VmConfig) -> Result<(), ClientError> {
        self.injected("define", &config.name)?;
        config
            .validate()
            .map_err(|e| ClientError::Config(ConfigError::Invalid(e)))?;
        let mut state = self.inner();
        if state.vms.contains_key(&config.name) {
            return Err(ConfigError::VmExists(config.name.clone()).into());
        }
        state.vms.insert(
            config.name.clone(),
            FakeVm {
                config: config.clone(),
                state: RunState::ShutOff,
                reason: None,
                pid: None,
                vcpus: config.vcpus,
                boots: 0,
                samples: 0,
                stats_override: None,
                memory_stats_override: None,
                console: Arc::default(),
                disks: Vec::new(),
                balloon_target: 0,
                managed_save: None,
                broken: None,
                snapshots: Vec::new(),
                powering_off: None,
            },
        );
        Ok(())
    }

    fn update(&self, config: &VmConfig) -> Result<(), ClientError> {
        self.injected("update", &config.name)?;
        config
            .validate()
            .map_err(|e| ClientError::Config(ConfigError::Invalid(e)))?;
        self.with_vm(&config.name, |vm, _| {
            vm.config = config.clone();
            vm.broken = None;
            Ok(())
        })
    }

    fn update_from(&self, original: &VmConfig, config: &VmConfig) -> Result<(), ClientError> {
        self.injected("update", &config.name)?;
        config
            .validate()
            .map_err(|e| ClientError::Config(ConfigError::Invalid(e)))?;
        self.with_vm(&config.name, |vm, _| {
            if vm.config != *original {
                return Err(ClientError::Config(ConfigError::Changed(
                    original.name.clone(),
                )));
            }
            vm.config = config.clone();
            Ok(())
        })
    }

    fn undefine_with(&self, name: &str, options: UndefineOptions) -> Result<(), ClientError> {
        self.injected("undefine", name)?;
        self.with_vm(name, |vm, _| match vm.state {
            RunState::Running | RunState::Paused => Err(ClientError::AlreadyRunning(name.into())),
            _ if !vm.snapshots.is_empty() && !options.snapshots_metadata => {
                Err(ClientError::HasSnapshots {
                    name: name.to_string(),
                    snapshots: vm.snapshots.clone(),
                })
            }
            _ => Ok(()),
        })?;
        self.inner().vms.remove(name);
        Ok(())
    }

    fn set_autostart(&self, name: &str, enabled: bool) -> Result<(), ClientError> {
        self.injected("autostart", name)?;
        self.with_vm(name, |vm, _| {
            definition(vm)?;
            vm.config.autostart = enabled;
            Ok(())
        })
    }

    fn start(&self, name: &str) -> Result<(), ClientError> {
        if let Err(ClientError::Refused { name, message }) = self.injected("start", name) {
            return Err(ClientError::StartFailed { name, message });
        }
        let quiet = self.inner().quiet_boot;
        let (console, vcpus, memory) = self.with_vm(name, |vm, next_pid| {
            if matches!(vm.state, RunState::Running | RunState::Paused) {
                return Err(ClientError::AlreadyRunning(name.into()));
            }
            definition(vm)?;
            *next_pid += 1;
            vm.pid = Some(4000 + *next_pid);
            // A managed save resumes where it was.
            vm.state = match vm.managed_save.take() {
                Some(true) => RunState::Paused,
                _ => RunState::Running,
            };
            vm.balloon_target =
                vm.config.memory - vm.config.current_memory.unwrap_or(vm.config.memory);
            vm.reason = None;
            vm.vcpus = vm.config.vcpus;
            vm.disks = boot_disks(&vm.config);
            vm.boots = 1;
            vm.samples = 0;
            vm.powering_off = None;
            Ok((vm.console.clone(), vm.vcpus, vm.config.memory))
        })?;
        console.boot(name, vcpus, memory, quiet);
        Ok(())
    }

    fn shutdown(&self, name: &str) -> Result<(), ClientError> {
        self.injected("shutdown", name)?;
        self.press_power_button(name)
    }

    fn destroy(&self, name: &str) -> Result<(), ClientError> {
        self.injected("destroy", name)?;
        self.power_off(name)
    }

    fn reboot(&self, name: &str) -> Result<(), ClientError> {
        self.injected("reboot", name)?;
        self.reboot_vm(name)
    }

    fn reset(&self, name: &str) -> Result<(), ClientError> {
        self.injected("reset", name)?;
        self.reboot_vm(name)
    }

    fn suspend(&self, name: &str) -> Result<(), ClientError> {
        self.injected("suspend", name)?;
        self.with_vm(name, |vm, _| match vm.state {
            RunState::Running => {
                vm.state = RunState::Paused;
                Ok(())
            }
            RunState::Paused => Err(ClientError::Refused {
                name: name.into(),
                message: "the VM is already paused; resume it first".into(),
            }),
            _ => Err(ClientError::NotRunning(name.into())),
        })
    }

    fn resume(&self, name: &str) -> Result<(), ClientError> {
        self.injected("resume", name)?;
        self.with_vm(name, |vm, _| match vm.state {
            RunState::Paused => {
                vm.state = RunState::Running;
                Ok(())
            }
            RunState::Running => Err(ClientError::Refused {
                name: name.into(),
                message: "the VM is not paused".into(),
            }),
            _ => Err(ClientError::NotRunning(name.into())),
        })
    }

    fn console(&self, name: &str, history: bool) -> Result<Console, ClientError> {
        self.injected("console", name)?;
        let console = self.with_vm(name, |vm, _| {
            FakeHost::live(vm, name)?;
            Ok(vm.console.clone())
        })?;
        let rx = console.attach(history);
        Ok(Console {
            output: Box::new(ChannelReader {
                rx,
                pending: Vec::new(),
                pos: 0,
            }),
            input: Box::new(ShellWriter { console }),
        })
    }

    fn set_vcpus(&self, name: &str, count: u32, scope: ChangeScope) -> Result<(), ClientError> {
        self.injected("set_vcpus", name)?;
        self.with_vm(name, |vm, _| {
            definition(vm)?;
            let live_max = if scope.live {
                if !matches!(vm.state, RunState::Running | RunState::Paused) {
                    return Err(ClientError::LiveNeedsRunning(name.to_string()));
                }
                Some(vm.config.max_vcpus)
            } else {
                None
            };
            let updated = hotplug::check_vcpus(&vm.config, count, scope, live_max)?;
            if scope.live {
                // The fake guest onlines and ejects at once.
                vm.vcpus = count;
                lock(&vm.console.inner).vcpus = count;
            }
            if let Some(updated) = updated {
                vm.config = updated;
            }
            Ok(())
        })
    }

    fn attach_disk(
        &self,
        name: &str,
        disk: &DiskConfig,
        scope: ChangeScope,
    ) -> Result<String, ClientError> {
        self.injected("attach_disk", name)?;
        let image = fake_image(disk);
        let other_vms: Vec<(String, bool)> = self
            .inner()
            .vms
            .values()
            .filter(|vm| vm.config.name != name)
            .filter(|vm| {
                vm.config.disks.iter().any(|d| fake_image(d) == image)
                    || vm.disks.iter().any(|d| d.path == image)
            })
            .map(|vm| (vm.config.name.clone(), FakeHost::live(vm, name).is_ok()))
            .collect();
        self.with_vm(name, |vm, _| {
            definition(vm)?;
            let live = if scope.live {
                FakeHost::live(vm, name).map_err(|_| ClientError::LiveNeedsRunning(name.into()))?;
                Some(vm.disks.clone())
            } else {
                None
            };
            let this_vm = boot_disks(&vm.config)
                .into_iter()
                .chain(vm.disks.iter().cloned())
                .find(|d| d.path == image)
                .map(|d| d.target);
            let image_use = hotplug::ImageUse {
                this_vm,
                other_vms,
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
                let slot = (1..32u8)
                    .find(|s| vm.disks.iter().all(|d| d.slot != *s))
                    .unwrap_or(31);
                vm.disks.push(DiskInfo {
                    target: plan.target.clone(),
                    path: image.clone(),
                    read_only: disk.readonly,
                    slot,
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

    fn save(&self, name: &str, path: &Path, paused: Option<bool>) -> Result<SaveInfo, ClientError> {
        self.injected("save", name)?;
        self.save_vm(name, path, paused)
    }

    fn restore(&self, path: &Path, options: RestoreOptions) -> Result<String, ClientError> {
        self.restore_vm(path, options)
    }

    fn managed_save(&self, name: &str, paused: Option<bool>) -> Result<SaveInfo, ClientError> {
        self.injected("managed_save", name)?;
        self.managed_save_vm(name, paused)
    }

    fn managed_save_remove(&self, name: &str) -> Result<(), ClientError> {
        self.remove_managed_save(name)
    }

    fn set_memory(&self, name: &str, bytes: u64, scope: ChangeScope) -> Result<(), ClientError> {
        self.injected("set_memory", name)?;
        self.set_memory_of(name, bytes, scope)
    }

    fn memory_stats(&self, name: &str) -> Result<MemoryStats, ClientError> {
        self.memory_stats_of(name)
    }

    fn force_detach_disk(&self, name: &str, target: &str) -> Result<(), ClientError> {
        self.injected("detach_disk", name)?;
        self.with_vm(name, |vm, _| {
            FakeHost::live(vm, name).map_err(|_| ClientError::LiveNeedsRunning(name.into()))?;
            let before = vm.disks.len();
            vm.disks.retain(|d| d.target != target);
            if vm.disks.len() == before {
                return Err(ClientError::Invalid(format!(
                    "running VM '{name}' has no disk {target}; `vmux info {name}` lists its disks"
                )));
            }
            Ok(())
        })
    }

    fn detach_disk(&self, name: &str, target: &str, scope: ChangeScope) -> Result<(), ClientError> {
        self.injected("detach_disk", name)?;
        let deaf = self.inner().deaf_to_ejects;
        self.with_vm(name, |vm, _| {
            definition(vm)?;
            let live = if scope.live {
                FakeHost::live(vm, name).map_err(|_| ClientError::LiveNeedsRunning(name.into()))?;
                Some(vm.disks.clone())
            } else {
                None
            };
            let updated = hotplug::check_detach(&vm.config, target, scope, live.as_deref())?;
            if scope.live && deaf {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                for disk in vm.disks.iter_mut().filter(|d| d.target == target) {
                    disk.removing = true;
                    disk.removal_requested_at = Some(now);
                }
            } else if scope.live {
                vm.disks.retain(|d| d.target != target);
            }
            if let Some(updated) = updated {
                vm.config = updated;
            }
            Ok(())
        })
    }
}

/// For the fake's own tests (here and in its submodules).
#[cfg(test)]
impl FakeHost {
    /// A host whose demo VM `web` runs.
    fn running_web() -> FakeHost {
        let host = FakeHost::with_vms([VmConfig::new("web", crate::config::BootConfig::Demo)]);
        host.start("web").expect("start");
        host
    }
}

#[cfg(test)]
mod tests {
    // What the fake shares with the real host is checked against both by the contract tests
    // (tests/backend_contract.rs); here only the fake's own test hooks.
    use super::*;
    use crate::config::BootConfig;

    #[test]
    fn the_fake_fails_an_injected_operation_once() {
        let host = FakeHost::with_vms([VmConfig::new("a", BootConfig::Demo)]);
        host.fail_next("start", "no KVM");
        let err = host.start("a").expect_err("must fail");
        assert!(err.to_string().contains("no KVM"), "{err}");
        host.start("a").expect("second start works");
    }
}
