//! `vmux run`: boot a kernel in the foreground, like `qemu-system-x86_64 -kernel`. Nothing is
//! defined or saved and no vmd is started: the VM lives in this process
//! ([`crate::vmd::foreground`]) with its serial console on stdin/stdout, and the process ends
//! when the VM does.
//!
//! On a terminal stdin is switched to raw mode (every key goes to the guest, Ctrl-C included)
//! and Ctrl-] stops the VM. The exit status says how the VM ended:
//!
//! | VM ended by                              | status        |
//! |------------------------------------------|---------------|
//! | powering off (ACPI S5), or Ctrl-]        | 0             |
//! | writing `v` to the debug-exit port 0xf4  | `v` (255 when `v` > 255) |
//! | a crash, or it could not boot            | 1, the reason on stderr |
//! | signal `N` (SIGTERM, SIGINT, SIGHUP)     | 128 + `N`     |
//!
//! Unlike QEMU's `isa-debug-exit` (status `2v + 1`), the value itself is the status, so a test
//! guest can report success as 0.

use super::console::{DETACH_KEY, RawMode};
use super::{CliError, Io, RunArgs};
use crate::client::host_facts::absolute;
use crate::client::host_facts::check as check_definition;
use crate::config::{BootConfig, VmConfig, parse_size};
use crate::protocol::ExitReason;
use crate::vmd::foreground::{self, Console, Ending};
use std::io::IsTerminal;
use std::process::ExitCode;

/// The name a transient VM has in thread names and messages.
const RUN_VM_NAME: &str = "run";

/// `vmux run`: boots, runs until the VM ends, and returns the exit status for how it ended.
pub fn run(args: RunArgs, io: &mut Io<'_>) -> Result<ExitCode, CliError> {
    let config = config_from_args(&args)?;
    check_definition(&config)?;
    let interactive = std::io::stdin().is_terminal();
    let console = Console {
        input: Box::new(std::io::stdin()),
        output: Box::new(std::io::stdout()),
        quit_key: interactive.then_some(DETACH_KEY),
    };
    let raw = if interactive {
        let raw = RawMode::enter()?;
        write!(
            io.err,
            "Running {}; press Ctrl-] to stop the VM\r\n",
            args.kernel.display()
        )?;
        Some(raw)
    } else {
        None
    };
    let ending = foreground::run(&config, console);
    drop(raw);
    let ending = ending.map_err(|e| CliError::Run {
        kernel: args.kernel.clone(),
        source: e,
    })?;
    report(&ending, io)?;
    Ok(ExitCode::from(exit_status(&ending)))
}

/// A validated transient definition from the options.
fn config_from_args(args: &RunArgs) -> Result<VmConfig, CliError> {
    let memory = parse_size(&args.memory).map_err(CliError::Invalid)?;
    let config = VmConfig {
        vcpus: args.vcpus,
        // Nobody can hot-add to a VM without a control socket: no room for more.
        max_vcpus: args.vcpus,
        memory,
        ..VmConfig::new(
            RUN_VM_NAME,
            BootConfig::Kernel {
                kernel: absolute(&args.kernel)?,
                initrd: args.initrd.as_deref().map(absolute).transpose()?,
                cmdline: args.cmdline.clone(),
            },
        )
    };
    config.validate().map_err(CliError::Invalid)?;
    Ok(config)
}

/// Tells the user on stderr how the VM ended, where the status alone does not say it.
fn report(ending: &Ending, io: &mut Io<'_>) -> Result<(), CliError> {
    match ending {
        Ending::Vm(ExitReason::Crashed { reason }) => {
            writeln!(io.err, "error: the VM crashed: {reason}")?;
        }
        Ending::Quit => writeln!(io.err, "\nStopped the VM (Ctrl-])")?,
        Ending::Signal(signal) => writeln!(io.err, "Stopped the VM ({signal})")?,
        Ending::Vm(_) => {}
    }
    Ok(())
}

/// The exit status for how the VM ended (the table in this module's documentation).
fn exit_status(ending: &Ending) -> u8 {
    match ending {
        Ending::Vm(ExitReason::PowerOff | ExitReason::Destroyed | ExitReason::Saved { .. })
        | Ending::Quit => 0,
        Ending::Vm(ExitReason::DebugExit { code }) => u8::try_from(*code).unwrap_or(u8::MAX),
        Ending::Vm(ExitReason::Crashed { .. }) => 1,
        Ending::Signal(signal) => 128u8.saturating_add(*signal as u8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    fn args(kernel: &str) -> RunArgs {
        RunArgs {
            kernel: kernel.into(),
            initrd: None,
            cmdline: "lines=5".into(),
            memory: "256M".into(),
            vcpus: 2,
        }
    }

    #[test]
    fn the_debug_exit_value_is_the_status() {
        let ending = Ending::Vm(ExitReason::DebugExit { code: 3 });
        assert_eq!(exit_status(&ending), 3);
    }

    #[test]
    fn a_debug_exit_value_above_255_is_255() {
        let ending = Ending::Vm(ExitReason::DebugExit { code: 256 });
        assert_eq!(exit_status(&ending), 255);
    }

    #[test]
    fn power_off_and_quit_are_success() {
        assert_eq!(exit_status(&Ending::Vm(ExitReason::PowerOff)), 0);
        assert_eq!(exit_status(&Ending::Quit), 0);
    }

    #[test]
    fn a_crash_is_status_1() {
        let ending = Ending::Vm(ExitReason::Crashed { reason: "x".into() });
        assert_eq!(exit_status(&ending), 1);
    }

    #[test]
    fn a_signal_is_128_plus_its_number() {
        assert_eq!(exit_status(&Ending::Signal(Signal::SIGTERM)), 143);
    }

    #[test]
    fn options_become_a_transient_definition() {
        let config = config_from_args(&args("/k.elf")).expect("valid");
        assert_eq!((config.vcpus, config.max_vcpus), (2, 2));
        assert_eq!(config.memory, 256 << 20);
        let BootConfig::Kernel {
            kernel, cmdline, ..
        } = config.boot
        else {
            panic!("a kernel boot");
        };
        assert_eq!(kernel, std::path::Path::new("/k.elf"));
        assert_eq!(cmdline, "lines=5");
    }

    #[test]
    fn a_bad_memory_size_names_the_format() {
        let err = config_from_args(&RunArgs {
            memory: "lots".into(),
            ..args("/k.elf")
        })
        .expect_err("must fail");
        assert!(err.to_string().contains("512M"), "{err}");
    }

    #[test]
    fn a_missing_kernel_is_named_with_the_fix() {
        let config = config_from_args(&args("/nonexistent/k.elf")).expect("valid");
        let err = check_definition(&config).expect_err("must fail");
        let text = err.to_string();
        assert!(text.contains("/nonexistent/k.elf"), "{text}");
        assert!(text.contains("readable file"), "{text}");
    }
}
