//! End-to-end tests of the `vmux` command line: the real binary, run with `VMUX_HOME` in a
//! temporary directory so no test touches a user's VMs. Every run is bounded by a timeout.
//!
//! The first part needs no running VM (definitions and every refusal); the second boots the
//! demo guest on /dev/kvm; where /dev/kvm cannot be opened it skips, saying so, or fails under
//! CI (tests/common/prereq.rs).

mod common;

use common::prereq::{Need, met};

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run of `vmux` did.
#[derive(Debug)]
struct Run {
    /// Exit status code (`None`: killed by a signal).
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "vmux failed: {self:#?}");
        self.stdout
    }

    /// Asserts exit status 1 (an error, not a usage error) and returns stderr.
    fn fails(self) -> String {
        assert_eq!(self.code, Some(1), "vmux should have failed: {self:#?}");
        assert!(self.stderr.starts_with("error: "), "{self:#?}");
        self.stderr
    }
}

/// One private vmux home; destroys any VM still running when dropped.
struct Home {
    dir: tempfile::TempDir,
}

/// Longest any single command may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `vmux ARGS` with stdin closed.
    fn vmux(&self, args: &[&str]) -> Run {
        self.run(args, &[], None, COMMAND_TIMEOUT)
    }

    /// Runs `vmux ARGS` with extra environment, optional stdin bytes, bounded by `timeout`.
    fn run(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vmux"));
        command
            .args(args)
            .env("VMUX_HOME", self.path())
            .env_remove("VMUX_LOG")
            .env_remove("VISUAL")
            .env_remove("EDITOR")
            .envs(env.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn vmux");
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            let bytes = bytes.to_vec();
            // Written from a thread and then left open (dropped at the end of the thread), so
            // a console session sees its input and then end of input.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let stdout = drain(child.stdout.take().expect("stdout pipe"));
        let stderr = drain(child.stderr.take().expect("stderr pipe"));
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let run = Run {
            code: status.and_then(|s| s.code()),
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        };
        assert!(
            status.is_some(),
            "vmux {args:?} ran past {timeout:?}: {run:#?}"
        );
        run
    }

    /// Defines a demo VM.
    fn create_demo(&self, name: &str) {
        self.vmux(&["create", name, "--demo"]).ok();
    }

    fn vm_file(&self, name: &str) -> PathBuf {
        self.path().join("config/vms").join(format!("{name}.toml"))
    }

    /// `list --all --json`, parsed.
    fn list_json(&self) -> serde_json::Value {
        let out = self.vmux(&["list", "--all", "--json"]).ok();
        serde_json::from_str(&out).expect("list --json is JSON")
    }

    /// The state of `name` as `list --json` reports it.
    fn state(&self, name: &str) -> String {
        let list = self.list_json();
        let vm = list["vms"]
            .as_array()
            .expect("vms array")
            .iter()
            .find(|vm| vm["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {list}"));
        vm["state"].as_str().expect("state").to_string()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let Ok(out) = std::panic::catch_unwind(|| self.vmux(&["list", "--json"])) else {
            return;
        };
        let Ok(list) = serde_json::from_str::<serde_json::Value>(&out.stdout) else {
            return;
        };
        for vm in list["vms"].as_array().into_iter().flatten() {
            if let Some(name) = vm["name"].as_str() {
                let _ = self.run(&["destroy", name], &[], None, Duration::from_secs(20));
            }
        }
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Writes an executable shell script (an `$EDITOR` stand-in) and returns its path.
fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_string_lossy().into_owned()
}

// ---- definitions and refusals (no running VM needed) ----

#[test]
fn an_unknown_vm_is_named_with_the_fix_by_every_verb() {
    let home = Home::new();
    for verb in [
        "info",
        "stats",
        "start",
        "shutdown",
        "destroy",
        "reboot",
        "reset",
        "suspend",
        "resume",
        "undefine",
        "dumpconfig",
        "edit",
        "autostart",
        "console",
    ] {
        let err = home.vmux(&[verb, "ghost"]).fails();
        assert!(
            err.contains("no VM named 'ghost'") && err.contains("vmux list --all"),
            "{verb}: {err}"
        );
    }
}

#[test]
fn create_refuses_an_invalid_name() {
    let home = Home::new();
    let err = home.vmux(&["create", "a/b", "--demo"]).fails();
    assert!(err.contains("not a valid name"), "{err}");
}

#[test]
fn create_refuses_a_name_already_used() {
    let home = Home::new();
    home.create_demo("web");
    let err = home.vmux(&["create", "web", "--demo"]).fails();
    assert!(
        err.contains("already defined") && err.contains("vmux undefine web"),
        "{err}"
    );
}

#[test]
fn create_refuses_vcpus_above_max_vcpus() {
    let home = Home::new();
    let err = home
        .vmux(&[
            "create",
            "web",
            "--demo",
            "--vcpus",
            "4",
            "--max-vcpus",
            "2",
        ])
        .fails();
    assert!(err.contains("max_vcpus (2) is below vcpus (4)"), "{err}");
    assert!(!home.vm_file("web").exists());
}

#[test]
fn create_refuses_a_size_it_cannot_read() {
    let home = Home::new();
    let err = home
        .vmux(&["create", "web", "--demo", "--memory", "lots"])
        .fails();
    assert!(err.contains("512M"), "{err}");
}

#[test]
fn create_refuses_more_memory_than_the_host_has() {
    let home = Home::new();
    let err = home
        .vmux(&["create", "web", "--demo", "--memory", "64T"])
        .fails();
    assert!(err.contains("more than this host has"), "{err}");
}

#[test]
fn create_refuses_a_missing_kernel() {
    let home = Home::new();
    let err = home
        .vmux(&["create", "web", "--kernel", "/nonexistent/vmlinuz"])
        .fails();
    assert!(
        err.contains("cannot read the kernel /nonexistent/vmlinuz"),
        "{err}"
    );
}

#[test]
fn create_refuses_a_kernel_the_engine_cannot_load() {
    let home = Home::new();
    let empty = home.path().join("empty");
    fs::write(&empty, b"").expect("write");
    let random = home.path().join("random");
    fs::write(&random, [0x5au8; 4096]).expect("write");
    for kernel in [&empty, &random] {
        let err = home
            .vmux(&["create", "web", "--kernel", kernel.to_str().expect("utf-8")])
            .fails();
        assert!(err.contains("neither a Linux bzImage nor"), "{err}");
    }
    assert!(!home.vm_file("web").exists(), "nothing was defined");
}

#[test]
fn create_refuses_a_disk_that_does_not_exist() {
    let home = Home::new();
    let err = home
        .vmux(&["create", "web", "--demo", "--disk", "default/missing.qcow2"])
        .fails();
    assert!(
        err.contains("vmux vol-create-as default missing.qcow2 SIZE"),
        "{err}"
    );
    let err = home
        .vmux(&["create", "web", "--demo", "--disk", "/nonexistent/disk.raw"])
        .fails();
    assert!(err.contains("/nonexistent/disk.raw"), "{err}");
    assert!(!home.vm_file("web").exists(), "nothing was defined");
}

#[test]
fn create_stores_the_kernel_path_absolute() {
    let home = Home::new();
    fs::copy(guest("hello"), home.path().join("vmlinuz")).expect("copy a bootable image");
    let out = Command::new(env!("CARGO_BIN_EXE_vmux"))
        .args([
            "create",
            "web",
            "--kernel",
            "vmlinuz",
            "--cmdline",
            "console=ttyS0",
        ])
        .env("VMUX_HOME", home.path())
        .current_dir(home.path())
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    let toml = home.vmux(&["dumpconfig", "web"]).ok();
    let expected = format!("kernel = \"{}\"", home.path().join("vmlinuz").display());
    assert!(toml.contains(&expected), "{toml}");
}

#[test]
fn dumpconfig_then_define_round_trips() {
    let home = Home::new();
    home.vmux(&[
        "create",
        "web",
        "--demo",
        "--vcpus",
        "2",
        "--memory",
        "128M",
        "--autostart",
    ])
    .ok();
    let before = home.vmux(&["dumpconfig", "web"]).ok();
    let file = home.path().join("web.toml");
    fs::write(&file, &before).expect("write");
    home.vmux(&["undefine", "web"]).ok();
    let out = home
        .vmux(&["define", file.to_str().expect("utf-8 path")])
        .ok();
    assert!(out.contains("VM 'web' defined"), "{out}");
    assert_eq!(home.vmux(&["dumpconfig", "web"]).ok(), before);
}

#[test]
fn define_takes_the_name_from_the_file_and_refuses_a_duplicate() {
    let home = Home::new();
    let file = home.path().join("whatever.toml");
    fs::write(
        &file,
        "name = \"db\"\nvcpus = 1\nmax_vcpus = 4\nmemory = \"64M\"\n\n[boot]\nsource = \"demo\"\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf-8 path");
    home.vmux(&["define", path]).ok();
    assert_eq!(home.state("db"), "shut_off");
    let err = home.vmux(&["define", path]).fails();
    assert!(err.contains("already defined"), "{err}");
}

#[test]
fn define_reports_a_broken_file_with_its_line() {
    let home = Home::new();
    let file = home.path().join("bad.toml");
    fs::write(&file, "name = \"db\"\nvcpus = \"many\"\n").expect("write");
    let err = home
        .vmux(&["define", file.to_str().expect("utf-8 path")])
        .fails();
    assert!(err.contains("bad.toml:2:"), "{err}");
}

#[test]
fn dumpconfig_json_carries_the_definition() {
    let home = Home::new();
    home.vmux(&["create", "web", "--demo", "--vcpus", "3"]).ok();
    let out = home.vmux(&["dumpconfig", "web", "--json"]).ok();
    let cfg: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(cfg["vcpus"], 3);
    assert_eq!(cfg["max_vcpus"], 6);
    assert_eq!(cfg["memory"], "256M");
    assert_eq!(cfg["boot"]["source"], "demo");
}

#[test]
fn undefine_removes_the_vm_from_the_list() {
    let home = Home::new();
    home.create_demo("web");
    home.vmux(&["undefine", "web"]).ok();
    let list = home.list_json();
    assert_eq!(list["vms"].as_array().map(Vec::len), Some(0), "{list}");
    assert!(!home.vm_file("web").exists());
}

#[test]
fn autostart_sets_and_clears_the_flag() {
    let home = Home::new();
    home.create_demo("web");
    home.vmux(&["autostart", "web"]).ok();
    assert_eq!(home.list_json()["vms"][0]["autostart"], true);
    home.vmux(&["autostart", "web", "--disable"]).ok();
    assert_eq!(home.list_json()["vms"][0]["autostart"], false);
}

#[test]
fn autostart_all_with_nothing_marked_says_so() {
    let home = Home::new();
    home.create_demo("web");
    let out = home.vmux(&["autostart-all"]).ok();
    assert!(out.contains("No VM is marked for autostart"), "{out}");
    assert_eq!(home.state("web"), "shut_off");
}

#[test]
fn list_hides_shut_off_vms_unless_all() {
    let home = Home::new();
    home.create_demo("web");
    let out = home.vmux(&["list"]).ok();
    assert!(!out.contains("web"), "{out}");
    let out = home.vmux(&["list", "--all"]).ok();
    let row = out.lines().find(|l| l.contains("web")).expect("web listed");
    assert!(
        row.contains("shut off") && row.contains("1/4") && row.contains("256M"),
        "{row}"
    );
}

#[test]
fn list_json_has_a_stable_shape() {
    let home = Home::new();
    home.vmux(&[
        "create",
        "web",
        "--demo",
        "--vcpus",
        "2",
        "--max-vcpus",
        "8",
    ])
    .ok();
    let list = home.list_json();
    let vm = &list["vms"][0];
    assert_eq!(vm["name"], "web");
    assert_eq!(vm["state"], "shut_off");
    assert!(vm["pid"].is_null());
    assert_eq!(vm["vcpus"], 2);
    assert_eq!(vm["max_vcpus"], 8);
    assert_eq!(vm["memory_bytes"], 256u64 << 20);
    assert_eq!(vm["autostart"], false);
    assert!(vm["reason"].is_null());
    assert_eq!(list["errors"].as_array().map(Vec::len), Some(0));
}

#[test]
fn a_broken_definition_is_reported_with_file_and_line_while_others_list() {
    let home = Home::new();
    home.create_demo("good");
    fs::write(home.vm_file("bad"), "name = \"bad\"\nvcpus = \"many\"\n").expect("write");
    let run = home.vmux(&["list", "--all"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stderr.contains("bad.toml:2:"), "{run:#?}");
    assert!(run.stdout.contains("good"), "{run:#?}");
    let list = home.list_json();
    assert_eq!(list["errors"][0]["line"], 2);
    // The broken one is listed too (it sorts first), marked broken with the fix.
    assert_eq!(list["vms"][0]["name"], "bad");
    assert_eq!(list["vms"][0]["definition_error"]["fix"], "vmux edit bad");
    assert_eq!(list["vms"][1]["name"], "good");
    assert!(list["vms"][1]["definition_error"].is_null());
}

#[test]
fn edit_opens_a_broken_definition_as_it_is_and_saves_the_repair() {
    let home = Home::new();
    home.create_demo("web");
    let broken = fs::read_to_string(home.vm_file("web"))
        .expect("read")
        .replace("vcpus = 1", "vcpus = \"two\"");
    fs::write(home.vm_file("web"), &broken).expect("break it by hand");
    let editor = script(
        home.path(),
        "repair.sh",
        "sed -i 's/^vcpus = .*/vcpus = 2/' \"$1\"",
    );
    let run = home.run(
        &["edit", "web"],
        &[("EDITOR", &editor)],
        None,
        COMMAND_TIMEOUT,
    );
    assert!(run.stderr.contains("is broken"), "{run:#?}");
    assert!(run.ok().contains("VM 'web' updated"));
    assert!(home.vmux(&["info", "web"]).ok().contains("vCPUs:      2"));
}

#[test]
fn info_of_a_shut_off_vm_shows_the_definition() {
    let home = Home::new();
    home.vmux(&["create", "web", "--demo", "--vcpus", "2"]).ok();
    let out = home.vmux(&["info", "web"]).ok();
    assert!(out.contains("State:      shut off"), "{out}");
    assert!(out.contains("vCPUs:      2 (max 4)"), "{out}");
    assert!(out.contains("demo guest"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&home.vmux(&["info", "web", "--json"]).ok()).expect("json");
    assert_eq!(json["state"], "shut_off");
    assert!(json["uptime_s"].is_null());
}

#[test]
fn verbs_that_need_a_running_vm_say_how_to_start_it() {
    let home = Home::new();
    home.create_demo("web");
    for verb in [
        "stats", "shutdown", "destroy", "reboot", "reset", "suspend", "resume", "console",
    ] {
        let err = home.vmux(&[verb, "web"]).fails();
        assert!(
            err.contains("not running") && err.contains("vmux start web"),
            "{verb}: {err}"
        );
    }
}

#[test]
fn edit_with_a_failing_editor_changes_nothing() {
    let home = Home::new();
    home.create_demo("web");
    let before = fs::read_to_string(home.vm_file("web")).expect("read");
    let editor = script(home.path(), "fail.sh", "exit 3");
    let err = home
        .run(
            &["edit", "web"],
            &[("EDITOR", &editor)],
            None,
            COMMAND_TIMEOUT,
        )
        .fails();
    assert!(err.contains("failed") && err.contains("unchanged"), "{err}");
    assert_eq!(
        fs::read_to_string(home.vm_file("web")).expect("read"),
        before
    );
}

#[test]
fn edit_that_breaks_the_file_is_refused_with_its_line() {
    let home = Home::new();
    home.create_demo("web");
    let before = fs::read_to_string(home.vm_file("web")).expect("read");
    let editor = script(
        home.path(),
        "break.sh",
        "sed -i 's/^vcpus = .*/vcpus = \"many\"/' \"$1\"",
    );
    let err = home
        .run(
            &["edit", "web"],
            &[("EDITOR", &editor)],
            None,
            COMMAND_TIMEOUT,
        )
        .fails();
    assert!(err.contains("invalid") && err.contains("line 2"), "{err}");
    assert_eq!(
        fs::read_to_string(home.vm_file("web")).expect("read"),
        before
    );
}

#[test]
fn edit_saves_a_valid_change() {
    let home = Home::new();
    home.create_demo("web");
    let editor = script(
        home.path(),
        "grow.sh",
        "sed -i 's/^memory = .*/memory = \"512M\"/' \"$1\"",
    );
    let out = home
        .run(
            &["edit", "web"],
            &[("VISUAL", &editor)],
            None,
            COMMAND_TIMEOUT,
        )
        .ok();
    assert!(out.contains("VM 'web' updated"), "{out}");
    assert!(
        home.vmux(&["dumpconfig", "web"])
            .ok()
            .contains("memory = \"512M\"")
    );
}

#[test]
fn edit_without_changes_says_so() {
    let home = Home::new();
    home.create_demo("web");
    let out = home
        .run(
            &["edit", "web"],
            &[("EDITOR", "true")],
            None,
            COMMAND_TIMEOUT,
        )
        .ok();
    assert!(out.contains("No changes"), "{out}");
}

#[test]
fn edit_refuses_renaming() {
    let home = Home::new();
    home.create_demo("web");
    let editor = script(
        home.path(),
        "rename.sh",
        "sed -i 's/^name = .*/name = \"other\"/' \"$1\"",
    );
    let err = home
        .run(
            &["edit", "web"],
            &[("EDITOR", &editor)],
            None,
            COMMAND_TIMEOUT,
        )
        .fails();
    assert!(err.contains("renaming is not supported"), "{err}");
    assert!(!home.vm_file("other").exists());
}

#[test]
fn no_command_without_a_terminal_explains_the_full_screen_interface_needs_one() {
    let home = Home::new();
    let err = home.vmux(&[]).fails();
    assert!(
        err.contains("needs an interactive terminal") && err.contains("vmux list"),
        "{err}"
    );
}

#[test]
fn no_command_on_a_terminal_opens_the_full_screen_interface() {
    let home = Home::new();
    home.create_demo("listed-vm");
    let mut session = PtySession::spawn(&home, &[]);
    session.wait_for("listed-vm");
    assert!(!session.cooked(), "the interface runs in raw mode");

    session.type_bytes(b"q");

    assert_eq!(session.exit_code(), Some(0), "{}", session.screen());
    assert!(session.cooked(), "the terminal is restored");
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    let home = Home::new();
    home.create_demo("web");
    for args in [
        &["list", "--all", "--json"][..],
        &["list", "--all"],
        &["info", "web"],
        &["pool-list", "--json"],
        &["pool-list"],
        &["vol-list", "default"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vmux"))
            .args(args)
            .env("VMUX_HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vmux");
        // The only read end closes before vmux writes: its first write meets a closed pipe.
        drop(child.stdout.take());
        let stderr = drain(child.stderr.take().expect("stderr pipe"));
        let status = child.wait().expect("wait");
        let stderr = stderr.join().expect("stderr reader");
        assert_eq!(status.code(), Some(0), "vmux {args:?}: {stderr}");
        assert!(stderr.is_empty(), "vmux {args:?} complained: {stderr}");
    }
}

#[test]
fn usage_errors_exit_with_status_2() {
    let home = Home::new();
    let run = home.vmux(&["create", "web"]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(
        run.stderr
            .contains("give a boot source: --demo, --kernel PATH, --image POOL/VOL|PATH"),
        "{run:#?}"
    );
}

#[test]
fn define_fills_in_what_create_defaults() {
    let home = Home::new();
    let file = home.path().join("small.toml");
    fs::write(
        &file,
        "name = \"small\"\nvcpus = 2\n[boot]\nsource = \"demo\"\n",
    )
    .expect("write");
    home.vmux(&["define", file.to_str().expect("utf-8 path")])
        .ok();
    let out = home.vmux(&["info", "small"]).ok();
    assert!(out.contains("vCPUs:      2 (max 4)"), "{out}");
}

// ---- real VMs on /dev/kvm (the built-in demo guest and guest-kit programs) ----

/// What the demo guest prints first (tests/guests/README.md).
const DEMO_BANNER: &str = "vmux demo guest";
/// Longest a guest may take to reach an expected line on this (emulating) KVM.
const GUEST_TIMEOUT: &str = "30";

/// A guest-kit program built by build.rs.
fn guest(name: &str) -> String {
    format!("{}/{name}.elf", env!("VMUX_GUEST_DIR"))
}

/// Polls `check` every 100 ms for up to `secs` seconds.
fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

impl Home {
    /// Defines and starts a demo VM, and waits for its prompt.
    fn start_demo(&self, name: &str) -> u32 {
        self.vmux(&["create", name, "--demo", "--start"]).ok();
        self.wait_for_console(name, "demo\\$ ");
        self.pid(name)
    }

    /// vmd's pid from `info --json`.
    fn pid(&self, name: &str) -> u32 {
        let info: serde_json::Value =
            serde_json::from_str(&self.vmux(&["info", name, "--json"]).ok()).expect("json");
        info["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .expect("running VM has a pid")
    }

    /// Waits until the console (history included) matches `pattern`; returns the output.
    fn wait_for_console(&self, name: &str, pattern: &str) -> String {
        self.vmux(&[
            "console",
            name,
            "--until",
            pattern,
            "--timeout",
            GUEST_TIMEOUT,
        ])
        .ok()
    }
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_demo_vm_starts_lists_as_running_and_shuts_off_with_no_vmd_left() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    let pid = home.start_demo("web");
    let out = home.vmux(&["list"]).ok();
    let row = out.lines().find(|l| l.contains("web")).expect("web listed");
    assert!(
        row.contains("running") && row.contains(&pid.to_string()),
        "{row}"
    );

    let out = home.vmux(&["shutdown", "web"]).ok();

    assert!(out.contains("VM 'web' shut off"), "{out}");
    assert_eq!(home.state("web"), "shut_off");
    assert!(
        eventually(5, || !process_exists(pid)),
        "vmd {pid} still exists"
    );
    assert!(!home.vmux(&["list"]).ok().contains("web"));
}

#[test]
fn starting_a_running_vm_is_refused() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    home.start_demo("web");
    let err = home.vmux(&["start", "web"]).fails();
    assert!(
        err.contains("already running") && err.contains("vmux destroy web"),
        "{err}"
    );
    let err = home.vmux(&["undefine", "web"]).fails();
    assert!(err.contains("already running"), "{err}");
}

#[test]
fn console_pipe_sends_input_and_stops_when_the_output_matches() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    home.start_demo("web");
    let run = home.run(
        &[
            "console",
            "web",
            "--until",
            "(?m)^hi\r?$",
            "--timeout",
            GUEST_TIMEOUT,
        ],
        &[],
        Some(b"echo hi\r"),
        COMMAND_TIMEOUT,
    );
    let out = run.ok();
    assert!(out.contains(DEMO_BANNER), "history comes first: {out}");
    assert!(out.contains("demo$ echo hi"), "{out}");
}

#[test]
fn console_history_prints_the_buffer_and_exits() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    home.start_demo("web");
    let out = home.vmux(&["console", "web", "--history"]).ok();
    assert!(out.contains(DEMO_BANNER), "{out}");
}

#[test]
fn console_timeout_fails_with_a_message() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    home.start_demo("web");
    let err = home
        .vmux(&[
            "console",
            "web",
            "--no-history",
            "--until",
            "never printed",
            "--timeout",
            "1",
        ])
        .fails();
    assert!(
        err.contains("no console output matched 'never printed' within 1 s"),
        "{err}"
    );
    assert_eq!(home.state("web"), "running");
}

#[test]
fn suspend_and_resume_change_the_listed_state() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    home.start_demo("web");
    home.vmux(&["suspend", "web"]).ok();
    assert_eq!(home.state("web"), "paused");
    let err = home.vmux(&["shutdown", "web"]).fails();
    assert!(
        err.contains("paused") && err.contains("vmux resume web"),
        "{err}"
    );
    home.vmux(&["resume", "web"]).ok();
    assert_eq!(home.state("web"), "running");
    let err = home.vmux(&["resume", "web"]).fails();
    assert!(err.contains("not paused"), "{err}");
}

#[test]
fn a_running_vm_whose_definition_is_broken_stays_listed_and_controllable() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    let pid = home.start_demo("good");
    let text = fs::read_to_string(home.vm_file("good")).expect("read");
    fs::write(
        home.vm_file("good"),
        text.replace("vcpus = 1", "vcpus = \"two\""),
    )
    .expect("break it by hand");

    let run = home.vmux(&["list"]);
    let row = run
        .stdout
        .lines()
        .find(|l| l.contains("good"))
        .unwrap_or_else(|| panic!("good must stay listed: {run:#?}"));
    assert!(
        row.contains("running, definition broken") && row.contains(&pid.to_string()),
        "{row}"
    );
    assert!(run.stderr.contains("vmux edit good"), "{run:#?}");
    let info = home.vmux(&["info", "good"]).ok();
    assert!(
        info.contains("State:      running") && info.contains("Definition: broken"),
        "{info}"
    );
    let history = home.vmux(&["console", "good", "--history"]).ok();
    assert!(history.contains("demo"), "{history}");

    let out = home.vmux(&["destroy", "good"]).ok();

    assert!(out.contains("VM 'good' destroyed"), "{out}");
    assert!(
        eventually(5, || !process_exists(pid)),
        "vmd {pid} still exists"
    );
    let all = home.vmux(&["list", "--all"]).ok();
    assert!(all.contains("shut off, definition broken"), "{all}");
}

