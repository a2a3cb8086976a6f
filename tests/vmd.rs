//! vmd as real processes: each test gets its own `VMUX_HOME` in a temp dir, drives the `vmux`
//! binary's `__vmd` through `LocalHost`, and checks what a user would: states, replies, the
//! console, and that nothing (process, socket, pid file) is left behind.

mod common;

use common::prereq::{Need, met};

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vmux::client::{ClientError, Console, Host, LocalHost};
use vmux::config::{BootConfig, VmConfig};
use vmux::protocol::RunState;

/// The longest any single wait in these tests may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The demo guest's banner and prompt.
const DEMO_BANNER: &str = "vmux demo guest";
const DEMO_PROMPT: &str = "demo$ ";

/// A guest-kit program built by build.rs (tests/guests/<name>.rs).
fn kit_guest(name: &str) -> PathBuf {
    Path::new(env!("VMUX_GUEST_DIR")).join(format!("{name}.elf"))
}

/// Polls `cond` every 10 ms until it holds; fails the test after [`TIMEOUT`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Collects a console's output on a thread of its own, so reads never block a test.
struct ConsoleTap {
    seen: Arc<Mutex<Vec<u8>>>,
    input: Box<dyn Write + Send>,
}

impl ConsoleTap {
    fn new(console: Console) -> ConsoleTap {
        let Console { mut output, input } = console;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = output.read(&mut buf) {
                sink.lock().expect("tap").extend_from_slice(&buf[..n]);
            }
        });
        ConsoleTap { seen, input }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().expect("tap")).into_owned()
    }

    fn wait_for(&self, needle: &str) -> String {
        wait_until(&format!("the console shows {needle:?}"), || {
            self.text().contains(needle)
        });
        self.text()
    }

    fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }
}

/// A private vmux home with a host over it.
struct TestHome {
    dir: tempfile::TempDir,
    host: LocalHost,
}

fn home() -> TestHome {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = LocalHost::with_home(dir.path()).with_vmd_exe(Path::new(env!("CARGO_BIN_EXE_vmux")));
    TestHome { dir, host }
}

impl TestHome {
    /// Defines VM `name` as the built-in demo guest (1 vCPU, 64 MiB) and starts it.
    fn run_demo(&self, name: &str) {
        let mut config = VmConfig::new(name, BootConfig::Demo);
        config.memory = 64 << 20;
        self.host.define(&config).expect("define");
        self.host.start(name).expect("start");
    }

    /// Defines VM `name` booting the guest-kit program `program` and starts it.
    fn run_kit(&self, name: &str, program: &str) {
        self.kernel_vm(name, &kit_guest(program));
        self.host.start(name).expect("start");
    }

    /// Waits until the VM is over and its vmd has exited (vmd records the final state a
    /// moment before it removes its socket and pid file and exits).
    fn wait_until_over(&self, name: &str) -> RunState {
        wait_until(&format!("{name} is over and its vmd gone"), || {
            !self.pid_file(name).exists() && self.vmd_processes().is_empty()
        });
        self.state(name)
    }

    /// Waits until the guest has printed its prompt (its boot is done).
    fn wait_for_prompt(&self, name: &str) {
        wait_until("the demo has printed its prompt", || {
            self.console_log(name).contains(DEMO_PROMPT)
        });
    }

    /// The VM's console log so far.
    fn console_log(&self, name: &str) -> String {
        let path = self.host.paths().vm_state_dir(name).join("console.log");
        String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
    }

    fn state(&self, name: &str) -> RunState {
        self.host.status(name).expect("status").state
    }

    /// Defines a VM booting `kernel`, written as the store writes it, without the checks
    /// `define` makes: these tests are about what `start` checks again (a kernel deleted,
    /// replaced or grown after the VM was defined).
    fn kernel_vm(&self, name: &str, kernel: &Path) -> VmConfig {
        let mut config = VmConfig::new(
            name,
            BootConfig::Kernel {
                kernel: kernel.to_path_buf(),
                initrd: None,
                cmdline: String::new(),
            },
        );
        config.memory = 64 << 20;
        self.store().create(&config).expect("define");
        config
    }

    fn store(&self) -> vmux::config::Store {
        vmux::config::Store::new(self.host.paths().clone())
    }

    fn socket(&self, name: &str) -> PathBuf {
        self.host.paths().socket(name)
    }

    fn pid_file(&self, name: &str) -> PathBuf {
        self.host.paths().vm_state_dir(name).join("vmd.pid")
    }

