//! [`LocalHost`]: the real [`Host`], over the definition store on disk and each running VM's
//! vmd control socket.
//!
//! State without a vmd to ask comes from `state.json` and the pid lock ([`classify`]); a VM
//! whose vmd died is reported as crashed, its stale socket is removed on sight, and the qcow2
//! images it had open are repaired ([`crash_repair`]). Every
//! socket exchange is bounded by a timeout so a wedged vmd cannot hang the TUI.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::classify::{VmState, classify};
use super::conn::ControlConn;
use super::crash_repair;
use super::define_check;
use super::host_check;
use super::hotplug::ImageUse;
use super::spawn::{SpawnRequest, spawn_vmd};
use super::{
    BrokenVm, ChangeScope, ClientError, Console, Host, RestoreOptions, UndefineOptions, VmStatus,
    hotplug,
};
use crate::config::{ConfigError, DiskConfig, DiskSource, Paths, Store, VmConfig, VmdFiles};
use crate::protocol::{
    Command, DiskInfo, MemoryStats, ReplyResult, RunState, SaveInfo, VmInfo, VmStats,
};
use crate::storage::format::canonical;
use crate::storage::{SnapshotManager, StorageError, StorageManager};
use crate::vmd::pidfile::{self, Liveness};
use crate::vmd::state_file::StateFile;
use crate::vmd::{RestoreMode, StartMode};

/// Environment variable naming the executable to run as vmd (tests that use the library
/// directly point it at the `vmux` binary).
pub const VMD_EXE_ENV: &str = "VMUX_VMD_EXE";
/// Default limit for one request/reply exchange with vmd.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default limit for vmd to report readiness after being spawned.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `destroy` waits for vmd to exit.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(10);

/// The VMs of this host, as the current user sees them.
#[derive(Debug, Clone)]
pub struct LocalHost {
    pub(super) store: Store,
    /// Set when built on an explicit home: passed to vmd as `VMUX_HOME`.
    home: Option<PathBuf>,
    vmd_exe: Option<PathBuf>,
    request_timeout: Duration,
    start_timeout: Duration,
}

impl LocalHost {
    /// A host over the directories `VMUX_HOME` / XDG select.
    pub fn from_env() -> Result<LocalHost, ClientError> {
        Ok(LocalHost::with_paths(Paths::from_env()?, None))
    }

    /// A host with everything under `home` (what `VMUX_HOME=home` selects); vmd processes it
    /// starts get the same home.
    pub fn with_home(home: &Path) -> LocalHost {
        LocalHost::with_paths(Paths::under(home), Some(home.to_path_buf()))
    }

    pub(crate) fn with_paths(paths: Paths, home: Option<PathBuf>) -> LocalHost {
        LocalHost {
            store: Store::new(paths),
            home,
            vmd_exe: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            start_timeout: DEFAULT_START_TIMEOUT,
        }
    }

    /// Runs `exe` as vmd instead of [`VMD_EXE_ENV`] or the current executable.
    pub fn with_vmd_exe(mut self, exe: &Path) -> LocalHost {
        self.vmd_exe = Some(exe.to_path_buf());
        self
    }

