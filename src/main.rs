//! vmux: virt-manager in a terminal. The binary is the CLI, the TUI and (as the internal
//! `__vmd` subcommand) the per-VM process.

fn main() {}
