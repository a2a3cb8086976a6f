//! Save, restore and managed save through the real vmd (the `vmux` binary's `__vmd`) and the
//! real client, each test in its own `VMUX_HOME`: the `savestate` guest-kit program checks its
//! memory and counters after every restore; a save of another definition and a save whose disk
//! changed are refused; and kill -9 of vmd in the middle of a save never leaves a file that
//! restores into a broken VM.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::binary::{guest, vmux};
use common::prereq::{Need, met};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vmux::client::{ChangeScope, Host, LocalHost, RestoreOptions};
use vmux::config::{BootConfig, DiskConfig, DiskSource, ImageFormat, VmConfig};
use vmux::protocol::RunState;

/// The longest any single wait may take.
const TIMEOUT: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A console's output, collected on a thread of its own.
struct Tap {
    seen: Arc<Mutex<Vec<u8>>>,
    input: Box<dyn Write + Send>,
}

impl Tap {
    fn open(host: &LocalHost, name: &str) -> Tap {
        let console = host.console(name, true).expect("console");
        let mut output = console.output;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = output.read(&mut buf) {
                sink.lock().expect("tap").extend_from_slice(&buf[..n]);
            }
        });
        Tap {
            seen,
            input: console.input,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().expect("tap")).into_owned()
    }

    fn wait_for(&self, needle: &str, times: usize) -> String {
        wait_until(&format!("the console shows {needle:?} x{times}"), || {
            self.text().matches(needle).count() >= times
        });
        self.text()
    }

    /// Waits for a whole line starting with `prefix` and returns it.
    fn wait_line(&self, prefix: &str) -> String {
        let find = || {
            self.text()
                .split_inclusive('\n')
                .find(|l| l.starts_with(prefix) && l.ends_with('\n'))
                .map(|l| l.trim_end().to_string())
        };
        wait_until(&format!("a line starting {prefix:?}"), || find().is_some());
        find().unwrap_or_default()
    }

    fn send(&mut self, line: &str) {
        self.input
            .write_all(format!("{line}\r").as_bytes())
            .expect("type");
        self.input.flush().expect("flush");
    }

    /// The PIT ticks of the last whole status line.
    fn pit(&self) -> u64 {
        let text = self.text();
        text.split_inclusive('\n')
            .rfind(|l| l.starts_with("state: ") && l.ends_with('\n'))
            .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("pit=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"))
    }
}

struct TestHome {
    dir: tempfile::TempDir,
    host: LocalHost,
}

impl TestHome {
    fn new() -> TestHome {
        let dir = tempfile::tempdir().expect("tempdir");
        let host =
            LocalHost::with_home(dir.path()).with_vmd_exe(Path::new(env!("CARGO_BIN_EXE_vmux")));
        TestHome { dir, host }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Defines VM `name` booting `savestate` with `cmdline`, `memory` MiB and a raw disk.
    fn define(&self, name: &str, memory_mib: u64, cmdline: &str, disk: bool) -> VmConfig {
        let mut config = VmConfig::new(
            name,
            BootConfig::Kernel {
                kernel: guest("savestate"),
                initrd: None,
                cmdline: cmdline.into(),
            },
        );
        config.memory = memory_mib * MIB;
        if disk {
            let image = self.path(&format!("{name}.raw"));
            std::fs::write(&image, vec![0u8; 128 * 512]).expect("disk");
            config.disks = vec![DiskConfig {
                source: DiskSource::Path(image),
                readonly: false,
                target: None,
                serial: None,
                format: None,
                allow_backing: Vec::new(),
            }];
        }
        self.host.define(&config).expect("define");
        config
    }

    fn state(&self, name: &str) -> RunState {
        self.host.status(name).expect("status").state
    }

    fn vmd_pid(&self, name: &str) -> Option<u32> {
        self.host.status(name).ok()?.pid
    }
}

impl Drop for TestHome {
    fn drop(&mut self) {
        for status in self.host.list().into_iter().flatten() {
            let _ = self.host.destroy(&status.config.name);
        }
    }
}

#[test]
fn save_then_restore_continues_the_guest_with_its_disk() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = TestHome::new();
    home.define("st", 64, "mem=2", true);
    home.host.start("st").expect("start");
    let tap = Tap::open(&home.host, "st");
    tap.wait_for("state: ", 2);
    let before = tap.pit();
    let file = home.path("st.save");

    let info = home.host.save("st", &file, None).expect("save");