    /// Live (non-zombie) vmd processes started for this home.
    fn vmd_processes(&self) -> Vec<u32> {
        let needle = format!("VMUX_HOME={}", self.dir.path().display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let zombie = stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z'));
                !zombie
                    && contains(&cmdline, b"__vmd")
                    && environ
                        .split(|&b| b == 0)
                        .any(|var| var == needle.as_bytes())
            })
            .collect()
    }

    fn assert_nothing_left(&self, name: &str) {
        assert!(!self.socket(name).exists(), "socket left behind");
        assert!(!self.pid_file(name).exists(), "pid file left behind");
        // vmd releases its lock last and then exits; the process teardown (guest RAM, the
        // VM's descriptors) can take a moment on a busy host, so its exit is waited for.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.vmd_processes().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(self.vmd_processes(), Vec::<u32>::new(), "vmd left running");
    }
}

impl Drop for TestHome {
    /// A failed test must not leave busy guests behind.
    fn drop(&mut self) {
        for pid in self.vmd_processes() {
            if let Ok(raw) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn start_failure(result: Result<(), ClientError>) -> String {
    match result {
        Err(ClientError::StartFailed { message, .. }) => message,
        other => panic!("expected StartFailed, got {other:?}"),
    }
}

#[test]
fn starting_with_a_missing_kernel_names_the_file_and_spawns_nothing() {
    let home = home();
    home.kernel_vm("k", Path::new("/nonexistent/vmlinuz"));
    let message = start_failure(home.host.start("k"));
    assert!(message.contains("/nonexistent/vmlinuz"), "{message}");
    home.assert_nothing_left("k");
}

#[test]
fn starting_with_more_memory_than_the_host_has_is_refused() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    let kernel = home.dir.path().join("kernel");
    std::fs::write(&kernel, b"x").expect("write kernel");
    let mut config = home.kernel_vm("big", &kernel);
    config.memory = 1 << 50;
    home.store().save(&config).expect("update");
    let message = start_failure(home.host.start("big"));
    assert!(message.contains("available"), "{message}");
    home.assert_nothing_left("big");
}

#[test]
fn an_unbootable_kernel_reports_vmds_error_and_leaves_nothing_behind() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    let kernel = home.dir.path().join("garbage");
    std::fs::write(&kernel, vec![0xa5u8; 4096]).expect("write kernel");
    home.kernel_vm("bad", &kernel);
    let message = start_failure(home.host.start("bad"));
    // vmd's own message (the engine refused the image), not a host check.
    assert!(message.starts_with("cannot boot the VM"), "{message}");
    home.assert_nothing_left("bad");
    assert_eq!(
        home.host.status("bad").expect("status").state,
        RunState::ShutOff
    );
}

/// A stand-in for the vmux binary: a shell script with `body`.
fn fake_vmd(home: &TestHome, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = home.dir.path().join("fake-vmd");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[test]
fn a_vmd_that_never_reports_is_stopped_at_the_start_timeout() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.kernel_vm("slow", &kit_guest("hello"));
    let exe = fake_vmd(&home, "exec sleep 30");
    let host = LocalHost::with_home(home.dir.path())
        .with_vmd_exe(&exe)
        .with_start_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let message = start_failure(host.start("slow"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(message.contains("did not report within"), "{message}");
}

#[test]
fn a_vmd_that_exits_silently_points_at_its_log() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.kernel_vm("mute", &kit_guest("hello"));
    let exe = fake_vmd(&home, "exit 3");
    let host = LocalHost::with_home(home.dir.path()).with_vmd_exe(&exe);
    let message = start_failure(host.start("mute"));
    assert!(
        message.contains("exited without reporting") && message.contains("vmd.log"),
        "{message}"
    );
}

#[test]
fn starting_an_undefined_vm_names_it() {
    let home = home();
    let err = home.host.start("ghost").expect_err("unknown");
    assert!(err.to_string().contains("'ghost'"), "{err}");
}

#[test]
fn commands_to_a_stopped_vm_say_it_is_not_running() {
    let home = home();
    home.kernel_vm("idle", Path::new("/nonexistent/vmlinuz"));
    assert!(matches!(
        home.host.info("idle"),
        Err(ClientError::NotRunning(_))
    ));
    assert!(matches!(
        home.host.shutdown("idle"),
        Err(ClientError::NotRunning(_))
    ));
}

#[test]
fn undefine_removes_the_definition_and_its_state() {
    let home = home();
    home.kernel_vm("gone", Path::new("/nonexistent/vmlinuz"));
    let state_dir = home.host.paths().vm_state_dir("gone");
    std::fs::create_dir_all(&state_dir).expect("state dir");
    std::fs::write(state_dir.join("console.log"), b"old").expect("log");
    home.host.undefine("gone").expect("undefine");
    assert!(home.host.status("gone").is_err());
    assert!(!state_dir.exists());
}

#[test]
fn the_demo_starts_and_answers_on_its_console() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.run_demo("demo");
    let mut console = ConsoleTap::new(home.host.console("demo", true).expect("console"));
    console.wait_for(DEMO_PROMPT);
    console
        .input
        .write_all(b"echo hello-from-a-test\r")
        .expect("type");
    console.wait_for("\r\nhello-from-a-test\r\n");
    home.host.shutdown("demo").expect("shutdown");
    assert_eq!(home.wait_until_over("demo"), RunState::ShutOff);
    home.assert_nothing_left("demo");
}

#[test]
fn hello_prints_powers_off_and_is_shut_off() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.run_kit("hello", "hello");
    assert_eq!(home.wait_until_over("hello"), RunState::ShutOff);
    assert!(
        home.console_log("hello")
            .contains("hello from the vmux guest kit"),
        "{:?}",
        home.console_log("hello")
    );
    home.assert_nothing_left("hello");
}