    /// Changes the request timeout (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn with_request_timeout(mut self, timeout: Duration) -> LocalHost {
        self.request_timeout = timeout;
        self
    }

    /// Changes how long `start` waits for vmd to report (default [`DEFAULT_START_TIMEOUT`]).
    pub fn with_start_timeout(mut self, timeout: Duration) -> LocalHost {
        self.start_timeout = timeout;
        self
    }

    /// The directory roots.
    pub fn paths(&self) -> &Paths {
        self.store.paths()
    }

    fn files(&self, name: &str) -> VmdFiles {
        self.store.paths().vmd_files(name)
    }

    fn vmd_exe(&self) -> io::Result<PathBuf> {
        if let Some(exe) = &self.vmd_exe {
            return Ok(exe.clone());
        }
        if let Some(exe) = std::env::var_os(VMD_EXE_ENV).filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(exe));
        }
        std::env::current_exe()
    }

    /// After a vmd died (called under the probe's lock): its socket goes, and the qcow2
    /// images it had open are repaired ([`crash_repair`]).
    fn clean_up_dead(&self, name: &str, files: &VmdFiles) {
        remove_stale(&files.socket);
        crash_repair::after_vmd_died(self.paths(), name, &files.state);
    }

    /// The VM's live state, removing the socket of a vmd found dead and repairing its images.
    pub(super) fn observe(&self, name: &str) -> VmState {
        let files = self.files(name);
        // Probe before reading: vmd writes its final state before it releases the lock, so a
        // "dead" probe followed by a "running" file means vmd died without saying so.
        let live = pidfile::probe(&files.pid, || self.clean_up_dead(name, &files))
            .unwrap_or(Liveness::Dead);
        let file = StateFile::read(&files.state).unwrap_or_else(|e| {
            log::warn!("ignoring unreadable {}: {e}", files.state.display());
            None
        });
        let mut seen = classify(file.as_ref(), live);
        if !seen.is_active() && self.managed_save_path(name).is_file() {
            seen.state = RunState::Saved;
        }
        seen
    }

    fn status_of(&self, config: VmConfig) -> VmStatus {
        let seen = self.observe(&config.name);
        VmStatus {
            config,
            state: seen.state,
            reason: seen.reason,
            pid: seen.pid,
            vcpus: seen.vcpus,
        }
    }

    /// `config` with the format of every disk whose image exists recorded (from the pool's
    /// record or the file name, checked against the content; never guessed from it).
    fn with_disk_formats(&self, config: &VmConfig) -> Result<VmConfig, ClientError> {
        let mut config = config.clone();
        StorageManager::new(self.paths().clone())
            .record_disk_formats(&mut config)
            .map_err(|e| ClientError::Invalid(crate::vmd::error_chain(&e)))?;
        Ok(config)
    }

    pub(super) fn known(&self, name: &str) -> Result<(), ClientError> {
        crate::config::validate_name(name).map_err(ConfigError::Invalid)?;
        if !self.store.exists(name) {
            return Err(ConfigError::UnknownVm(name.to_string()).into());
        }
        Ok(())
    }

    fn connect(&self, name: &str) -> Result<ControlConn, ClientError> {
        self.known(name)?;
        ControlConn::connect(name, &self.files(name).socket, self.request_timeout)
    }

    /// Live snapshot: switches running VM `name`'s disks to new images (see
    /// [`Command::SwitchDisks`]).
    pub fn switch_disks(
        &self,
        name: &str,
        disks: Vec<crate::protocol::DiskSwitch>,
    ) -> Result<(), ClientError> {
        self.command(name, Command::SwitchDisks { disks })
            .map(|_| ())
    }

    pub(super) fn command(
        &self,
        name: &str,
        command: Command,
    ) -> Result<Option<ReplyResult>, ClientError> {
        self.connect(name)?.request(command)
    }

    /// Waits until no vmd holds the VM's lock.
    pub(super) fn wait_for_exit(&self, name: &str, timeout: Duration) -> Result<(), ClientError> {
        let files = self.files(name);
        let deadline = Instant::now() + timeout;
        loop {
            let live = pidfile::probe(&files.pid, || self.clean_up_dead(name, &files));
            match live {
                Ok(Liveness::Dead) => return Ok(()),
                Ok(Liveness::Alive { pid }) if Instant::now() >= deadline => {
                    let pid = pid.map_or_else(|| "?".to_string(), |p| p.to_string());
                    return Err(ClientError::Refused {
                        name: name.to_string(),
                        message: format!(
                            "vmd (pid {pid}) did not exit within {} s; stop it with `kill -9 {pid}`",
                            timeout.as_secs()
                        ),
                    });
                }
                Ok(Liveness::Alive { .. }) => std::thread::sleep(Duration::from_millis(10)),
                Err(source) => {
                    return Err(ClientError::Io {
                        name: name.to_string(),
                        socket: files.socket.display().to_string(),
                        source,
                    });
                }
            }
        }
    }
}