#[test]
fn wiping_a_volume_a_running_vm_holds_names_the_vm() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    home.start_demo("web");
    home.vmux(&[
        "vol-create-as",
        "default",
        "data.raw",
        "16M",
        "--format",
        "raw",
    ])
    .ok();
    home.vmux(&["attach-disk", "web", "default/data.raw", "--live"])
        .ok();

    let err = home.vmux(&["vol-wipe", "default", "data.raw"]).fails();

    assert!(
        err.contains("running VM 'web'") && err.contains("vmux detach-disk web vda"),
        "{err}"
    );
}

#[test]
fn destroy_stops_the_vm_at_once() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    let pid = home.start_demo("web");
    let out = home.vmux(&["destroy", "web"]).ok();
    assert!(out.contains("VM 'web' destroyed"), "{out}");
    assert_eq!(home.state("web"), "shut_off");
    assert!(
        eventually(5, || !process_exists(pid)),
        "vmd {pid} still exists"
    );
}

#[test]
fn reboot_boots_the_guest_again() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    let pid = home.start_demo("web");
    home.vmux(&["reboot", "web"]).ok();
    let banners = || {
        let out = home.vmux(&["console", "web", "--history"]).ok();
        out.matches(DEMO_BANNER).count()
    };
    assert!(
        eventually(30, || banners() >= 2),
        "no second banner after reboot"
    );
    let info: serde_json::Value =
        serde_json::from_str(&home.vmux(&["info", "web", "--json"]).ok()).expect("json");
    assert_eq!(info["boots"], 2);
    assert_eq!(info["pid"], pid, "a reboot keeps the same vmd");
}

