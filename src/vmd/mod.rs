//! vmd, the per-VM process (DESIGN.md §2): `vmux __vmd NAME` detaches, takes the VM's pid
//! lock, boots the engine, serves the control socket, buffers and logs the serial console,
//! samples stats, and records the VM's state until the VM is over.
//!
//! Threads: `main` runs the boot loop ([`boot`]); `control` accepts connections and each
//! connection gets a `conn` thread ([`session`]) plus `events` / `console-out` helpers;
//! `stats` samples once a second; `console-log` writes the console log; `signals` turns
//! `SIGTERM` into a destroy. The engine adds `vcpuN` and device threads.
//!
//! [`foreground`] runs a transient VM in the calling process instead (`vmux run`), with the
//! same supervisor, boot loop and console ring but no socket or files.
//!
//! NICs: before the first boot vmd attaches the VM's NICs to their networks
//! ([`NetworkManager::attach_vm`]: one TAP each, recorded as owned by this process) and hands
//! the engine a duplicate of each TAP; the TAPs stay open across reboots and are closed (the
//! kernel deletes them, their records go) when the VM is over or its start fails.
//!
//! Files (`<state>/vms/<name>/`): `vmd.pid` (locked while vmd lives), `state.json`,
//! `open-images.json` (the writable qcow2 images open, for a repair if vmd dies:
//! [`open_images`]), `console.log` (+ `.1`), `vmd.log`; and the socket
//! `<runtime>/<name>.sock`.

mod admission;
mod boot;
mod confine;
mod console_log;
mod detach;
mod disks;
mod events;
pub mod foreground;
mod hotplug;
mod image_boot;
mod live_disks;
mod logger;
mod machine;
mod memory;
mod observer;
pub mod open_images;
pub mod pidfile;
mod restore;
mod ring;
mod sampler;
pub mod save;
mod server;
pub(crate) mod session;
mod signals;
pub mod start_mode;
pub mod state_file;
mod stats;
mod supervisor;

#[cfg(test)]
mod fake;

pub use boot::error_chain;
pub use detach::{DETACHED_ENV, ERROR_PREFIX, READY_LINE, SUBCOMMAND};
pub use ring::CONSOLE_RING_BYTES;
pub use start_mode::{RestoreMode, StartMode};

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::{ConfigError, Paths, Store, VmConfig, VmdFiles};
use crate::engine::NicSpec;
use crate::network::{NetworkError, NetworkManager, Tap};
use crate::protocol::ExitReason;
use console_log::{CONSOLE_LOG_MAX_BYTES, RotatingLog};
use machine::{Engine, KvmEngine, Machine, MachineError};
use open_images::OpenImages;
use pidfile::{PidFileError, PidLock};
use ring::ConsoleRing;
use server::{ControlSocket, ServerError};
use supervisor::Supervisor;