impl LocalHost {
    /// Spawns vmd for `name` (defined as `config`) in `mode` and waits for it to run.
    pub(super) fn spawn(
        &self,
        name: &str,
        config: &VmConfig,
        mode: &StartMode,
    ) -> Result<(), ClientError> {
        let failed = |message: String| ClientError::StartFailed {
            name: name.to_string(),
            message,
        };
        // Definitions written before vmux recorded disk formats get them now, from the
        // pools' records or the file names (never from content); see docs/storage.md.
        let recorded;
        let config = if config.disks.iter().any(|d| d.format.is_none()) {
            let storage = StorageManager::new(self.paths().clone());
            recorded = self.store.update(name, |config| {
                storage
                    .record_disk_formats(config)
                    .map_err(|e| failed(crate::vmd::error_chain(&e)))?;
                Ok::<_, ClientError>(config.clone())
            })?;
            &recorded
        } else {
            config
        };
        host_check::check(config).map_err(failed)?;
        let exe = self
            .vmd_exe()
            .map_err(|e| failed(format!("cannot find the vmux executable: {e}")))?;
        let files = self.files(name);
        spawn_vmd(&SpawnRequest {
            exe: &exe,
            name,
            home: self.home.as_deref(),
            pid_file: &files.pid,
            log_file: &files.log,
            socket: &files.socket,
            timeout: self.start_timeout,
            mode,
        })
        .map_err(|e| failed(crate::vmd::error_chain(&e)))
    }

    /// The running VMs that have `image` open now (a boot disk or one attached live), with
    /// the disk's guest name: what a refusal to change an image in use names.
    pub fn running_users(&self, image: &Path) -> Vec<(String, String)> {
        let key = canonical(image);
        self.list()
            .into_iter()
            .filter_map(|entry| match entry {
                Ok(status) if status.live().is_active() => Some(status.config.name),
                Err(broken) if broken.live.is_active() => Some(broken.name),
                _ => None,
            })
            .filter_map(|vm| {
                let info = self.info(&vm).ok()?;
                let disk = info.disks.iter().find(|d| canonical(&d.path) == key)?;
                Some((vm, disk.target.clone()))
            })
            .collect()
    }

    /// The running VM's disks for a live change (refusing a VM that does not run), or `None`.
    fn live_disks(
        &self,
        name: &str,
        scope: ChangeScope,
    ) -> Result<Option<Vec<DiskInfo>>, ClientError> {
        if !scope.live {
            return Ok(None);
        }
        if !self.observe(name).is_active() {
            return Err(ClientError::LiveNeedsRunning(name.to_string()));
        }
        Ok(Some(self.info(name)?.disks))
    }

    /// Where else `image` is used: this VM's definition and running disks, other VMs'
    /// definitions and running disks, backing-file users, and whether it can be written.
    fn image_use(
        &self,
        config: &VmConfig,
        image: &std::path::Path,
        storage: &StorageManager,
        live: Option<&[DiskInfo]>,
    ) -> ImageUse {
        let key = canonical(image);
        let usage = storage.usage();
        let defined_here = crate::config::assign_targets(&config.disks)
            .unwrap_or_default()
            .into_iter()
            .zip(&config.disks)
            .find(|(_, d)| {
                storage
                    .resolve_disk(d)
                    .is_ok_and(|path| canonical(&path) == key)
            })
            .map(|(target, _)| target);
        let live_here = live
            .unwrap_or_default()
            .iter()
            .find(|d| canonical(&d.path) == key)
            .map(|d| d.target.clone());
        let mut other_vms: Vec<(String, bool)> = usage
            .vms_using(image)
            .into_iter()
            .filter(|u| u.vm != config.name)
            .map(|u| (u.vm, u.running))
            .collect();
        // Disks attached live only are in no definition: ask the other running VMs.
        // A running VM whose definition is broken still holds its images.
        for entry in self.list() {
            let (vm, live) = match &entry {
                Ok(status) => (&status.config.name, status.live().is_active()),
                Err(broken) => (&broken.name, broken.live.is_active()),
            };
            if vm == &config.name || !live || other_vms.iter().any(|o| &o.0 == vm) {
                continue;
            }
            let uses = self
                .info(vm)
                .is_ok_and(|info| info.disks.iter().any(|d| canonical(&d.path) == key));
            if uses {
                other_vms.push((vm.clone(), true));
            }
        }
        ImageUse {
            this_vm: defined_here.or(live_here),
            other_vms,
            overlays: usage.overlays_of(image),
            writable: nix::unistd::access(image, nix::unistd::AccessFlags::W_OK).is_ok(),
            read_only_pool: None,
        }
    }
}