#[test]
fn reset_boots_the_guest_again_at_once() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    home.start_demo("web");
    let out = home.vmux(&["reset", "web"]).ok();
    assert!(out.contains("VM 'web' was reset"), "{out}");
    let boots = || {
        let info: serde_json::Value =
            serde_json::from_str(&home.vmux(&["info", "web", "--json"]).ok()).expect("json");
        info["boots"].as_u64()
    };
    assert!(
        eventually(30, || boots() == Some(2)),
        "boots: {:?}",
        boots()
    );
    assert_eq!(home.state("web"), "running");
}

#[test]
fn stats_reports_a_running_vm() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    home.start_demo("web");
    let stats: serde_json::Value =
        serde_json::from_str(&home.vmux(&["stats", "web", "--json"]).ok()).expect("json");
    assert_eq!(stats["name"], "web");
    assert_eq!(stats["memory_bytes"], 256u64 << 20);
    assert_eq!(stats["vcpus"].as_array().map(Vec::len), Some(1));
    let out = home.vmux(&["stats", "web"]).ok();
    assert!(out.contains("CPU:") && out.contains("vcpu0"), "{out}");
}

#[test]
fn shutdown_of_a_guest_that_ignores_the_button_times_out_and_leaves_it_running() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    // The echo guest never looks at the power button.
    home.vmux(&["create", "deaf", "--kernel", &guest("echo"), "--start"])
        .ok();
    home.wait_for_console("deaf", "echo ready");
    let err = home.vmux(&["shutdown", "deaf", "--timeout", "2"]).fails();
    assert!(
        err.contains("did not shut down within 2 s") && err.contains("vmux destroy deaf"),
        "{err}"
    );
    assert_eq!(home.state("deaf"), "running");
}