/// Why vmd could not start (reported on the readiness line).
#[derive(Debug, thiserror::Error)]
pub enum VmdError {
    /// vmux's directories could not be determined or created.
    #[error(transparent)]
    Paths(ConfigError),
    /// The log file could not be opened.
    #[error("cannot open the log {}", path.display())]
    OpenLog {
        /// The log file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Another vmd runs this VM, or the pid file is unusable.
    #[error(transparent)]
    Lock(#[from] PidFileError),
    /// The definition could not be loaded.
    #[error(transparent)]
    Definition(ConfigError),
    /// The VM's NICs could not be attached to their networks (the message names the network
    /// and the fix, e.g. `vmux net-start`).
    #[error(transparent)]
    Network(NetworkError),
    /// A TAP could not be shared with the engine.
    #[error("cannot hand TAP {tap} to the VM")]
    ShareTap {
        /// The TAP.
        tap: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The control socket could not be set up.
    #[error(transparent)]
    Socket(#[from] ServerError),
    /// The engine could not build or start the VM.
    #[error("cannot boot the VM")]
    Boot(#[source] MachineError),
    /// A disk of the definition cannot be used.
    #[error(transparent)]
    Disks(#[from] disks::DiskError),
    /// The cloud-init seed could not be built.
    #[error("cannot prepare the cloud-init seed")]
    Seed(#[source] crate::cloudinit::CloudInitError),
    /// Every guest disk name is taken, leaving none for the cloud-init seed.
    #[error(
        "the VM has 26 disks (vda..vdz), which leaves no name for its cloud-init seed; detach a disk"
    )]
    NoSeedTarget,
    /// A vmd thread could not be started.
    #[error("cannot start a vmd thread")]
    Thread(#[source] std::io::Error),
    /// The list of open images (for a repair after a crash) could not be written.
    #[error("cannot record the VM's open images in {}", path.display())]
    OpenImages {
        /// The list file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The save file cannot be opened or read.
    #[error(transparent)]
    SaveFile(#[from] crate::engine::snapshot::SaveFileError),
    /// The save file does not fit this VM now (the message says why and what to do).
    #[error("cannot restore {}: {reason}", file.display())]
    Restore {
        /// The save file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// vmd could not give up its privileges.
    #[error(transparent)]
    Confine(#[from] confine::ConfineError),
}

/// Runs vmd for VM `name`: the whole life of the process. The first invocation re-executes
/// itself detached and returns at once (see [`detach`]). `options` select the start mode
/// ([`StartMode`]: boot, or restore from a save file).
pub fn main(name: &str, options: &[String]) -> ExitCode {
    // The name becomes a path component: refuse `../x` before touching any directory.
    if let Err(message) = crate::config::validate_name(name) {
        detach::report_error(&message);
        return ExitCode::FAILURE;
    }
    let mode = match StartMode::parse(options) {
        Ok(mode) => mode,
        Err(message) => {
            detach::report_error(&message);
            return ExitCode::FAILURE;
        }
    };
    if !detach::is_detached() {
        return detach::respawn(name, options);
    }
    // Resolve directories before leaving the caller's working directory (VMUX_HOME may be
    // relative to it).
    let paths = match Paths::from_env().map(absolute) {
        Ok(paths) => paths,
        Err(e) => {
            detach::report_error(&boot::error_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    detach::new_session();
    // Before any thread exists, so all of them inherit the mask.
    let signal_set = signals::block();
    let log_file = match open_log(&paths, name) {
        Ok(file) => file,
        Err(e) => {
            detach::report_error(&boot::error_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    logger::init();
    let files = paths.vmd_files(name);
    let crash_files = confine::reaper::CrashFiles {
        state: files.state.clone(),
        socket: files.socket.clone(),
        pid_file: files.pid.clone(),
    };
    let confinement = match confine::setup(crash_files) {
        Ok(confinement) => confinement,
        Err(e) => {
            let message = boot::error_chain(&e);
            log::error!("cannot confine vmd: {message}");
            detach::report_error(&message);
            return ExitCode::FAILURE;
        }
    };
    let log_path = files.log;
    if let Err(e) = log_file
        .try_clone()
        .and_then(|file| logger::start_writer(&log_path, file))
    {
        log::warn!("no log writer thread, logging to stderr directly: {e}");
    }
    log::info!("vmd {} starting for VM '{name}'", std::process::id());
    let vmd = match Vmd::start(&paths, name, Arc::new(KvmEngine), &mode, Some(&confinement)) {
        Ok(vmd) => vmd,
        Err(e) => {
            let message = boot::error_chain(&e);
            log::error!("cannot start: {message}");
            // The line is queued for the log thread: let it reach vmd.log before vmd exits.
            logger::flush();
            detach::report_error(&message);
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = signals::spawn_handler(signal_set, Arc::clone(&vmd.sup)) {
        log::warn!("no signal handling thread: {e}");
    }
    log::info!("VM '{name}' is running");
    detach::report_ready(&log_file);
    confinement.confine_main();
    vmd.run();
    ExitCode::SUCCESS
}

/// `paths` with every root made absolute against the current directory.
fn absolute(paths: Paths) -> Paths {
    let abs = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    Paths {
        config: abs(paths.config),
        data: abs(paths.data),
        state: abs(paths.state),
        runtime: abs(paths.runtime),
    }
}

/// Opens (rotating when large) `vmd.log` and points stderr at it.
fn open_log(paths: &Paths, name: &str) -> Result<fs::File, VmdError> {
    paths.ensure().map_err(VmdError::Paths)?;
    let VmdFiles { dir, log: path, .. } = paths.vmd_files(name);
    let err = |source| VmdError::OpenLog {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(&dir).map_err(err)?;
    if fs::metadata(&path).is_ok_and(|m| m.len() > logger::MAX_BYTES) {
        fs::rename(&path, VmdFiles::rotated(&path)).map_err(err)?;
    }
    detach::log_to(&path).map_err(err)
}

/// A started vmd: the first boot runs and the control socket accepts connections.
struct Vmd {
    sup: Arc<Supervisor>,
    engine: Arc<dyn Engine>,
    /// The NICs' TAPs, open for the VM's whole life (dropping one deletes it).
    taps: Vec<Tap>,
    first: Box<dyn Machine>,
    socket: ControlSocket,
    lock: PidLock,
    console_log: Option<JoinHandle<()>>,
}

/// Cleans up a start that failed half-way: unlinks the socket, then the pid file.
struct Undo {
    lock: Option<PidLock>,
    socket: Option<ControlSocket>,
}

impl Undo {
    /// The start succeeded: hand over what was set up instead of removing it.
    fn disarm(mut self) -> (PidLock, ControlSocket) {
        let lock = self.lock.take().expect("the lock is taken first in start");
        let socket = self
            .socket
            .take()
            .expect("the socket is bound before the boot");
        (lock, socket)
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(socket) = self.socket.take() {
            socket.remove();
        }
        if let Some(lock) = self.lock.take() {
            lock.remove();
        }
    }
}

impl Vmd {
    /// Everything up to a running guest (booted, or restored from a save file as `mode` says).
    /// On failure nothing is left behind: no socket, and the pid file is removed (the lock
    /// goes with the process). With `confinement` (the real vmd), the main thread drops its
    /// capabilities once the TAPs are open.
    fn start(
        paths: &Paths,
        name: &str,
        engine: Arc<dyn Engine>,
        mode: &StartMode,
        confinement: Option<&confine::Confinement>,
    ) -> Result<Vmd, VmdError> {
        paths.ensure().map_err(VmdError::Paths)?;
        let files = paths.vmd_files(name);
        let dir = files.dir.clone();
        fs::create_dir_all(&dir).map_err(|source| {
            VmdError::Paths(ConfigError::CreateDir {
                path: dir.clone(),
                source,
            })
        })?;
        let mut undo = Undo {
            lock: Some(PidLock::acquire(&files.pid, std::process::id())?),
            socket: None,
        };
        // Images a vmd of this VM had open when it died: repaired before anything opens them.
        if let Some(done) = open_images::repair_leftover(paths, &dir) {
            for note in &done.notes {
                log::warn!("vmd (pid {}) exited unexpectedly: {note}", done.pid);
            }
        }
        let config = Store::new(paths.clone())
            .load(name)
            .map_err(VmdError::Definition)?;
        let mut spec = machine::vm_spec(&config);
        let mut saved = match mode {
            StartMode::Boot => None,
            StartMode::Restore(restore) => Some(restore::open(&config, restore)?),
        };
        let opened = match &saved {
            None => disks::open_disks(paths, &config)?,
            Some(saved) => restore::open_disks(saved, paths, &config)?,
        };
        let list = files.open_images.clone();
        let mut open_images = OpenImages::at(list.clone(), std::process::id());
        open_images
            .add(
                opened
                    .iter()
                    .filter(|disk| disk.writable_qcow2())
                    .map(|disk| disk.spec.path.clone()),
            )
            .map_err(|source| VmdError::OpenImages { path: list, source })?;
        let (mut targets, mut specs): (Vec<String>, Vec<_>) = opened
            .into_iter()
            .map(|disk| (disk.target, disk.spec))
            .unzip();
        // A restored VM has its seed among the disks it had plugged when it was saved.
        if saved.is_none()
            && let Some(seed) = attach_seed(paths, &config, &targets)?
        {
            targets.push(seed.target);
            specs.push(seed.spec);
        }
        spec.disks = specs;
        if let Some(saved) = &saved {
            spec.vcpus = saved.file.header.vcpus.max(1);
        }
        // Declared after `undo`, so a failed start closes the TAPs before the pid file goes.
        let taps = attach_nics(paths, &config)?;
        spec.nics = nic_specs(&taps)?;
        // The last step that may need privileges (CAP_NET_ADMIN for the TAPs) is done.
        if let Some(confinement) = confinement {
            confinement.drop_privileges()?;
        }
        let ring = Arc::new(ConsoleRing::new(CONSOLE_RING_BYTES));
        let mut sup = Supervisor::new(
            &spec,
            std::process::id(),
            Arc::clone(&ring),
            Some(files.state.clone()),
        )
        .with_disk_targets(targets)
        .with_open_images(open_images)
        .with_definition(config.clone())
        .with_backing_trust(crate::storage::StorageManager::new(paths.clone()).trust(&[]));
        if let Some(image_boot) = machine::image_boot(&config) {
            sup = sup.with_image_boot(image_boot);
        }
        let sup = Arc::new(sup);
        let socket = undo.socket.insert(ControlSocket::bind(&files.socket)?);
        let first = match saved.as_mut() {
            None => {
                let first = boot::boot(&sup, engine.as_ref(), &spec).map_err(VmdError::Boot)?;
                let target = machine::initial_balloon_target(&config);
                if target > 0
                    && let Err(e) = first.control().set_balloon_target(target)
                {
                    log::warn!("cannot set the balloon for current_memory: {e}");
                }
                first
            }
            Some(saved) => {
                let first =
                    boot::restore(&sup, engine.as_ref(), &spec, saved).map_err(VmdError::Boot)?;
                if saved.mode.discard
                    && let Err(e) = fs::remove_file(&saved.mode.file)
                {
                    log::warn!("cannot remove {}: {e}", saved.mode.file.display());
                }
                first
            }
        };
        socket.serve(Arc::clone(&sup))?;
        sampler::spawn(Arc::clone(&sup)).map_err(VmdError::Thread)?;
        // A log that cannot be written costs the log, not the VM.
        let console_log = RotatingLog::open(&files.console_log, CONSOLE_LOG_MAX_BYTES)
            .and_then(|log| console_log::spawn(Arc::clone(&ring), log))
            .inspect_err(|e| log::warn!("no console log: {e}"))
            .ok();
        let (lock, socket) = undo.disarm();
        Ok(Vmd {
            sup,
            engine,
            taps,
            first,
            socket,
            lock,
            console_log,
        })
    }

    /// Runs boots until the VM is over, then records the end and cleans up in the order that
    /// keeps clients right: final state on disk, events out, socket gone, lock released last.
    fn run(self) -> ExitReason {
        let Vmd {
            sup,
            engine,
            taps,
            first,
            socket,
            lock,
            console_log,
        } = self;
        let reason = boot::run(&sup, engine.as_ref(), first);
        // The last boot is gone: write back and close every image (a qcow2 image keeps
        // metadata in memory until then) before clients can see the VM as shut off and open
        // its disks. Threads that outlive this (control, stats) hold the supervisor, so the
        // images would otherwise never be closed.
        // Only images all written back leave the open-images list (before the final state:
        // a client that sees "shut off" finds no list to repair); one that was not is
        // repaired by the next client or start.
        if sup.close_disks() {
            sup.forget_open_images();
        }
        // Closing every TAP handle now deletes the interfaces and their records before clients
        // can see the VM as shut off. The engine's copies of the handles go with the last
        // handle on the machine, which a connection thread that just asked for the destroy may
        // still hold for a moment: wait (briefly) until the kernel has removed the interfaces.
        let tap_names: Vec<String> = taps.iter().map(|t| t.name().to_string()).collect();
        drop(taps);
        wait_until_gone(&tap_names, std::time::Duration::from_secs(2));
        sup.finished(&reason);
        sup.ring().close();
        if console_log.is_some_and(|thread| thread.join().is_err()) {
            log::warn!("the console log thread panicked");
        }
        if !sup.events().wait_drained(std::time::Duration::from_secs(1)) {
            log::warn!("some subscribers did not take the final events");
        }
        socket.remove();
        log::info!("VM '{}' is over: {reason:?}", sup.name);
        // Clients take the pid file's removal as vmd's end: every line is in vmd.log by then,
        // and the process exits right after.
        logger::flush();
        lock.remove();
        reason
    }
}

/// Waits up to `limit` until none of the network interfaces `names` exists (a TAP vanishes
/// when its last handle closes). Looks only with `openat` on sysfs, which the main thread's
/// filter allows.
fn wait_until_gone(names: &[String], limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    let exists =
        |name: &String| std::fs::File::open(format!("/sys/class/net/{name}/ifindex")).is_ok();
    while names.iter().any(exists) {
        if std::time::Instant::now() >= deadline {
            log::warn!(
                "a TAP of this VM still exists {} s after the VM ended",
                limit.as_secs()
            );
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The cloud-init seed (made current first) as a read-only disk after the definition's
/// disks (`taken` are their targets); `None` for a VM without cloud-init settings.
fn attach_seed(
    paths: &Paths,
    config: &VmConfig,
    taken: &[String],
) -> Result<Option<disks::OpenDisk>, VmdError> {
    use crate::cloudinit::vm_seed::{SEED_SERIAL, ensure_seed};
    let Some(seed) = ensure_seed(paths, config).map_err(VmdError::Seed)? else {
        return Ok(None);
    };
    if let Some(warning) = &seed.warning {
        log::warn!("{warning}");
    }
    if seed.rebuilt {
        log::info!(
            "cloud-init seed {} built (instance-id {})",
            seed.path.display(),
            seed.instance_id
        );
    }
    let target = live_disks::first_free_target(taken.iter().map(String::as_str))
        .ok_or(VmdError::NoSeedTarget)?;
    // vmux wrote the seed itself: a raw FAT volume, no backing file.
    let how = disks::AttachImage::new(
        Some(crate::config::ImageFormat::Raw),
        &crate::storage::BackingTrust::none(),
        &[],
    );
    let disk = disks::open_disk(
        &seed.path,
        &target,
        true,
        Some(SEED_SERIAL.to_string()),
        how,
    )?;
    Ok(Some(disk))
}

/// Attaches `config`'s NICs to their networks: one TAP each, up and on its bridge. No NICs,
/// no network access needed.
fn attach_nics(paths: &Paths, config: &VmConfig) -> Result<Vec<Tap>, VmdError> {
    if config.nics.is_empty() {
        return Ok(Vec::new());
    }
    NetworkManager::open(paths)
        .and_then(|manager| manager.attach_vm(config))
        .map_err(VmdError::Network)
}

/// The engine's view of the TAPs: a duplicate handle on each, with the guest's MAC.
fn nic_specs(taps: &[Tap]) -> Result<Vec<NicSpec>, VmdError> {
    taps.iter()
        .map(|tap| {
            let device = tap
                .device()
                .try_clone()
                .map_err(|source| VmdError::ShareTap {
                    tap: tap.name().to_owned(),
                    source,
                })?;
            Ok(NicSpec {
                tap: Arc::new(device),
                mac: tap.mac().0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
