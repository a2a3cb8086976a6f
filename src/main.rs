//! vmux: virt-manager in a terminal. The binary is the CLI, the TUI and (as the internal
//! `__vmd` subcommand) the per-VM process.

use std::process::ExitCode;

fn main() -> ExitCode {
    // The per-VM process is dispatched before anything else: it must not pay for (or be
    // disturbed by) CLI parsing. Wired with plain args until the CLI lands.
    let args: Vec<String> = std::env::args().collect();
    if let [_, sub, name] = args.as_slice()
        && sub == vmux::vmd::SUBCOMMAND
    {
        return vmux::vmd::main(name);
    }
    ExitCode::SUCCESS
}
