//! End-to-end tests of `vmux run` (a transient VM in the foreground): the real binary boots
//! guest-kit programs on /dev/kvm with the console on its stdin/stdout, and its exit status
//! says how the VM ended. Where /dev/kvm cannot be opened the tests skip, saying so, or fail
//! under CI (tests/common/prereq.rs). Each run is bounded by a timeout and uses a private
//! `VMUX_HOME` (which `run` must leave empty).

mod common;

use common::prereq::{Need, met};

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest one `vmux run` may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// What one `vmux run` did.
#[derive(Debug)]
struct Run {
    /// Exit status (`None`: killed by a signal).
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// A guest-kit program built by build.rs.
fn guest(name: &str) -> PathBuf {
    PathBuf::from(env!("VMUX_GUEST_DIR")).join(format!("{name}.elf"))
}

/// Runs `vmux run ARGS` with `stdin` piped in (then closed), bounded by [`RUN_TIMEOUT`].
fn vmux_run(args: &[&str], stdin: &[u8]) -> Run {
    let home = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmux"))
        .arg("run")
        .args(args)
        .env("VMUX_HOME", home.path())
        .env_remove("VMUX_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vmux");
    let mut pipe = child.stdin.take().expect("stdin pipe");
    let input = stdin.to_vec();
    std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let stdout = drain(child.stdout.take().expect("stdout pipe"));
    let stderr = drain(child.stderr.take().expect("stderr pipe"));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    assert!(status.is_some(), "vmux run {args:?} ran too long: {run:#?}");
    let left: Vec<_> = std::fs::read_dir(home.path())
        .expect("read VMUX_HOME")
        .collect();
    assert!(left.is_empty(), "vmux run wrote into VMUX_HOME: {left:?}");
    run
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn kernel_arg(name: &str) -> String {
    guest(name).display().to_string()
}

#[test]
fn hello_prints_its_line_and_powers_off_with_status_0() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let run = vmux_run(&["--kernel", &kernel_arg("hello")], b"");
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stdout, "hello from the vmux guest kit\r\n");
}

#[test]
fn launch_exits_through_the_debug_port_with_status_0() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let run = vmux_run(
        &["--kernel", &kernel_arg("launch"), "--memory", "256M"],
        b"",
    );
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stdout, "");
}

#[test]
fn flood_prints_exactly_the_lines_asked_for() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let run = vmux_run(
        &["--kernel", &kernel_arg("flood"), "--cmdline", "lines=5"],
        b"",
    );
    assert_eq!(run.code, Some(0), "{run:#?}");
    let lines: Vec<&str> = run.stdout.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 5, "{run:#?}");
    for (n, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("flood {} ", n + 1)), "{line:?}");
        assert_eq!(line.len(), 78, "{line:?}");
    }
}

#[test]
fn a_debug_exit_value_becomes_the_exit_status() {
    if !met(&[Need::Kvm]) {
        return;
    }
    // flood's bad-argument path prints a message and writes 1 to the debug-exit port.
    let run = vmux_run(
        &["--kernel", &kernel_arg("flood"), "--cmdline", "lines=x"],
        b"",
    );
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stdout.contains("flood: lines=x is not a number"),
        "{run:#?}"
    );
    assert!(run.stderr.is_empty(), "{run:#?}");
}

#[test]
fn typed_input_reaches_the_guest() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let run = vmux_run(&["--kernel", &kernel_arg("echo")], b"hi there\rpoweroff\r");
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("you typed: hi there"), "{run:#?}");
    assert!(run.stdout.contains("powering off"), "{run:#?}");
}

#[test]
fn a_guest_fault_exits_1_naming_rip() {
    if !met(&[Need::Kvm]) {
        return;
    }
    // Where the emulating KVM fails cmpxchg16b this is an internal error; with hardware
    // virtualization `fault` triple-faults instead. Either is a crash that names RIP.
    let run = vmux_run(&["--kernel", &kernel_arg("fault")], b"");
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stdout.contains("fault: "), "{run:#?}");
    assert!(
        run.stderr.starts_with("error: the VM crashed: "),
        "{run:#?}"
    );
    assert!(run.stderr.contains("RIP"), "{run:#?}");
}

#[test]
fn a_missing_kernel_is_refused_with_the_fix() {
    let run = vmux_run(&["--kernel", "/nonexistent/vmlinuz"], b"");
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("/nonexistent/vmlinuz"), "{run:#?}");
    assert!(
        run.stderr.contains("give the path of a readable file"),
        "{run:#?}"
    );
}