#[test]
fn a_running_vm_answers_info_and_stats_and_pauses_and_resumes() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.run_demo("vm");
    let status = home.host.status("vm").expect("status");
    assert_eq!(status.state, RunState::Running);
    assert!(status.pid.is_some());
    let info = home.host.info("vm").expect("info");
    assert_eq!(
        (info.state, info.vcpus, info.boots),
        (RunState::Running, 1, 1)
    );
    assert_eq!(Some(info.pid), status.pid);
    wait_until("a stats sample counts the banner", || {
        home.host.stats("vm").expect("stats").serial_out_bytes > 0
    });
    let stats = home.host.stats("vm").expect("stats");
    assert_eq!(stats.vcpus.len(), 1);
    assert_eq!(stats.memory_bytes, 64 << 20);
    assert!(stats.rss_bytes > 0 && stats.exits > 0, "{stats:?}");
    home.host.suspend("vm").expect("suspend");
    assert_eq!(home.state("vm"), RunState::Paused);
    assert_eq!(home.host.info("vm").expect("info").state, RunState::Paused);
    home.host.resume("vm").expect("resume");
    assert_eq!(home.state("vm"), RunState::Running);
    home.host.destroy("vm").expect("destroy");
    assert_eq!(home.state("vm"), RunState::ShutOff);
    home.assert_nothing_left("vm");
}

#[test]
fn a_late_console_attach_gets_the_banner_from_history() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.run_demo("vm");
    home.wait_for_prompt("vm");
    let late = ConsoleTap::new(home.host.console("vm", true).expect("console"));
    let text = late.wait_for(DEMO_PROMPT);
    assert!(text.contains(DEMO_BANNER), "{text:?}");
    home.host.destroy("vm").expect("destroy");
}

#[test]
fn two_console_clients_both_see_output_and_both_can_type() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.run_demo("vm");
    let mut a = ConsoleTap::new(home.host.console("vm", true).expect("console a"));
    let mut b = ConsoleTap::new(home.host.console("vm", true).expect("console b"));
    a.wait_for(DEMO_PROMPT);
    a.input.write_all(b"echo from-a\r").expect("type a");
    for tap in [&a, &b] {
        tap.wait_for("\r\nfrom-a\r\n");
    }
    b.input.write_all(b"echo from-b\r").expect("type b");
    for tap in [&a, &b] {
        tap.wait_for("\r\nfrom-b\r\n");
    }
    home.host.destroy("vm").expect("destroy");
    home.assert_nothing_left("vm");
}

