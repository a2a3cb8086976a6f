//! vmux: virt-manager in a terminal. The binary is the CLI, the TUI and (as the internal
//! `__vmd` subcommand) the per-VM process.
//!
//! Temporary front end of the `network` branch: only the network verbs are dispatched, until
//! the full CLI from the `cli` branch takes over this file.

use clap::Parser;
use std::process::ExitCode;

/// vmux network verbs.
#[derive(Debug, Parser)]
#[command(name = "vmux", version, about)]
struct Args {
    /// Print machine-readable JSON (read commands).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: vmux::cli::network::NetworkCommand,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match vmux::cli::network::run(args.command, args.json) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
