//! The virsh-like command line: [`Args`] (the grammar), [`run`] (what `main` calls) and one
//! small file per verb group. Every verb works through the host API ([`HostApi`]: the
//! [`Host`], `StorageHost` and `NetworkHost` traits), so the unit tests here drive them with
//! fakes and the binary with this machine's real host, built in one place ([`run`]).
//!
//! Output: human text tables on stdout, `--json` on every read command (shapes in
//! docs/cli.md), warnings and errors on stderr. Every error names the problem and the fix.

mod agent;
mod args;
mod cloud_init;
pub mod complete;
mod console;
mod define;
mod edit;
mod host_paths;
mod hotplug;
pub mod images;
mod lifecycle;
pub mod network;
mod output;
pub mod progress;
mod run;
mod show;
mod state;
pub mod storage;
mod vol_check;

#[cfg(test)]
mod test_support;

pub use args::{
    Args, AttachDiskArgs, Command, ConsoleArgs, CreateArgs, DetachDiskArgs, RestoreArgs, RunArgs,
    SaveArgs, SetmemArgs, SetvcpusArgs,
};

use crate::client::{
    ClientError, Host, HostApi, LocalHost, NetworkHost, StorageHost, UndefineOptions,
};
use crate::config::DefinitionError;
use crate::network::NetworkError;
use crate::tui::TuiOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Why a verb failed, beyond what the host reports. Messages name the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The host refused or failed (unknown VM, not running, vmd errors).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A definition file (given to `define`, or edited) does not parse or validate.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// Options that describe an impossible VM.
    #[error("{0}")]
    Invalid(String),
    /// A network could not give the VM a NIC (the message names the fix).
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// A pool, volume or image file could not be used (the message names the fix).
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The disk image's own /boot cannot be booted (the cause says what was found and what
    /// would work).
    #[error("cannot boot the disk image {image}")]
    BootImage {
        /// The image, as the user named it.
        image: String,
        /// What bootimg found.
        #[source]
        source: crate::bootimg::BootImageError,
    },
    /// The `--cloud-init` options or the files they name cannot be used.
    #[error(transparent)]
    CloudInit(#[from] crate::cloudinit::CloudInitError),
    /// A definition file could not be read.
    #[error("cannot read {}; check the path and its permissions", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// This host cannot run the definition (boot files, memory).
    #[error(transparent)]
    HostFacts(#[from] crate::client::host_facts::HostFactError),
    /// The command needs a VM that is not paused.
    #[error("VM '{0}' is paused; `vmux resume {0}` first (or `vmux destroy {0}` to stop it)")]
    Paused(String),
    /// `resume` of a VM that is not paused.
    #[error("VM '{0}' is not paused; there is nothing to resume")]
    NotPaused(String),
    /// The guest did not power off in time.
    #[error(
        "VM '{name}' did not shut down within {seconds} s; the guest may ignore the power button: stop it at once with `vmux destroy {name}`"
    )]
    ShutdownTimeout {
        /// VM name.
        name: String,
        /// How long we waited.
        seconds: u64,
    },
    /// The VM crashed while we waited for it to stop.
    #[error("VM '{name}' crashed instead of shutting down: {reason}; see `vmux info {name}`")]
    CrashedWhileStopping {
        /// VM name.
        name: String,
        /// The crash reason.
        reason: String,
    },
    /// `destroy` was sent but vmd lingers.
    #[error(
        "VM '{name}' is still running {seconds} s after destroy; its vmd (pid {pid}) may be stuck: `kill -9 {pid}`"
    )]
    DestroyStuck {
        /// VM name.
        name: String,
        /// vmd's pid.
        pid: u32,
        /// How long we waited.
        seconds: u64,
    },
    /// Some autostart networks or VMs failed to start.
    #[error("{failed} autostart network(s) or VM(s) failed to start; the reasons are listed above")]
    AutostartFailed {
        /// How many failed.
        failed: usize,
    },
    /// `console --until` got a pattern that is not a regular expression.
    #[error("--until '{pattern}' is not a valid regular expression")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// Cause.
        #[source]
        source: regex::Error,
    },
    /// `console --timeout` ran out.
    #[error("{what} within {seconds} s; the console output so far is above")]
    ConsoleTimeout {
        /// What did not happen ("no output matched 'x'", "the console was still open").
        what: String,
        /// The timeout.
        seconds: f64,
    },
    /// The console closed before `--until` matched.
    #[error(
        "the console of VM '{name}' closed (the VM stopped?) before the output matched '{pattern}'"
    )]
    ConsoleClosed {
        /// VM name.
        name: String,
        /// The pattern.
        pattern: String,
    },
    /// The terminal could not be switched to raw mode or back.
    #[error("cannot set up the terminal for the console")]
    Terminal {
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The editor could not be run.
    #[error("cannot run the editor '{editor}'; set $VISUAL or $EDITOR to an editor that exists")]
    EditorSpawn {
        /// The editor command.
        editor: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The editor exited with an error.
    #[error("the editor '{editor}' failed ({status}); the definition is unchanged")]
    EditorFailed {
        /// The editor command.
        editor: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// The temporary copy for `edit` failed.
    #[error("cannot prepare a temporary copy to edit in {}; check that it is writable or set TMPDIR", path.display())]
    EditCopy {
        /// The temp file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The edited text is not a valid definition (and there is no terminal to retry on).
    #[error("the edited definition is invalid ({reason}); nothing was saved")]
    EditInvalid {
        /// Where and why, e.g. `line 3: invalid type`.
        reason: String,
    },
    /// The user declined to re-open an invalid edit.
    #[error("edit abandoned; the definition of VM '{0}' is unchanged")]
    EditAbandoned(String),
    /// `vmux run` could not boot the kernel or set up its console.
    #[error("cannot run {}", kernel.display())]
    Run {
        /// The kernel given.
        kernel: PathBuf,
        /// Cause (names the fix).
        #[source]
        source: crate::vmd::foreground::ForegroundError,
    },
    /// Writing to stdout or stderr failed (closed pipe).
    #[error("cannot write the output")]
    Output(#[from] std::io::Error),
}

/// Where a verb writes: `out` is stdout (results), `err` is stderr (warnings, progress).
pub struct Io<'a> {
    /// Results.
    pub out: &'a mut dyn Write,
    /// Warnings and per-item errors that do not fail the command.
    pub err: &'a mut dyn Write,
}

/// Runs the parsed command line against this host's VMs; `Ok` carries the exit status.
/// With no subcommand this is the full-screen interface. A reader that went away
/// (`vmux list --json | head -1`) ends the command quietly with success, like other Unix tools.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match run_command(args) {
        Err(error) if is_broken_pipe(&error) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

/// Whether `error` or any of its causes is a write to a closed pipe.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(BrokenPipe)
    })
}