#[test]
fn info_stays_prompt_while_the_guest_floods_the_console() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.run_kit("vm", "flood");
    // One console client that never reads: it must not hold anything up.
    let _stalled = home.host.console("vm", true).expect("stalled console");
    let reader = ConsoleTap::new(home.host.console("vm", false).expect("console"));
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut replies = 0;
    while started.elapsed() < Duration::from_secs(10) {
        let asked = Instant::now();
        home.host.info("vm").expect("info during the flood");
        slowest = slowest.max(asked.elapsed());
        replies += 1;
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        slowest < Duration::from_secs(1),
        "slowest info took {slowest:?}"
    );
    assert!(replies > 50, "only {replies} replies in 10 s");
    assert!(
        reader.count("flood ") > 10,
        "the reading console saw the flood"
    );
    let stats = home.host.stats("vm").expect("stats");
    assert!(stats.serial_out_bytes > 10_000, "{stats:?}");
    home.host.destroy("vm").expect("destroy");
    home.assert_nothing_left("vm");
}

#[test]
fn a_vmd_killed_with_sigkill_shows_as_crashed_and_its_socket_is_cleaned() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.run_demo("vm");
    let pid = home.host.status("vm").expect("status").pid.expect("pid");
    kill(
        Pid::from_raw(i32::try_from(pid).expect("pid")),
        Signal::SIGKILL,
    )
    .expect("kill");
    wait_until("vmd is gone", || home.vmd_processes().is_empty());
    assert!(home.socket("vm").exists(), "the dead vmd left its socket");
    // The kernel releases vmd's lock once its last thread has exited.
    wait_until("the VM shows as crashed", || {
        home.state("vm") == RunState::Crashed
    });
    let status = home.host.status("vm").expect("status");
    assert_eq!(
        status.reason,
        Some(format!("vmd (pid {pid}) exited unexpectedly"))
    );
    assert!(
        !home.socket("vm").exists(),
        "status removed the stale socket"
    );
    // The VM can be started again.
    home.host.start("vm").expect("restart");
    assert_eq!(home.state("vm"), RunState::Running);
    home.host.destroy("vm").expect("destroy");
}

#[test]
fn reboot_brings_the_banner_back() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.run_demo("vm");
    let console = ConsoleTap::new(home.host.console("vm", true).expect("console"));
    console.wait_for(DEMO_PROMPT);
    home.host.reboot("vm").expect("reboot");
    wait_until("the banner is printed again", || {
        console.count(DEMO_BANNER) == 2
    });
    let info = home.host.info("vm").expect("info");
    assert_eq!((info.state, info.boots), (RunState::Running, 2));
    home.host.destroy("vm").expect("destroy");
}

#[test]
fn reset_boots_the_guest_again() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.run_demo("vm");
    home.wait_for_prompt("vm");
    home.host.reset("vm").expect("reset");
    wait_until("the second boot runs", || {
        home.host.info("vm").is_ok_and(|info| info.boots == 2)
    });
    let console = ConsoleTap::new(home.host.console("vm", true).expect("console"));
    wait_until("the second banner is in the history", || {
        console.count(DEMO_BANNER) == 2
    });
    home.host.destroy("vm").expect("destroy");
}

#[test]
fn a_guest_fault_is_crashed_with_the_instruction_pointer() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.run_kit("vm", "fault");
    assert_eq!(home.wait_until_over("vm"), RunState::Crashed);
    let reason = home
        .host
        .status("vm")
        .expect("status")
        .reason
        .expect("a reason");
    assert!(reason.contains("RIP"), "{reason}");
    home.assert_nothing_left("vm");
}

#[test]
fn a_running_vm_cannot_be_started_twice_or_undefined() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.run_demo("vm");
    assert!(matches!(
        home.host.start("vm"),
        Err(ClientError::AlreadyRunning(_))
    ));
    assert!(matches!(
        home.host.undefine("vm"),
        Err(ClientError::AlreadyRunning(_))
    ));
    home.host.destroy("vm").expect("destroy");
}

#[test]
fn destroy_then_start_at_once_works() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.run_demo("vm");
    home.host.destroy("vm").expect("destroy");
    home.host.start("vm").expect("start right after destroy");
    assert_eq!(home.host.info("vm").expect("info").boots, 1);
    home.host.destroy("vm").expect("destroy");
    home.assert_nothing_left("vm");
}

#[test]
fn sigterm_to_vmd_ends_the_vm_cleanly_as_shut_off() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = home();
    home.run_demo("vm");
    let pid = home.host.status("vm").expect("status").pid.expect("pid");
    kill(
        Pid::from_raw(i32::try_from(pid).expect("pid")),
        Signal::SIGTERM,
    )
    .expect("kill");
    assert_eq!(home.wait_until_over("vm"), RunState::ShutOff);
    home.assert_nothing_left("vm");
}