    assert_eq!(home.state("st"), RunState::ShutOff);
    assert!(info.file_bytes > info.saved_memory_bytes && info.saved_memory_bytes >= 2 * MIB);
    let name = home
        .host
        .restore(&file, RestoreOptions::default())
        .expect("restore");
    assert_eq!((name.as_str(), home.state("st")), ("st", RunState::Running));
    let mut tap = Tap::open(&home.host, "st");
    tap.wait_for("state: ", 2);
    tap.send("verify");
    assert_eq!(tap.wait_line("verify: "), "verify: 2 MiB ok");
    let text = tap.text();
    assert!(
        !text.contains("savestate ready") && !text.contains("FAILED"),
        "{text}"
    );
    assert!(
        tap.pit() > before,
        "the timers went on from {before}: {text}"
    );
}

#[test]
fn a_hot_added_disk_is_reopened_in_its_recorded_format_after_a_restore() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = TestHome::new();
    home.define("st", 64, "mem=1 disk=0", false);
    home.host.start("st").expect("start");
    Tap::open(&home.host, "st").wait_for("state: ", 1);
    // A raw image whose name says no format: only the recorded one opens it.
    let image = home.path("extra.data");
    std::fs::write(&image, vec![0u8; 64 * 512]).expect("image");
    let disk = DiskConfig {
        source: DiskSource::Path(image.clone()),
        readonly: false,
        target: None,
        serial: Some("hot".into()),
        format: Some(ImageFormat::Raw),
        allow_backing: Vec::new(),
    };
    let target = home
        .host
        .attach_disk("st", &disk, ChangeScope::LIVE)
        .expect("attach");
    let file = home.path("st.save");

    home.host.save("st", &file, None).expect("save");
    home.host
        .restore(&file, RestoreOptions::default())
        .expect("restore");

    let info = home.host.info("st").expect("info");
    let restored = info
        .disks
        .iter()
        .find(|d| d.target == target)
        .unwrap_or_else(|| panic!("no disk {target} after the restore: {:?}", info.disks));
    assert_eq!(restored.path, image);
    assert_eq!(home.state("st"), RunState::Running);
    Tap::open(&home.host, "st").wait_for("state: ", 1);
}

#[test]
fn save_paused_restores_paused_and_restore_running_overrides_it() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = TestHome::new();
    home.define("st", 64, "mem=1 disk=0", false);
    home.host.start("st").expect("start");
    Tap::open(&home.host, "st").wait_for("state: ", 1);
    let file = home.path("st.save");

    home.host.save("st", &file, Some(true)).expect("save");
    home.host
        .restore(&file, RestoreOptions::default())
        .expect("restore");
    let paused = home.state("st");
    home.host.destroy("st").expect("destroy");
    let options = RestoreOptions {
        paused: Some(false),
        force: false,
    };
    home.host.restore(&file, options).expect("restore running");

    assert_eq!(paused, RunState::Paused);
    assert_eq!(home.state("st"), RunState::Running);
}

#[test]
fn managed_save_shows_saved_and_the_next_start_resumes_and_discards_it() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = TestHome::new();
    home.define("st", 64, "mem=1 disk=0", false);
    home.host.start("st").expect("start");
    Tap::open(&home.host, "st").wait_for("state: ", 1);

    home.host.managed_save("st", None).expect("managedsave");
    let listed = common::binary::ok(home.dir.path(), &["list", "--all"]);
    home.host.start("st").expect("start resumes");
    let tap = Tap::open(&home.host, "st");
    let text = tap.wait_for("state: ", 1);

    assert!(listed.contains("saved"), "{listed}");
    assert_eq!(home.state("st"), RunState::Running);
    assert!(
        !text.contains("savestate ready"),
        "it booted afresh: {text}"
    );
    assert!(!home.host.managed_save_path("st").exists(), "used once");
}

#[test]
fn a_save_from_another_definition_is_refused_naming_the_change() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = TestHome::new();
    let mut config = home.define("st", 64, "mem=1 disk=0", false);
    home.host.start("st").expect("start");
    Tap::open(&home.host, "st").wait_for("state: ", 1);
    let file = home.path("st.save");
    home.host.save("st", &file, None).expect("save");
    config.memory = 128 * MIB;
    home.host.update(&config).expect("edit the definition");

    let err = home
        .host
        .restore(&file, RestoreOptions::default())
        .expect_err("refused");

    let text = err.to_string();
    assert!(text.contains("memory 64M when it was saved"), "{text}");
    assert!(text.contains("now has 128M"), "{text}");
    assert_eq!(home.state("st"), RunState::ShutOff);
}

#[test]
fn a_save_whose_disk_changed_is_refused_unless_forced() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = TestHome::new();
    home.define("st", 64, "mem=1", true);
    home.host.start("st").expect("start");
    Tap::open(&home.host, "st").wait_for("state: ", 1);
    let file = home.path("st.save");
    home.host.save("st", &file, None).expect("save");
    std::fs::OpenOptions::new()
        .write(true)
        .open(home.path("st.raw"))
        .and_then(|mut f| f.write_all(b"changed behind the save's back"))
        .expect("write the disk");

    let err = home
        .host
        .restore(&file, RestoreOptions::default())
        .expect_err("refused");
    let forced = home.host.restore(
        &file,
        RestoreOptions {
            paused: None,
            force: true,
        },
    );

    let text = err.to_string();
    assert!(
        text.contains("disk vda") && text.contains("was written to"),
        "{text}"
    );
    assert!(text.contains("--force"), "{text}");
    forced.expect("a forced restore goes ahead");
}