/// The image file of `disk`, and the pool's name when the disk is a volume of a pool this user
/// cannot write (a read-only pool: its volumes can only be attached read-only, which the
/// checks enforce).
fn resolve_image(
    storage: &StorageManager,
    disk: &DiskConfig,
) -> Result<(std::path::PathBuf, Option<String>), ClientError> {
    let invalid = |e: &StorageError| ClientError::Invalid(crate::vmd::error_chain(e));
    match storage.resolve_disk(disk) {
        Ok(path) => Ok((path, None)),
        Err(StorageError::PoolDirNotWritable { pool, path: dir }) if dir.is_dir() => {
            let DiskSource::Volume { volume, .. } = &disk.source else {
                return Err(ClientError::Invalid(format!(
                    "storage pool '{pool}' is not usable"
                )));
            };
            let image = dir.join(volume);
            if !image.is_file() {
                return Err(invalid(&StorageError::UnknownVolume {
                    pool,
                    volume: volume.clone(),
                }));
            }
            Ok((image, Some(pool)))
        }
        Err(e) => Err(invalid(&e)),
    }
}

/// Removes a socket whose vmd is gone (called while holding the probe lock).
fn remove_stale(socket: &Path) {
    if let Err(e) = fs::remove_file(socket)
        && e.kind() != io::ErrorKind::NotFound
    {
        log::warn!("cannot remove stale socket {}: {e}", socket.display());
    }
}

pub(super) fn unexpected(name: &str, what: &str) -> ClientError {
    ClientError::Protocol {
        name: name.to_string(),
        detail: format!("the reply carries no {what}"),
    }
}

impl Host for LocalHost {
    fn list(&self) -> Vec<Result<VmStatus, BrokenVm>> {
        self.store
            .list()
            .into_iter()
            .map(|entry| {
                entry.map(|config| self.status_of(config)).map_err(|error| {
                    let name = error
                        .path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    // A stem that is no VM name cannot have a vmd (or a socket path).
                    let live = if crate::config::validate_name(&name).is_ok() {
                        self.observe(&name)
                    } else {
                        super::classify::classify(None, Liveness::Dead)
                    };
                    BrokenVm {
                        name,
                        error: Box::new(error),
                        live,
                    }
                })
            })
            .collect()
    }

    fn status(&self, name: &str) -> Result<VmStatus, ClientError> {
        Ok(self.status_of(self.store.load(name)?))
    }

    fn state(&self, name: &str) -> Result<super::VmState, ClientError> {
        self.known(name)?;
        Ok(self.observe(name))
    }

    fn definition_text(&self, name: &str) -> Result<String, ClientError> {
        Ok(self.store.text(name)?)
    }

    fn info(&self, name: &str) -> Result<VmInfo, ClientError> {
        match self.command(name, Command::Info)? {
            Some(ReplyResult::Info(info)) => Ok(*info),
            _ => Err(unexpected(name, "info")),
        }
    }

    fn stats(&self, name: &str) -> Result<VmStats, ClientError> {
        match self.command(name, Command::Stats)? {
            Some(ReplyResult::Stats(stats)) => Ok(*stats),
            _ => Err(unexpected(name, "stats")),
        }
    }

    fn define(&self, config: &VmConfig) -> Result<(), ClientError> {
        config.validate().map_err(ConfigError::Invalid)?;
        if self.store.exists(&config.name) {
            return Err(ConfigError::VmExists(config.name.clone()).into());
        }
        let storage = StorageManager::new(self.paths().clone());
        define_check::check(config, None, &storage).map_err(ClientError::Invalid)?;
        let config = self.with_disk_formats(config)?;
        Ok(self.store.create(&config)?)
    }

    fn update(&self, config: &VmConfig) -> Result<(), ClientError> {
        self.known(&config.name)?;
        config.validate().map_err(ConfigError::Invalid)?;
        // A broken file has nothing trustworthy to compare with: check everything.
        let previous = self.store.load(&config.name).ok();
        let storage = StorageManager::new(self.paths().clone());
        define_check::check(config, previous.as_ref(), &storage).map_err(ClientError::Invalid)?;
        let config = self.with_disk_formats(config)?;
        Ok(self.store.save(&config)?)
    }

