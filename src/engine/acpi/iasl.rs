//! Test-only bridge to ACPICA's `iasl` (package `acpica-tools`): disassembles tables and
//! recompiles ASL so the tests check the AML with the reference implementation.

use std::path::Path;
use std::process::{Command, Output};

/// What `iasl` said when compiling ASL.
pub(super) struct CompileReport {
    /// Errors counted in iasl's summary line.
    pub(super) errors: u32,
    /// iasl's full stdout and stderr.
    pub(super) output: String,
}

fn run_iasl(dir: &Path, args: &[&str]) -> (Output, String) {
    let output = Command::new("iasl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run iasl ({e}); install acpica-tools (apt-get install acpica-tools)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

/// Disassembles one table with `iasl -d` and returns the ASL. Panics (failing the test) when
/// iasl fails or reports an error.
pub(super) fn disassemble(table: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("table.dat"), table).expect("write table");

    let (output, text) = run_iasl(dir.path(), &["-d", "table.dat"]);

    assert!(output.status.success(), "iasl -d failed:\n{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("Error")).collect();
    assert!(errors.is_empty(), "iasl -d reported errors:\n{text}");
    std::fs::read_to_string(dir.path().join("table.dsl")).expect("iasl wrote table.dsl")
}

/// Compiles ASL with `iasl` and returns the error count from its summary line.
pub(super) fn compile(asl: &str) -> CompileReport {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("table.dsl"), asl).expect("write asl");

    let (_, output) = run_iasl(dir.path(), &["table.dsl"]);

    // Summary: "Compilation complete. 0 Errors, 1 Warnings, 0 Remarks, ...".
    let errors = output
        .lines()
        .find_map(|line| {
            let (_, rest) = line.split_once("Compilation ")?;
            let count = rest.split_once(". ")?.1.split_once(" Errors")?.0;
            count.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no iasl summary line in:\n{output}"));
    CompileReport { errors, output }
}
