//! Helpers for tests that drive the real `vmux` binary with `VMUX_HOME` in a temp directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `vmux args...` with `VMUX_HOME=home`.
pub fn vmux(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmux"))
        .args(args)
        .env("VMUX_HOME", home)
        .output()
        .expect("run vmux")
}

/// Runs `vmux args...`, fails the test unless it succeeds, and returns its stdout.
pub fn ok(home: &Path, args: &[&str]) -> String {
    let out = vmux(home, args);
    assert!(
        out.status.success(),
        "vmux {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A guest-kit program built by build.rs (tests/guests/<name>.rs).
pub fn guest(name: &str) -> PathBuf {
    Path::new(env!("VMUX_GUEST_DIR")).join(format!("{name}.elf"))
}
