//! vmd confinement as a user would check it (docs/security.md, "vmd confinement"): every
//! thread runs under its seccomp filter with no privileges, the guest kit's workloads and
//! hostile guests run under the filters, a forbidden system call from any thread kind ends vmd
//! with the reason in `vmux info`, vmd.log stays bounded under a flooding guest, idle control
//! connections cannot lock out `destroy`, and a user without root runs a VM.
//!
//! Each test has its own `VMUX_HOME` in a temp dir and drives the real `vmux` binary.

mod common;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use common::binary::{guest, ok};
use common::prereq::{Need, met};
use serde_json::Value;

/// The longest a VM here may take to do its work.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A private vmux home; kills its vmds when the test ends.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `vmux args...` with extra environment variables.
    fn vmux_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vmux"));
        command.args(args).env("VMUX_HOME", self.path());
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().expect("run vmux")
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(self.path(), args)
    }

    /// Defines VM `name` booting guest-kit program `program` with `cmdline` and `disks`.
    fn define(&self, name: &str, program: &str, cmdline: &str, disks: &[&Path]) {
        let kernel = guest(program);
        let mut args = vec![
            "create".to_owned(),
            name.to_owned(),
            "--kernel".to_owned(),
            kernel.display().to_string(),
            "--memory".to_owned(),
            "64M".to_owned(),
            "--cmdline".to_owned(),
            cmdline.to_owned(),
        ];
        for disk in disks {
            args.push("--disk".to_owned());
            args.push(disk.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&args);
    }

    /// A raw image of `mib` MiB in this home.
    fn disk(&self, name: &str, mib: u64) -> PathBuf {
        let path = self.path().join(name);
        let file = std::fs::File::create(&path).expect("create disk");
        file.set_len(mib << 20).expect("size disk");
        path
    }

    /// `vmux info --json`; asked again when it fails because the vmd it asked was just
    /// ending (it closes the connection).
    fn info(&self, name: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.vmux_env(&["info", name, "--json"], &[]);
            if out.status.success() {
                return serde_json::from_slice(&out.stdout).expect("info json");
            }
            assert!(
                Instant::now() < deadline,
                "vmux info {name} keeps failing: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn state(&self, name: &str) -> String {
        self.info(name)["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn state_dir(&self, name: &str) -> PathBuf {
        self.path().join("state/vms").join(name)
    }

    fn console_log(&self, name: &str) -> String {
        read_text(&self.state_dir(name).join("console.log"))
    }

    fn vmd_log(&self, name: &str) -> String {
        read_text(&self.state_dir(name).join("vmd.log"))
    }

    fn socket(&self, name: &str) -> PathBuf {
        self.path().join("run").join(format!("{name}.sock"))
    }

    /// vmd's pid while it runs.
    fn vmd_pid(&self, name: &str) -> Option<u32> {
        self.info(name)["pid"].as_u64().map(|pid| pid as u32)
    }

    fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until vmd for `name` has exited (its pid file is gone and nothing answers).
    fn wait_until_over(&self, name: &str) {
        let pid_file = self.state_dir(name).join("vmd.pid");
        self.wait_until(&format!("the vmd of {name} has exited"), || {
            !pid_file.exists() && !self.socket(name).exists()
        });
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.path().join("state/vms")) else {
            return;
        };
        for entry in entries.flatten() {
            let pid = std::fs::read_to_string(entry.path().join("vmd.pid")).unwrap_or_default();
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

fn read_text(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// `field` of `/proc/<pid>/task/<tid>/status` for every thread of `pid`, with the thread name.
fn thread_status(pid: u32, field: &str) -> Vec<(String, String)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
    tasks
        .flatten()
        .filter_map(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            let status = std::fs::read_to_string(task.path().join("status")).ok()?;
            let value = status
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{field}:")))?
                .trim()
                .to_owned();
            Some((comm.trim().to_owned(), value))
        })
        // KVM's own kernel worker threads show up among the process's tasks.
        .filter(|(comm, _)| !comm.starts_with("kvm"))
        .collect()
}

#[test]
fn every_vmd_thread_runs_under_a_filter_without_privileges() {
    let home = Home::new();
    home.ok(&["create", "d", "--demo", "--memory", "64M"]);
    home.ok(&["start", "d"]);
    let pid = home.vmd_pid("d").expect("running");

    let seccomp = thread_status(pid, "Seccomp");
    assert!(seccomp.len() >= 8, "{seccomp:?}");
    for (thread, mode) in &seccomp {
        assert_eq!(mode, "2", "thread {thread} is not filtered");
    }
    for (thread, value) in thread_status(pid, "NoNewPrivs") {
        assert_eq!(value, "1", "thread {thread}");
    }
    for (thread, caps) in thread_status(pid, "CapEff") {
        assert_eq!(
            caps, "0000000000000000",
            "thread {thread} keeps capabilities"
        );
    }
    for (thread, caps) in thread_status(pid, "CapPrm") {
        assert_eq!(
            caps, "0000000000000000",
            "thread {thread} keeps capabilities"
        );
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert!(status.contains("Umask:\t0077"), "{status}");

    home.ok(&["destroy", "d"]);
}

#[test]
fn vmux_seccomp_off_runs_vmd_without_filters() {
    let home = Home::new();
    home.ok(&["create", "d", "--demo", "--memory", "64M"]);
    let out = home.vmux_env(&["start", "d"], &[("VMUX_SECCOMP", "off")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = home.vmd_pid("d").expect("running");

    for (thread, mode) in thread_status(pid, "Seccomp") {
        assert_eq!(mode, "0", "thread {thread}");
    }
    assert!(home.vmd_log("d").contains("VMUX_SECCOMP=off"));
    home.ok(&["destroy", "d"]);
}

#[test]
fn a_bad_vmux_seccomp_value_is_refused_naming_the_choices() {
    let home = Home::new();
    home.ok(&["create", "d", "--demo", "--memory", "64M"]);
    let out = home.vmux_env(&["start", "d"], &[("VMUX_SECCOMP", "maybe")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("VMUX_SECCOMP=maybe") && err.contains("`off`"),
        "{err}"
    );
}

/// Starts `name` with the test hook making the first thread of `kind` call `sysinfo`, runs
/// `trigger` (which makes such a thread exist), and checks that vmd ended with the call and the
/// thread named in `vmux info`.
fn assert_violation_ends_vmd(kind: &str, thread: &str, trigger: impl FnOnce(&Home)) {
    let home = Home::new();
    let disk = home.disk("d.raw", 4);
    home.define("v", "hotplug", "", &[&disk]);
    // The start itself may fail when the thread is one the start waits for (vCPU 0).
    let _ = home.vmux_env(&["start", "v"], &[("VMUX_TEST_SECCOMP_VIOLATION", kind)]);
    trigger(&home);
    home.wait_until_over("v");

    let info = home.info("v");
    assert_eq!(info["state"], "crashed", "{kind}: {info}");
    let reason = info["reason"].as_str().unwrap_or_default();
    let expected = format!("blocked system call 99 (sysinfo) on thread {thread}");
    assert!(reason.starts_with(&expected), "{kind}: {reason}");
    let log = home.vmd_log("v");
    assert!(log.contains(&expected), "{kind}: {log}");
}

fn nothing(_: &Home) {}

#[test]
fn a_forbidden_call_on_the_main_thread_ends_vmd_with_the_reason() {
    assert_violation_ends_vmd("main", "main", nothing);
}

#[test]
fn a_forbidden_call_on_a_vcpu_ends_vmd_with_the_reason() {
    assert_violation_ends_vmd("vcpu", "vcpu0", nothing);
}

#[test]
fn a_forbidden_call_on_a_block_worker_ends_vmd_with_the_reason() {
    let home = Home::new();
    let disk = home.disk("d.raw", 4);
    home.define("v", "blk", "", &[&disk]);
    let _ = home.vmux_env(&["start", "v"], &[("VMUX_TEST_SECCOMP_VIOLATION", "blk")]);
    home.wait_until_over("v");
    let reason = home.info("v")["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.starts_with("blocked system call 99 (sysinfo) on thread blk"),
        "{reason}"
    );
}

#[test]
fn a_forbidden_call_on_a_balloon_worker_ends_vmd_with_the_reason() {
    // The demo guest brings its balloon up at boot, which starts the worker.
    let home = Home::new();
    home.ok(&["create", "v", "--demo", "--memory", "64M"]);
    let _ = home.vmux_env(
        &["start", "v"],
        &[("VMUX_TEST_SECCOMP_VIOLATION", "balloon")],
    );
    home.wait_until_over("v");
    let reason = home.info("v")["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.starts_with("blocked system call 99 (sysinfo) on thread balloon"),
        "{reason}"
    );
}

#[test]
fn a_forbidden_call_on_a_connection_thread_ends_vmd_with_the_reason() {
    assert_violation_ends_vmd("conn", "conn", |home| {
        let _ = home.vmux_env(&["info", "v"], &[]);
    });
}

#[test]
fn a_forbidden_call_on_an_events_thread_ends_vmd_with_the_reason() {
    assert_violation_ends_vmd("events", "events", |home| {
        if let Ok(mut stream) = UnixStream::connect(home.socket("v")) {
            use std::io::Write;
            let _ = stream.write_all(b"{\"id\":1,\"cmd\":\"subscribe\"}\n");
            thread::sleep(Duration::from_millis(500));
        }
    });
}

#[test]
fn a_forbidden_call_on_a_console_output_thread_ends_vmd_with_the_reason() {
    assert_violation_ends_vmd("console-out", "console-out", |home| {
        if let Ok(mut stream) = UnixStream::connect(home.socket("v")) {
            use std::io::Write;
            let _ = stream.write_all(b"{\"id\":1,\"cmd\":\"console\",\"history\":true}\n");
            thread::sleep(Duration::from_millis(500));
        }
    });
}

#[test]
fn a_forbidden_call_on_the_control_stats_console_log_signals_log_or_observer_thread_ends_vmd() {
    for kind in [
        "control",
        "stats",
        "console-log",
        "signals",
        "log",
        "observer",
    ] {
        assert_violation_ends_vmd(kind, kind, nothing);
    }
}

#[test]
fn a_forbidden_call_on_the_thread_factory_fails_the_start_and_is_logged() {
    // The factory cannot hand the report to the reaper (it would have to start it): the
    // SIGSYS handler writes it to vmd.log and ends vmd itself after its wait.
    let home = Home::new();
    home.ok(&["create", "d", "--demo", "--memory", "64M"]);
    let out = home.vmux_env(
        &["start", "d"],
        &[("VMUX_TEST_SECCOMP_VIOLATION", "factory")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vmd.log"));
    assert!(
        home.vmd_log("d")
            .contains("blocked system call 99 (sysinfo) on thread factory")
    );
}

#[test]
fn a_forbidden_call_on_the_reaper_still_ends_vmd_and_is_logged() {
    // The reaper cannot read its own report: the SIGSYS handler writes it to vmd.log and ends
    // vmd itself after its wait, so the VM shows as crashed (vmd exited unexpectedly).
    let home = Home::new();
    home.ok(&["create", "d", "--demo", "--memory", "64M"]);
    let _ = home.vmux_env(
        &["start", "d"],
        &[("VMUX_TEST_SECCOMP_VIOLATION", "reaper")],
    );
    home.wait_until("the reaper's violation is logged", || {
        home.vmd_log("d")
            .contains("blocked system call 99 (sysinfo) on thread reaper")
    });
    home.wait_until("vmd is gone", || home.state("d") != "running");
    assert_eq!(home.state("d"), "crashed");
}

#[test]
fn guest_workloads_run_under_the_filters() {
    let home = Home::new();
    let disk = home.disk("d.raw", 8);
    home.define("flood", "flood", "lines=2000", &[]);
    home.define("stress", "blkstress", "writes=200", &[&disk]);
    home.ok(&["start", "flood"]);
    home.ok(&["start", "stress"]);
    home.wait_until_over("flood");
    home.wait_until_over("stress");

    assert_eq!(home.state("flood"), "shut_off");
    assert!(home.console_log("flood").contains("flood 2000 "));
    assert_eq!(home.state("stress"), "shut_off");
    assert!(
        home.console_log("stress")
            .contains("blkstress: 00:01.0 done")
    );
}

#[test]
fn the_balloon_save_and_restore_run_under_the_filters() {
    let home = Home::new();
    home.ok(&["create", "v", "--demo", "--memory", "64M"]);
    home.ok(&["start", "v"]);
    let given_back = |home: &Home| {
        let out = home.vmux_env(&["dommemstat", "v", "--json"], &[]);
        serde_json::from_slice::<Value>(&out.stdout)
            .map(|stats| stats["balloon"]["actual_bytes"].as_u64())
            .ok()
            .flatten()
    };
    // The balloon worker releases the pages (madvise) under its own filter.
    home.ok(&["setmem", "v", "48M", "--live"]);
    home.wait_until("the demo gave 16 MiB back", || {
        given_back(&home) == Some(16 << 20)
    });

    // The save runs on the connection thread that asked; the restore on the main thread.
    home.ok(&["managedsave", "v"]);
    assert_eq!(home.state("v"), "saved");
    home.ok(&["start", "v"]);
    assert_eq!(home.state("v"), "running");
    assert_eq!(given_back(&home), Some(16 << 20));
    home.ok(&["setmem", "v", "64M", "--live"]);
    home.wait_until("the demo took its memory back", || {
        given_back(&home) == Some(0)
    });

    assert!(!home.vmd_log("v").contains("blocked system call"));
    home.ok(&["destroy", "v"]);
}

#[test]
fn stopping_and_continuing_vmd_leaves_the_vm_running() {
    // A stop interrupts every timed sleep in vmd; on SIGCONT the kernel resumes them through
    // `restart_syscall` (as it does after `strace -p` or a debugger detaches), which the filters
    // must allow.
    let home = Home::new();
    home.ok(&["create", "v", "--demo", "--memory", "64M"]);
    home.ok(&["start", "v"]);
    let pid = home.vmd_pid("v").expect("vmd pid");
    let vmd = nix::unistd::Pid::from_raw(pid as i32);
    for _ in 0..3 {
        nix::sys::signal::kill(vmd, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
        thread::sleep(Duration::from_millis(300));
        nix::sys::signal::kill(vmd, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
        thread::sleep(Duration::from_millis(300));
    }
    // The reaper needs a moment to end a vmd whose thread was trapped.
    thread::sleep(Duration::from_secs(2));
    assert!(
        !home.vmd_log("v").contains("blocked system call"),
        "{}",
        home.vmd_log("v")
    );
    assert_eq!(home.state("v"), "running");
    assert_eq!(home.vmd_pid("v"), Some(pid));
    home.ok(&["destroy", "v"]);
}

#[test]
fn a_hostile_disk_driver_does_not_hurt_vmd_under_the_filters() {
    let home = Home::new();
    let disk = home.disk("d.raw", 4);
    home.define("evil", "evil_blk", "rounds=3", &[&disk]);
    home.ok(&["start", "evil"]);
    home.wait_until_over("evil");

    assert_eq!(home.state("evil"), "shut_off");
    let console = home.console_log("evil");
    assert!(
        console.contains("evil-blk: survived 30 bad requests"),
        "{console}"
    );
}

#[test]
fn register_abuse_does_not_hurt_vmd_under_the_filters() {
    let home = Home::new();
    let disk = home.disk("d.raw", 4);
    home.define("evil", "evil_regs", "", &[&disk]);
    home.ok(&["start", "evil"]);
    home.wait_until("the guest has written every register", || {
        home.console_log("evil")
            .contains("evil-regs: ejecting cpu 0")
    });
    // Ejecting its own boot CPU may stop the guest or be ignored; either way vmd answers and
    // the VM can be ended.
    thread::sleep(Duration::from_millis(500));
    if home.state("evil") == "running" {
        home.ok(&["destroy", "evil"]);
    }
    home.wait_until_over("evil");
    assert_eq!(home.state("evil"), "shut_off");
    assert!(home.console_log("evil").contains("evil-regs: survived"));
}

#[test]
fn a_guest_flooding_vmd_with_bad_requests_cannot_grow_its_log() {
    let home = Home::new();
    let disk = home.disk("d.raw", 4);
    home.define("flood", "evil_blk", "rounds=0", &[&disk]);
    let started = Instant::now();
    home.ok(&["start", "flood"]);
    home.wait_until("the guest has flooded for a while", || {
        home.console_log("flood").contains("evil-blk: round 16")
    });
    thread::sleep(Duration::from_secs(5));
    home.ok(&["destroy", "flood"]);
    let seconds = started.elapsed().as_secs() + 1;
    home.wait_until_over("flood");

    let log = home.vmd_log("flood");
    let rotated = read_text(&home.state_dir("flood").join("vmd.log.1"));
    let bound = 1 << 20;
    assert!(log.len() <= bound && rotated.len() <= bound);
    // Each complaint's call site (the worker has seven) gets one line a second; the rest are
    // counted. Unlimited, this guest makes about 27 a second here.
    let complaints = log.lines().filter(|l| l.contains("virtio-blk")).count() as u64;
    assert!(
        complaints <= 7 * seconds,
        "{complaints} lines in {seconds} s:\n{log}"
    );
    assert!(log.contains("similar lines suppressed"), "{log}");
}

#[test]
fn idle_control_connections_cannot_lock_the_owner_out() {
    let home = Home::new();
    home.ok(&["create", "d", "--demo", "--memory", "64M"]);
    home.ok(&["start", "d"]);
    let idle: Vec<UnixStream> = (0..80)
        .filter_map(|_| UnixStream::connect(home.socket("d")).ok())
        .collect();
    assert!(idle.len() >= 64);

    home.ok(&["destroy", "d"]);
    home.wait_until_over("d");
    assert_eq!(home.state("d"), "shut_off");
}

#[test]
fn an_idle_control_connection_is_closed() {
    use std::io::Read;
    let home = Home::new();
    home.ok(&["create", "d", "--demo", "--memory", "64M"]);
    home.ok(&["start", "d"]);
    let mut idle = UnixStream::connect(home.socket("d")).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(45)))
        .expect("timeout");
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let n = idle
        .read(&mut byte)
        .expect("vmd closes, not the test's timeout");
    assert_eq!(n, 0);
    assert!(started.elapsed() >= Duration::from_secs(25));
    home.ok(&["destroy", "d"]);
}

/// A user made for one test (`useradd`, unique name), removed with its files when dropped.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    dir: tempfile::TempDir,
}

impl TestUser {
    fn create() -> TestUser {
        let name = format!("vmuxconf{}", std::process::id());
        let status = Command::new("useradd")
            .args([
                "--no-create-home",
                "--no-user-group",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(&name)
            .status()
            .expect("run useradd");
        assert!(status.success(), "useradd {name} failed");
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, &name]).output().expect("id");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("numeric id")
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let dir = tempfile::tempdir().expect("tempdir");
        let chown = |path: &Path| {
            nix::unistd::chown(
                path,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .expect("chown");
        };
        chown(dir.path());
        // The user's own copy of the binary, wherever the build tree lives.
        let exe = dir.path().join("vmux");
        std::fs::copy(env!("CARGO_BIN_EXE_vmux"), &exe).expect("copy vmux");
        chown(&exe);
        TestUser {
            name,
            uid,
            gid,
            dir,
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `vmux args...` run as this user (no capabilities, no supplementary groups), with
    /// `/dev/kvm` replaced in a private mount namespace by a device node the user owns: the
    /// test grants KVM to one user without touching the host's /dev/kvm, as membership of the
    /// `kvm` group would.
    fn vmux(&self, args: &[&str]) -> Output {
        let kvm = self.dir.path().join("kvm");
        let script = r#"mount --bind "$1" /dev/kvm && shift && exec "$@""#;
        Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(&kvm)
            .args(["setpriv", "--clear-groups"])
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--inh-caps=-all")
            .arg("env")
            .arg(format!("VMUX_HOME={}", self.home().display()))
            .arg(self.dir.path().join("vmux"))
            .args(args)
            .output()
            .expect("run vmux as the test user")
    }

    /// Makes the private KVM node (char 10:232, the user's, mode 0600).
    fn grant_kvm(&self) {
        let kvm = self.dir.path().join("kvm");
        let rdev = std::fs::metadata("/dev/kvm")
            .map(|m| std::os::unix::fs::MetadataExt::rdev(&m))
            .expect("/dev/kvm");
        nix::sys::stat::mknod(
            &kvm,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            rdev,
        )
        .expect("mknod");
        nix::unistd::chown(
            &kvm,
            Some(nix::unistd::Uid::from_raw(self.uid)),
            Some(nix::unistd::Gid::from_raw(self.gid)),
        )
        .expect("chown kvm");
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Its vmd first (killed by pid), then the user.
        let pid_file = self.home().join("state/vms/d/vmd.pid");
        if let Ok(pid) = std::fs::read_to_string(pid_file)
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_user_without_root_runs_the_demo_with_an_unprivileged_vmd() {
    // Creating the test user and its private /dev/kvm needs root, as NetAdmin does.
    if !met(&[Need::Kvm, Need::NetAdmin]) {
        return;
    }
    let user = TestUser::create();
    user.grant_kvm();

    let out = user.vmux(&["create", "d", "--demo", "--memory", "64M"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = user.vmux(&["start", "d"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = user.vmux(&["info", "d", "--json"]);
    let info: Value = serde_json::from_slice(&out.stdout).expect("info json");
    assert_eq!(info["state"], "running", "{info}");
    let pid = info["pid"].as_u64().expect("pid") as u32;

    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("Uid"), user.uid.to_string());
    assert_eq!(field("CapEff"), "0000000000000000");
    assert_eq!(field("Seccomp"), "2");
    let console = user.home().join("state/vms/d/console.log");
    let deadline = Instant::now() + TIMEOUT;
    while !read_text(&console).contains("demo$ ") {
        assert!(
            Instant::now() < deadline,
            "the demo never printed its prompt"
        );
        thread::sleep(Duration::from_millis(50));
    }

    let out = user.vmux(&["destroy", "d"]);
    assert!(out.status.success(), "{}", text(&out));
}