    fn update_from(&self, original: &VmConfig, config: &VmConfig) -> Result<(), ClientError> {
        self.known(&config.name)?;
        config.validate().map_err(ConfigError::Invalid)?;
        let storage = StorageManager::new(self.paths().clone());
        define_check::check(config, Some(original), &storage).map_err(ClientError::Invalid)?;
        let config = self.with_disk_formats(config)?;
        Ok(self.store.replace(original, &config)?)
    }

    fn undefine_with(&self, name: &str, options: UndefineOptions) -> Result<(), ClientError> {
        self.known(name)?;
        if self.observe(name).is_active() {
            return Err(ClientError::AlreadyRunning(name.to_string()));
        }
        let snapshots = SnapshotManager::new(self.paths().clone());
        let metadata_error = |op, source| ClientError::SnapshotMetadata {
            name: name.to_string(),
            op,
            source: Box::new(source),
        };
        let names = snapshots
            .names(name)
            .map_err(|source| metadata_error("read", source))?;
        if !names.is_empty() && !options.snapshots_metadata {
            return Err(ClientError::HasSnapshots {
                name: name.to_string(),
                snapshots: names,
            });
        }
        // Metadata first: if that fails the definition is still there to retry with, and a
        // leftover empty folder must not greet a future VM of the same name.
        snapshots
            .remove_metadata(name)
            .map_err(|source| metadata_error("remove", source))?;
        self.store.remove(name)?;
        // State and logs belong to the definition; a future VM of that name starts clean.
        let dir = self.files(name).dir;
        if let Err(e) = fs::remove_dir_all(&dir)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("cannot remove {}: {e}", dir.display());
        }
        Ok(())
    }

    fn set_autostart(&self, name: &str, enabled: bool) -> Result<(), ClientError> {
        self.store.update(name, |config| {
            config.autostart = enabled;
            Ok::<_, ClientError>(())
        })
    }

    fn start(&self, name: &str) -> Result<(), ClientError> {
        let config = self.store.load(name)?;
        if self.observe(name).is_active() {
            return Err(ClientError::AlreadyRunning(name.to_string()));
        }
        let managed = self.managed_save_path(name);
        if !managed.is_file() {
            return self.spawn(name, &config, &StartMode::Boot);
        }
        let mode = StartMode::Restore(RestoreMode {
            file: managed,
            paused: None,
            force: false,
            discard: true,
        });
        self.spawn(name, &config, &mode).map_err(|e| match e {
            ClientError::StartFailed { name, message } => ClientError::StartFailed {
                message: format!(
                    "{message} (it was resuming its managed save; discard that with `vmux \
                     managedsave-remove {name}` to boot it afresh)"
                ),
                name,
            },
            other => other,
        })
    }

    fn shutdown(&self, name: &str) -> Result<(), ClientError> {
        self.command(name, Command::Shutdown).map(drop)
    }

    fn destroy(&self, name: &str) -> Result<(), ClientError> {
        self.command(name, Command::Destroy)?;
        self.wait_for_exit(name, DESTROY_TIMEOUT)
    }

    fn reboot(&self, name: &str) -> Result<(), ClientError> {
        self.command(name, Command::Reboot).map(drop)
    }

    fn reset(&self, name: &str) -> Result<(), ClientError> {
        self.command(name, Command::Reset).map(drop)
    }

    fn suspend(&self, name: &str) -> Result<(), ClientError> {
        self.command(name, Command::Pause).map(drop)
    }

    fn resume(&self, name: &str) -> Result<(), ClientError> {
        self.command(name, Command::Resume).map(drop)
    }

    fn console(&self, name: &str, history: bool) -> Result<Console, ClientError> {
        self.connect(name)?.into_console(history)
    }

    fn set_vcpus(&self, name: &str, count: u32, scope: ChangeScope) -> Result<(), ClientError> {
        // Held from the read to the write, so a concurrent change is not lost.
        let definitions = self.store.lock()?;
        let config = definitions.load(name)?;
        let live_max = if scope.live {
            if !self.observe(name).is_active() {
                return Err(ClientError::LiveNeedsRunning(name.to_string()));
            }
            Some(self.info(name)?.max_vcpus)
        } else {
            None
        };
        let updated = hotplug::check_vcpus(&config, count, scope, live_max)?;
        if scope.live {
            self.command(name, Command::SetVcpus { count })?;
        }
        if let Some(updated) = updated {
            definitions.save(&updated)?;
        }
        Ok(())
    }

    fn attach_disk(
        &self,
        name: &str,
        disk: &DiskConfig,
        scope: ChangeScope,
    ) -> Result<String, ClientError> {
        // Held from the read to the write, so a concurrent change is not lost.
        let definitions = self.store.lock()?;
        let config = definitions.load(name)?;
        let live = self.live_disks(name, scope)?;
        let storage = StorageManager::new(self.paths().clone());
        let (image, read_only_pool) = resolve_image(&storage, disk)?;
        // The format is decided now and recorded, never guessed from content later.
        let mut disk = disk.clone();
        storage
            .record_disk_formats_of(std::slice::from_mut(&mut disk))
            .map_err(|e| ClientError::Invalid(crate::vmd::error_chain(&e)))?;
        let disk = &disk;
        let mut image_use = self.image_use(&config, &image, &storage, live.as_deref());
        image_use.read_only_pool = read_only_pool;
        let plan =
            hotplug::check_attach(&config, disk, &image, scope, live.as_deref(), &image_use)?;
        if scope.live {
            let command = Command::AttachDisk {
                path: image,
                target: Some(plan.target.clone()),
                read_only: disk.readonly,
                serial: disk.serial.clone(),
                format: disk.format,
                allow_backing: disk.allow_backing.clone(),
            };
            match self.command(name, command)? {
                Some(ReplyResult::Disk(_)) => {}
                _ => return Err(unexpected(name, "disk")),
            }
        }
        if let Some(updated) = plan.updated {
            definitions.save(&updated)?;
        }
        Ok(plan.target)
    }

    fn save(&self, name: &str, path: &Path, paused: Option<bool>) -> Result<SaveInfo, ClientError> {
        self.save_vm(name, path, paused)
    }

    fn restore(&self, path: &Path, options: RestoreOptions) -> Result<String, ClientError> {
        self.restore_vm(path, options)
    }

    fn managed_save(&self, name: &str, paused: Option<bool>) -> Result<SaveInfo, ClientError> {
        self.known(name)?;
        let path = self.managed_save_path(name);
        self.save_vm(name, &path, paused)
    }

    fn managed_save_remove(&self, name: &str) -> Result<(), ClientError> {
        self.remove_managed_save(name)
    }

    fn set_memory(&self, name: &str, bytes: u64, scope: ChangeScope) -> Result<(), ClientError> {
        self.set_memory_of(name, bytes, scope)
    }

    fn memory_stats(&self, name: &str) -> Result<MemoryStats, ClientError> {
        match self.command(name, Command::MemoryStats)? {
            Some(ReplyResult::Memory(stats)) => Ok(*stats),
            _ => Err(unexpected(name, "memory statistics")),
        }
    }

    fn force_detach_disk(&self, name: &str, target: &str) -> Result<(), ClientError> {
        let live = self
            .live_disks(name, ChangeScope::LIVE)?
            .unwrap_or_default();
        if !live.iter().any(|d| d.target == target) {
            return Err(ClientError::Invalid(format!(
                "running VM '{name}' has no disk {target}; `vmux info {name}` lists its disks"
            )));
        }
        self.command(
            name,
            Command::DetachDisk {
                target: target.to_string(),
                force: true,
            },
        )
        .map(drop)
    }

    fn detach_disk(&self, name: &str, target: &str, scope: ChangeScope) -> Result<(), ClientError> {
        let definitions = self.store.lock()?;
        let config = definitions.load(name)?;
        let live = self.live_disks(name, scope)?;
        let updated = hotplug::check_detach(&config, target, scope, live.as_deref())?;
        if scope.live {
            self.command(
                name,
                Command::DetachDisk {
                    target: target.to_string(),
                    force: false,
                },
            )?;
        }
        if let Some(updated) = updated {
            definitions.save(&updated)?;
        }
        Ok(())
    }
}
