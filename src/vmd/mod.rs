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
//! `console.log` (+ `.1`), `vmd.log`; and the socket `<runtime>/<name>.sock`.

mod boot;
mod console_log;
mod detach;
mod disks;
mod events;
pub mod foreground;
mod hotplug;
mod live_disks;
mod logger;
mod machine;
pub mod pidfile;
mod ring;
mod sampler;
mod server;
pub(crate) mod session;
mod signals;
pub mod state_file;
mod stats;
mod supervisor;

#[cfg(test)]
mod fake;

pub use boot::error_chain;
pub use detach::{DETACHED_ENV, ERROR_PREFIX, READY_LINE, SUBCOMMAND};
pub use ring::CONSOLE_RING_BYTES;

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::{ConfigError, Paths, Store, VmConfig};
use crate::engine::NicSpec;
use crate::engine::control::ExitReason;
use crate::network::{NetworkError, NetworkManager, Tap};
use console_log::{CONSOLE_LOG_MAX_BYTES, RotatingLog};
use machine::{Engine, KvmEngine, Machine, MachineError};
use pidfile::{PidFileError, PidLock};
use ring::ConsoleRing;
use server::{ControlSocket, ServerError};
use supervisor::Supervisor;

/// `vmd.log` is moved to `vmd.log.1` at start when it has grown beyond this many bytes.
const VMD_LOG_MAX_BYTES: u64 = 1 << 20;

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
    /// A vmd thread could not be started.
    #[error("cannot start a vmd thread")]
    Thread(#[source] std::io::Error),
}

/// Runs vmd for VM `name`: the whole life of the process. The first invocation re-executes
/// itself detached and returns at once (see [`detach`]).
pub fn main(name: &str) -> ExitCode {
    // The name becomes a path component: refuse `../x` before touching any directory.
    if let Err(message) = crate::config::validate_name(name) {
        detach::report_error(&message);
        return ExitCode::FAILURE;
    }
    if !detach::is_detached() {
        return detach::respawn(name);
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
    log::info!("vmd {} starting for VM '{name}'", std::process::id());
    let vmd = match Vmd::start(&paths, name, Arc::new(KvmEngine)) {
        Ok(vmd) => vmd,
        Err(e) => {
            let message = boot::error_chain(&e);
            log::error!("cannot start: {message}");
            detach::report_error(&message);
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = signals::spawn_handler(signal_set, Arc::clone(&vmd.sup)) {
        log::warn!("no signal handling thread: {e}");
    }
    log::info!("VM '{name}' is running");
    detach::report_ready(&log_file);
    let reason = vmd.run();
    log::info!("VM '{name}' is over: {reason:?}");
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
    let dir = paths.vm_state_dir(name);
    let path = dir.join("vmd.log");
    let err = |source| VmdError::OpenLog {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(&dir).map_err(err)?;
    if fs::metadata(&path).is_ok_and(|m| m.len() > VMD_LOG_MAX_BYTES) {
        fs::rename(&path, dir.join("vmd.log.1")).map_err(err)?;
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
    /// Everything up to a running guest. On failure nothing is left behind: no socket, and the
    /// pid file is removed (the lock goes with the process).
    fn start(paths: &Paths, name: &str, engine: Arc<dyn Engine>) -> Result<Vmd, VmdError> {
        paths.ensure().map_err(VmdError::Paths)?;
        let dir = paths.vm_state_dir(name);
        fs::create_dir_all(&dir).map_err(|source| {
            VmdError::Paths(ConfigError::CreateDir {
                path: dir.clone(),
                source,
            })
        })?;
        let mut undo = Undo {
            lock: Some(PidLock::acquire(&dir.join("vmd.pid"), std::process::id())?),
            socket: None,
        };
        let config = Store::new(paths.clone())
            .load(name)
            .map_err(VmdError::Definition)?;
        let mut spec = machine::vm_spec(&config);
        let (targets, specs) = disks::open_disks(paths, &config)?
            .into_iter()
            .map(|disk| (disk.target, disk.spec))
            .unzip();
        spec.disks = specs;
        // Declared after `undo`, so a failed start closes the TAPs before the pid file goes.
        let taps = attach_nics(paths, &config)?;
        spec.nics = nic_specs(&taps)?;
        let ring = Arc::new(ConsoleRing::new(CONSOLE_RING_BYTES));
        let sup = Arc::new(
            Supervisor::new(
                &spec,
                std::process::id(),
                Arc::clone(&ring),
                Some(dir.join("state.json")),
            )
            .with_disk_targets(targets)
            .with_backing_trust(crate::storage::StorageManager::new(paths.clone()).trust(&[])),
        );
        let socket = undo
            .socket
            .insert(ControlSocket::bind(&paths.socket(name))?);
        let first = boot::boot(&sup, engine.as_ref(), &spec).map_err(VmdError::Boot)?;
        socket.serve(Arc::clone(&sup))?;
        sampler::spawn(Arc::clone(&sup)).map_err(VmdError::Thread)?;
        // A log that cannot be written costs the log, not the VM.
        let console_log = RotatingLog::open(&dir.join("console.log"), CONSOLE_LOG_MAX_BYTES)
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
        sup.close_disks();
        // Closing every TAP handle now deletes the interfaces and their records before clients
        // can see the VM as shut off.
        drop(taps);
        sup.finished(&reason);
        sup.ring().close();
        if console_log.is_some_and(|thread| thread.join().is_err()) {
            log::warn!("the console log thread panicked");
        }
        if !sup.events().wait_drained(std::time::Duration::from_secs(1)) {
            log::warn!("some subscribers did not take the final events");
        }
        socket.remove();
        lock.remove();
        reason
    }
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
