//! One libFuzzer binary for every vmux fuzz target (`vmux::fuzz::TARGETS`): the environment
//! variable `VMUX_FUZZ_TARGET` names the one to run. scripts/fuzz.sh sets it, passes the seed
//! corpus and the time budget, and reports executions and coverage.

#![no_main]

use std::sync::OnceLock;

static TARGET: OnceLock<fn(&[u8])> = OnceLock::new();

fn chosen() -> fn(&[u8]) {
    *TARGET.get_or_init(|| {
        let name = std::env::var("VMUX_FUZZ_TARGET").unwrap_or_default();
        vmux::fuzz::target(&name).unwrap_or_else(|| {
            let names: Vec<&str> = vmux::fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
            eprintln!(
                "vmux-fuzz: set VMUX_FUZZ_TARGET to one of: {}",
                names.join(", ")
            );
            std::process::exit(2)
        })
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| chosen()(data));