#[test]
fn autostart_all_starts_marked_vms_and_reports_each() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    home.vmux(&["create", "marked", "--demo", "--autostart"])
        .ok();
    home.create_demo("unmarked");

    let out = home.vmux(&["autostart-all"]).ok();

    assert!(out.contains("marked: started"), "{out}");
    assert_eq!(home.state("marked"), "running");
    assert_eq!(home.state("unmarked"), "shut_off");
    let out = home.vmux(&["autostart-all"]).ok();
    assert!(out.contains("marked: already running"), "{out}");
}

/// `vmux` on a pseudo-terminal, as a person at a terminal runs it.
struct PtySession {
    child: std::process::Child,
    /// The terminal side vmux sees (kept to inspect its modes).
    slave: std::os::fd::OwnedFd,
    master: fs::File,
    /// Everything vmux wrote to the terminal so far.
    screen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl PtySession {
    fn spawn(home: &Home, args: &[&str]) -> PtySession {
        let size = nix::pty::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(&size, None).expect("openpty");
        let end = || Stdio::from(pty.slave.try_clone().expect("dup pty"));
        let child = Command::new(env!("CARGO_BIN_EXE_vmux"))
            .args(args)
            .env("VMUX_HOME", home.path())
            .stdin(end())
            .stdout(end())
            .stderr(end())
            .spawn()
            .expect("spawn vmux");
        let master = fs::File::from(pty.master);
        let screen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup master");
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once no process has the terminal open any more.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        PtySession {
            child,
            slave: pty.slave,
            master,
            screen,
        }
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().expect("lock")).into_owned()
    }

