//! vmux: virt-manager in a terminal. The binary is the CLI, the TUI and (as the internal
//! `__vmd` subcommand) the per-VM process.
//!
//! Kept thin: parse the command line, install the panic hook and the stderr logger, hand over
//! to `vmux::cli::run` (or `vmux::vmd::main`, which sets up its own logging), print errors.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};
use vmux::cli::Args;

fn main() -> ExitCode {
    // The per-VM process (`vmux __vmd NAME`, hidden from the CLI) is dispatched before
    // anything else: it must not pay for, or be disturbed by, CLI parsing, and it installs
    // its own logger (to its log file).
    let raw: Vec<String> = std::env::args().collect();
    if let [_, sub, name, options @ ..] = raw.as_slice()
        && sub == vmux::vmd::SUBCOMMAND
    {
        return vmux::vmd::main(name, options);
    }
    // A Tab in a shell with vmux's completions loaded: answer and exit.
    vmux::cli::complete::complete_if_asked();
    install_panic_hook();
    let args = Args::parse_checked();
    init_logger();
    match vmux::cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Restores the terminal (raw mode off, main screen, cursor shown) before the default hook
/// prints the panic, so the message is readable and the shell usable afterwards.
fn install_panic_hook() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        default_hook(info);
    }));
}

/// Best effort: this runs while panicking, so failures are ignored. The escape sequences are
/// written straight to fd 1 rather than through `Stdout`, whose lock another thread may hold.
fn restore_terminal() {
    let _ = crossterm::terminal::disable_raw_mode();
    if std::io::stdout().is_terminal() {
        let mut sequence = String::new();
        let _ = crossterm::Command::write_ansi(
            &crossterm::terminal::LeaveAlternateScreen,
            &mut sequence,
        );
        let _ = crossterm::Command::write_ansi(&crossterm::cursor::Show, &mut sequence);
        let _ = nix::unistd::write(std::io::stdout(), sequence.as_bytes());
    }
}

/// Log records to stderr, filtered by `VMUX_LOG` (default `warn`).
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        eprintln!(
            "[{}.{:03} {:<5} {}] {}",
            now.as_secs(),
            now.subsec_millis(),
            record.level(),
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

/// Installs [`StderrLogger`] at the level named by `VMUX_LOG`.
fn init_logger() {
    let level = match std::env::var("VMUX_LOG") {
        Err(_) => log::LevelFilter::Warn,
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            eprintln!(
                "warning: VMUX_LOG='{text}' is not a level; use error, warn, info, debug, trace or off (using warn)"
            );
            log::LevelFilter::Warn
        }),
    };
    static LOGGER: StderrLogger = StderrLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
