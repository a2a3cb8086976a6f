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

/// Debian-like test disk images (scripts/make-test-images.sh) whose default grub entry boots
/// the demo guest as its "kernel", built once per `name` under the test target directory
/// (each test binary its own `name`: two builds must not share a directory). Err says why
/// they cannot be built (missing image tools).
pub fn demo_images(name: &str) -> Result<PathBuf, String> {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let initrd = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-initrd"));
    std::fs::write(&initrd, b"vmux test initrd for the demo kernel\n")
        .map_err(|e| format!("cannot write {}: {e}", initrd.display()))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-test-images.sh");
    let run = Command::new("bash")
        .arg(script)
        .arg("--kernel")
        .arg(guest("demo"))
        .arg("--initrd")
        .arg(&initrd)
        .arg(&out)
        .output()
        .map_err(|e| format!("cannot run make-test-images.sh: {e}"))?;
    if !run.status.success() {
        return Err(format!(
            "the test images cannot be built: {}",
            String::from_utf8_lossy(&run.stderr).trim()
        ));
    }
    Ok(out)
}