    fn wait_for(&self, text: &str) {
        let seen = eventually(30, || self.screen().contains(text));
        assert!(
            seen,
            "'{text}' never appeared on the terminal: {:?}",
            self.screen()
        );
    }

    fn type_bytes(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("type");
    }

    /// Whether the terminal is in canonical (cooked) mode with echo, as a shell expects.
    fn cooked(&self) -> bool {
        use nix::sys::termios::{LocalFlags, tcgetattr};
        let modes = tcgetattr(&self.slave).expect("tcgetattr");
        modes
            .local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO)
    }

    /// Waits (bounded) for vmux to exit; returns its exit code.
    fn exit_code(&mut self) -> Option<i32> {
        let mut status = None;
        eventually(30, || {
            status = self.child.try_wait().expect("wait");
            status.is_some()
        });
        if status.is_none() {
            let _ = self.child.kill();
            panic!("vmux did not exit: {:?}", self.screen());
        }
        status.and_then(|s| s.code())
    }
}

#[test]
fn interactive_console_detaches_on_ctrl_right_bracket_and_restores_the_terminal() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    home.start_demo("web");
    let mut session = PtySession::spawn(&home, &["console", "web"]);
    session.wait_for("press Ctrl-] to detach");
    assert!(!session.cooked(), "the console runs in raw mode");

    session.type_bytes(b"echo typed-live\r");
    // Once as the guest echoes the keys, once as the command's output.
    let answered = eventually(30, || session.screen().matches("typed-live").count() >= 2);
    assert!(answered, "{:?}", session.screen());
    session.type_bytes(&[0x1d]);

    assert_eq!(session.exit_code(), Some(0), "{}", session.screen());
    assert!(
        session.screen().contains("it keeps running"),
        "{}",
        session.screen()
    );
    assert!(session.cooked(), "the terminal is restored");
    assert_eq!(home.state("web"), "running");
}

#[test]
fn interactive_console_restores_the_terminal_when_the_vm_powers_off() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = Home::new();
    home.start_demo("web");
    let mut session = PtySession::spawn(&home, &["console", "web"]);
    session.wait_for("press Ctrl-] to detach");

    session.type_bytes(b"poweroff\r");

    assert_eq!(session.exit_code(), Some(0), "{}", session.screen());
    assert!(
        session.screen().contains("closed (the VM stopped)"),
        "{}",
        session.screen()
    );
    assert!(session.cooked(), "the terminal is restored");
    assert!(eventually(10, || home.state("web") == "shut_off"));
}
