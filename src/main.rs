//! vmux: virt-manager in a terminal. The binary is the CLI, the TUI and (as the internal
//! `__vmd` subcommand) the per-VM process.
//!
//! (Temporary dispatch from the storage branch: only the storage verbs; the CLI's own main.rs
//! replaces it when the branches are merged.)

use clap::Parser;
use std::process::ExitCode;

/// Command line.
#[derive(Parser)]
#[command(name = "vmux", version, about)]
struct Cli {
    /// Print read commands' results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: vmux::cli::storage::StorageCommand,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match vmux::cli::storage::run(cli.command, cli.json) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