#[test]
fn the_cli_save_and_restore_verbs_print_json() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = TestHome::new();
    home.define("st", 64, "mem=1 disk=0", false);
    common::binary::ok(home.dir.path(), &["start", "st"]);
    Tap::open(&home.host, "st").wait_for("state: ", 1);
    let file = home.path("st.save");
    let file_arg = file.to_str().expect("utf-8");

    let saved = common::binary::ok(home.dir.path(), &["save", "st", file_arg, "--json"]);
    let restored = common::binary::ok(home.dir.path(), &["restore", file_arg, "--json"]);

    let saved: serde_json::Value = serde_json::from_str(&saved).expect("save json");
    let restored: serde_json::Value = serde_json::from_str(&restored).expect("restore json");
    assert_eq!(saved["path"], file_arg);
    assert!(saved["file_bytes"].as_u64().is_some_and(|b| b > MIB));
    assert_eq!(restored["name"], "st");
    assert_eq!(restored["state"], "running");
}

#[test]
fn kill_9_during_a_save_never_leaves_a_file_that_restores_broken() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = TestHome::new();
    home.define("st", 128, "mem=24 disk=0", false);
    home.host.start("st").expect("start");
    Tap::open(&home.host, "st").wait_for("state: ", 1);
    let file = home.path("st.save");
    // The previous state the killed saves must fall back to; its duration sets the range of
    // the kill delays, so most kills land while a save runs.
    let first = home.host.save("st", &file, None).expect("first save");
    let window_us = (first.save_ms * 1500).max(50_000);
    let mut landed = 0;
    let mut completed = 0;
    let mut early = 0;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64 ^ u64::from(std::process::id());
    // Rounds go on until three kills have caught a save writing its file (at most 20).
    let mut round = 0;
    while landed < 3 && round < 20 {
        round += 1;
        home.host
            .restore(&file, RestoreOptions::default())
            .unwrap_or_else(|e| panic!("round {round}: the file must restore: {e}"));
        let mut tap = Tap::open(&home.host, "st");
        tap.wait_for("state: ", 1);
        tap.send("verify");
        assert_eq!(
            tap.wait_line("verify: "),
            "verify: 24 MiB ok",
            "round {round}"
        );
        let pid = home.vmd_pid("st").expect("vmd runs");
        // Partial files of earlier killed saves (the next save would remove them itself).
        for entry in std::fs::read_dir(home.dir.path()).expect("list").flatten() {
            if entry.file_name().to_string_lossy().contains("vmux-partial") {
                std::fs::remove_file(entry.path()).expect("remove partial");
            }
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % window_us);
        let saver = {
            let host = home.host.clone();
            let file = file.clone();
            thread::spawn(move || host.save("st", &file, None))
        };
        thread::sleep(delay);
        let partial_seen = std::fs::read_dir(home.dir.path())
            .expect("list")
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("vmux-partial"));
        let killed = kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok();
        let result = saver.join().expect("saver thread");
        match result {
            Ok(_) => completed += 1,
            // The temporary file was there: the kill caught vmd writing the save.
            Err(_) if killed && partial_seen => landed += 1,
            Err(_) if killed => early += 1,
            Err(e) => panic!("round {round}: the save failed without a kill: {e}"),
        }
        wait_until("the killed vmd is gone", || {
            !matches!(home.state("st"), RunState::Running | RunState::Paused)
        });
    }
    eprintln!(
        "kills that landed while the file was written: {landed}; before it: {early}; saves \
         that completed first: {completed}"
    );
    assert!(
        landed >= 3,
        "only {landed} of {round} kills landed while a save wrote"
    );
    // The file left by the last round restores into a working guest too.
    home.host
        .restore(&file, RestoreOptions::default())
        .expect("the last file restores");
    let mut tap = Tap::open(&home.host, "st");
    tap.send("verify");
    assert_eq!(tap.wait_line("verify: "), "verify: 24 MiB ok");
}

#[test]
fn vmux_restore_of_a_file_that_is_not_a_save_says_so() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = TestHome::new();
    let bogus = home.path("notes.txt");
    std::fs::write(&bogus, "hello").expect("write");
    let out = vmux(
        home.dir.path(),
        &["restore", bogus.to_str().expect("utf-8")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a vmux save file"), "{err}");
}