fn run_command(args: Args) -> anyhow::Result<ExitCode> {
    // A transient VM needs no host (no definitions, no sockets); it is also started before
    // anything else so that it owns every thread of the process (see `vmd::foreground::run`).
    if let Some(Command::Run(run_args)) = args.command {
        if let Some(target) = &args.connect {
            return Err(CliError::Invalid(format!(
                "`vmux run` boots a kernel in this terminal on this machine; it cannot run on {target}: define the VM there with `vmux --connect {target} create` and start it"
            ))
            .into());
        }
        let mut io = Io {
            out: &mut std::io::stdout(),
            err: &mut std::io::stderr(),
        };
        return Ok(run::run(run_args, &mut io)?);
    }
    if let Some(command @ (Command::Completions { .. } | Command::Man { .. })) = args.command {
        let mut io = Io {
            out: &mut std::io::stdout(),
            err: &mut std::io::stderr(),
        };
        generated(command, &mut io)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(Command::Agent { .. }) = args.command {
        if args.connect.is_some() {
            return Err(CliError::Invalid(
                "`vmux agent` serves this machine (it is what --connect runs on the other host); run it without --connect".into(),
            )
            .into());
        }
        agent::serve()?;
        return Ok(ExitCode::SUCCESS);
    }
    // The one place the command line names the host it works on (this machine, or the one
    // --connect names); everything below reaches it through the host API. The link, when
    // there is one, lives as long as the command.
    let local = LocalHost::from_env()?;
    let settings_path = local.paths().settings_file();
    let (api, _link) = match &args.connect {
        Some(target) => {
            // The full-screen interface must not let ssh write a prompt over it.
            let prompts = match args.command {
                Some(_) => crate::remote::Prompts::Allowed,
                None => crate::remote::Prompts::Never,
            };
            if let Some(command) = &args.command {
                host_paths::require_absolute(command, &target.label())?;
            }
            let (link, api) = crate::remote::connect(target, prompts)?;
            (api, Some(link))
        }
        None => (HostApi::local(local), None),
    };
    let Some(command) = args.command else {
        let options = TuiOptions {
            theme: args.theme,
            settings_path,
        };
        crate::tui::run(api, options)?;
        return Ok(ExitCode::SUCCESS);
    };
    // Unlocked handles: a lock held for the whole command could stall a panicking reader
    // thread's message (the panic hook writes to stderr) and with it the main thread.
    let mut io = Io {
        out: &mut std::io::stdout(),
        err: &mut std::io::stderr(),
    };
    match command {
        Command::Network(verb) => network::run(verb, &api, &mut io),
        Command::Storage(verb) => storage::run(verb, &api, &mut io),
        other => {
            execute(&api, other, &mut io)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Executes one VM verb against `api` (its VMs, networks and images).
pub fn execute(api: &HostApi, command: Command, io: &mut Io<'_>) -> Result<(), CliError> {
    let host: &dyn Host = api.vms.as_ref();
    let networks: &dyn NetworkHost = api.networks.as_ref();
    let images: &dyn StorageHost = api.storage.as_ref();
    match command {
        Command::Create(args) => define::create(host, networks, images, args, io),
        Command::Define { file } => define::define_file(host, images, &file, io),
        Command::Dumpconfig { name, json } => define::dumpconfig(host, &name, json, io),
        Command::Edit { name } => edit::edit(host, images, &name, io),
        Command::Undefine {
            name,
            snapshots_metadata,
        } => define::undefine(host, &name, UndefineOptions { snapshots_metadata }, io),
        Command::Autostart { name, disable } => define::autostart(host, &name, !disable, io),
        Command::List { all, json } => show::list(host, networks, all, json, io),
        Command::Info { name, json } => show::info(host, networks, images, &name, json, io),
        Command::Stats { name, json } => show::stats(host, &name, json, io),
        Command::Start {
            name,
            console,
            force_boot,
        } => {
            if force_boot {
                state::discard_managed_save(host, &name, io)?;
            }
            lifecycle::start(host, &name, io)?;
            if console {
                console::attach(host, &console::default_args(&name), io)?;
            }
            Ok(())
        }
        Command::Shutdown {
            name,
            timeout,
            no_wait,
        } => lifecycle::shutdown(host, &name, (!no_wait).then_some(timeout), io),
        Command::Destroy { name } => lifecycle::destroy(host, &name, io),
        Command::Reboot { name } => lifecycle::reboot(host, &name, io),
        Command::Reset { name } => lifecycle::reset(host, &name, io),
        Command::Suspend { name } => lifecycle::suspend(host, &name, io),
        Command::Resume { name } => lifecycle::resume(host, &name, io),
        Command::AutostartAll => lifecycle::autostart_all(host, networks, io),
        Command::Setvcpus(args) => hotplug::setvcpus(host, &args, io),
        Command::Save(args) => state::save(host, &args, io),
        Command::Restore(args) => state::restore(host, &args, io),
        Command::Managedsave {
            name,
            running,
            paused,
        } => state::managedsave(host, &name, state::after_restore(running, paused), io),
        Command::ManagedsaveRemove { name } => state::managedsave_remove(host, &name, io),
        Command::Setmem(args) => state::setmem(host, &args, io),
        Command::Dommemstat { name, json } => state::dommemstat(host, &name, json, io),
        Command::AttachDisk(args) => hotplug::attach_disk(host, &args, io),
        Command::DetachDisk(args) => hotplug::detach_disk(host, &args, io),
        Command::Console(args) => console::attach(host, &args, io),
        Command::Network(_) | Command::Storage(_) => Err(CliError::Invalid(
            "network and storage verbs run through `vmux::cli::run`, not against a VM host".into(),
        )),
        Command::Run(_) => Err(CliError::Invalid(
            "`vmux run` runs through `vmux::cli::run`, not against a VM host".into(),
        )),
        Command::Agent { .. } => Err(CliError::Invalid(
            "`vmux agent` runs through `vmux::cli::run`, not against a VM host".into(),
        )),
        Command::Completions { .. } | Command::Man { .. } => Err(CliError::Invalid(
            "`vmux completions` and `vmux man` run through `vmux::cli::run`, not against a VM host"
                .into(),
        )),
    }
}

/// `vmux completions SHELL` and `vmux man`: generated from the grammar, no host needed.
fn generated(command: Command, io: &mut Io<'_>) -> Result<(), CliError> {
    match command {
        Command::Completions { shell } => {
            let exe = std::env::current_exe().map_err(|e| {
                CliError::Invalid(format!(
                    "cannot find the vmux executable to name in the script: {e}"
                ))
            })?;
            complete::write_script(shell, &exe, io.out)?;
        }
        Command::Man { dir: Some(dir), .. } => {
            let written = complete::write_man_pages(&dir).map_err(CliError::Invalid)?;
            writeln!(
                io.out,
                "{written} manual pages written to {}",
                dir.display()
            )?;
        }
        Command::Man { verb, .. } => {
            complete::write_man_page(verb.as_deref(), io.out).map_err(CliError::Invalid)?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_recognised_through_every_wrapper() {
        let pipe = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&anyhow::Error::from(CliError::Output(
            pipe()
        ))));
        let json = serde_json::Error::io(pipe());
        assert!(is_broken_pipe(&anyhow::Error::from(json)));
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!is_broken_pipe(&anyhow::Error::from(CliError::Output(
            other
        ))));
    }
}
