//! Crash safety: a child process (this test binary, re-run on its ignored `child` test) starts a
//! long storage operation and is killed with SIGKILL in the middle. Afterwards the old state or
//! the new one must be there (never a half-written volume under a real name), `qemu-img check`
//! must pass, the next command must clean up the temporary file, and an interrupted snapshot
//! deletion must finish when run again.
//!
//! Each test retries with varied timing (a random amount of progress before the kill) until
//! [`WANTED`] kills landed mid-write, at most [`MAX_TRIES`] times, and fails unless at least
//! [`MIN_LANDED`] did; it prints `crash test NAME: K of N kills landed mid-write`. A kill counts
//! as landed only with proof: the child had shown progress on disk before the kill (its
//! temporary file past the chosen size, or the snapshot record marked `deleting`), it had not
//! reported completion (it prints `done` when the operation returns), and its unfinished work
//! was still there after the kill (its temporary file, or the `deleting` record). Tries where
//! the operation finished first check the new state instead. `VMUX_CRASH_SEED=<n>` replays a
//! run's timing.

mod common;

use common::crash::{Rng, Tally, seed};
use common::prereq::{QEMU_IMG, met};
use common::storage::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vmux::config::{Paths, parse_size};
use vmux::progress::Progress;
use vmux::storage::{SnapshotManager, StorageManager, VolumeSpec};

/// Bytes of data the slow operations move (enough to take a while in a debug build).
const DATA: u64 = 256 << 20;
/// Kills wanted mid-write per test.
const WANTED: usize = 3;
/// Kills that must have landed mid-write for a test to pass.
const MIN_LANDED: usize = 3;
/// Tries per test at most.
const MAX_TRIES: usize = 50;
/// What a qcow2 volume grows to with its new space allocated (`vol-resize --preallocate`).
const GROW_TO: u64 = 1 << 30;

/// Runs the operation named by `VMUX_CRASH_ACTION` on the home in `VMUX_CRASH_HOME`, then
/// prints `done`; only ever started by the tests below, as a child process they kill.
#[test]
#[ignore = "helper: run as a child process by the crash tests"]
fn child() {
    let home = PathBuf::from(std::env::var("VMUX_CRASH_HOME").expect("VMUX_CRASH_HOME"));
    let paths = Paths::under(&home);
    let storage = StorageManager::new(paths.clone());
    match std::env::var("VMUX_CRASH_ACTION").expect("action").as_str() {
        "convert" => {
            storage
                .vol_convert("default", "src.raw", "dst.qcow2", None, &Progress::new())
                .expect("convert");
        }
        "upload" => {
            storage
                .vol_upload(
                    "default",
                    "vol.qcow2",
                    &home.join("new.raw"),
                    None,
                    &Progress::new(),
                )
                .expect("upload");
        }
        "grow" => {
            storage
                .vol_grow_allocated("default", "vol.qcow2", GROW_TO, &Progress::new())
                .expect("grow");
        }
        "snapshot-delete" => {
            SnapshotManager::new(paths)
                .delete("web1", "s1", &Progress::new())
                .expect("delete");
        }
        other => panic!("unknown action {other}"),
    }
    println!("{DONE}");
}

/// What the child prints once its operation returned.
const DONE: &str = "vmux-crash-child: done";

/// The child process running `action` on `home`.
struct Victim {
    child: Child,
}

impl Victim {
    fn spawn(home: &Home, action: &str) -> Victim {
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("VMUX_CRASH_HOME", home.dir.path())
            .env("VMUX_CRASH_ACTION", action)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        Victim { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `progressed` holds (then kills the child) or the child ends by itself.
    fn kill_after(mut self, progressed: impl Fn() -> bool) -> Ending {
        let start = Instant::now();
        let killed = loop {
            if progressed() {
                self.child.kill().expect("kill");
                break true;
            }
            if self.child.try_wait().expect("poll").is_some() {
                break false;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                panic!("the child neither got going nor finished in 60 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let status = self.child.wait().expect("reap");
        // Everything the child wrote before it died is in the pipe.
        let mut said = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut said)
                .expect("read the child's output");
        }
        let done = said.lines().any(|l| l == DONE);
        assert!(
            killed || (done && status.success()),
            "the child failed by itself ({status}): {said}"
        );
        Ending { killed, done }
    }
}

/// How a try ended.
struct Ending {
    /// This test killed the child.
    killed: bool,
    /// The child reported that its operation returned.
    done: bool,
}

impl Ending {
    /// Whether the kill provably landed mid-operation: killed before reporting completion,
    /// with its unfinished work (`unfinished`, checked after the kill) still there.
    fn landed(&self, unfinished: bool) -> bool {
        self.killed && !self.done && unfinished
    }
}

/// A raw file of `DATA` bytes, none of them zero (so nothing is skipped as a hole).
fn dense_raw(path: &Path) {
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8 + 1).collect();
    let mut file = std::fs::File::create(path).expect("create");
    for _ in 0..DATA >> 20 {
        std::io::Write::write_all(&mut file, &chunk).expect("write");
    }
}

/// The temporary files in `dir`.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains(".vmux-tmp."))
        .collect()
}

/// The temporary file process `pid` writes `name` through (storage/staging.rs names it).
fn staged(dir: &Path, name: &str, pid: u32) -> PathBuf {
    dir.join(format!(".{name}.vmux-tmp.{pid}"))
}

/// Whether `path` holds at least `bytes` bytes.
fn at_least(path: &Path, bytes: u64) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() >= bytes)
}

/// How far a copy gets before the kill: between 1 MiB and three quarters of the data.
fn progress_before_kill(rng: &mut Rng) -> u64 {
    rng.between(1 << 20, DATA / 4 * 3)
}

#[test]
fn a_convert_killed_midway_leaves_no_volume_and_no_litter() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let seed = seed();
    println!("VMUX_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::new("a_convert_killed_midway");
    while tally.wants_more(WANTED, MAX_TRIES) {
        let home = Home::new();
        let dir = home.pool_dir();
        dense_raw(&dir.join("src.raw"));
        let victim = Victim::spawn(&home, "convert");
        let temporary = staged(&dir, "dst.qcow2", victim.pid());
        let bytes = progress_before_kill(&mut rng);
        let ending = victim.kill_after(|| at_least(&temporary, bytes));
        let dst = dir.join("dst.qcow2");
        let landed = ending.landed(temporary.exists());
        tally.record(landed);
        if landed {
            assert!(!dst.exists(), "a killed convert must not leave dst.qcow2");
        } else {
            check_ok(&dst);
        }
        // The next command sweeps the dead process's temporary file away.
        let names: Vec<String> = home
            .storage
            .vol_list("default")
            .expect("list")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(temporaries(&dir).is_empty());
        assert!(!names.iter().any(|n| n.contains("tmp")), "{names:?}");
        if !dst.exists() {
            home.storage
                .vol_convert("default", "src.raw", "dst.qcow2", None, &Progress::new())
                .expect("convert again");
        }
        check_ok(&dst);
        same_content(&dir.join("src.raw"), &dst);
    }
    tally.finish(MIN_LANDED, "");
}

#[test]
fn an_upload_killed_midway_keeps_the_old_volume() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let seed = seed();
    println!("VMUX_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::new("an_upload_killed_midway");
    while tally.wants_more(WANTED, MAX_TRIES) {
        let home = Home::new();
        let dir = home.pool_dir();
        let spec = VolumeSpec {
            capacity: parse_size("8M").expect("size"),
            format: None,
            preallocate: false,
        };
        let vol = home
            .storage
            .vol_create("default", "vol.qcow2", spec)
            .expect("create");
        fill(&vol.path, 0, 1 << 20, 0x11);
        dense_raw(&home.dir.path().join("new.raw"));
        let victim = Victim::spawn(&home, "upload");
        let temporary = staged(&dir, "vol.qcow2", victim.pid());
        let bytes = progress_before_kill(&mut rng);
        let ending = victim.kill_after(|| at_least(&temporary, bytes));
        let landed = ending.landed(temporary.exists());
        tally.record(landed);
        check_ok(&vol.path);
        let image = open_ro(&vol.path);
        let mut first = [0u8; 4];
        image.read_at(0, &mut first).expect("read");
        if landed {
            assert_eq!(image.capacity(), 8 << 20, "the old volume is intact");
            assert_eq!(first, [0x11; 4]);
        } else {
            assert_eq!(image.capacity(), DATA, "the upload completed whole");
            assert_eq!(first, [1, 2, 3, 4]);
        }
    }
    tally.finish(MIN_LANDED, "");
}

/// imago points the L1 table at a newly allocated L2 table before that table's refcount leaves
/// its refcount-block cache, so a kill during the merge can leave the base image with a
/// referenced cluster whose refcount is 0 (`qemu-img check`: "ERROR cluster 4 refcount=0
/// reference=1"); the resumed deletion repairs the base's refcounts before it merges again, so
/// the cluster is never handed out twice and the base checks clean.
#[test]
fn a_snapshot_delete_killed_midway_finishes_when_run_again() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let seed = seed();
    println!("VMUX_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::new("a_snapshot_delete_killed_midway");
    while tally.wants_more(WANTED, MAX_TRIES) {
        let home = Home::new();
        let dir = home.pool_dir();
        let spec = VolumeSpec {
            capacity: DATA,
            format: None,
            preallocate: false,
        };
        home.storage
            .vol_create("default", "web1.qcow2", spec)
            .expect("create");
        home.define_vm("web1", &["default/web1.qcow2"]);
        let snaps = SnapshotManager::new(home.paths.clone());
        snaps.create("web1", "s1").expect("snapshot");
        let overlay = dir.join("web1.s1.qcow2");
        {
            let image = vmux::storage::open_image(&overlay, &options(&overlay, false))
                .expect("open overlay");
            let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8 + 1).collect();
            for mib in 0..DATA >> 20 {
                image.write_at(mib << 20, &chunk).expect("write");
            }
            image.flush().expect("flush");
        }
        let expected = qemu_bytes(&overlay, home.dir.path());
        let record = home.paths.config.join("snapshots/web1/s1.toml");
        let deleting = || std::fs::read_to_string(&record).is_ok_and(|t| t.contains("deleting"));
        // The merge runs after the record says `deleting`; kill somewhere in it.
        let delay = Duration::from_millis(rng.between(0, 400));
        let victim = Victim::spawn(&home, "snapshot-delete");
        let marked = std::cell::Cell::new(None::<Instant>);
        let ending = victim.kill_after(|| {
            if marked.get().is_none() && deleting() {
                marked.set(Some(Instant::now()));
            }
            marked.get().is_some_and(|at| at.elapsed() >= delay)
        });
        let landed = ending.landed(deleting());
        tally.record(landed);
        if landed {
            let list = snaps.list("web1").expect("list");
            assert_eq!(list[0].name, "s1");
            let text = snaps.create("web1", "s2").expect_err("blocked").to_string();
            assert!(text.contains("vmux snapshot-delete web1 s1"), "{text}");
            snaps
                .delete("web1", "s1", &Progress::new())
                .expect("finish the deletion");
        }
        assert!(snaps.list("web1").expect("list").is_empty());
        assert_eq!(home.vm_disks("web1"), ["default/web1.qcow2"]);
        let base = dir.join("web1.qcow2");
        check_ok(&base);
        assert!(
            qemu_bytes(&base, home.dir.path()) == expected,
            "no data lost in the merge"
        );
        assert!(!overlay.exists());
    }
    tally.finish(MIN_LANDED, "");
}

/// A preallocated growth writes into the existing qcow2 volume, and imago leaves the refcounts
/// of what it allocated in its cache until the final flush, so a kill mid-growth leaves
/// referenced clusters with refcount 0. The growth marks the volume first
/// (`.vol.qcow2.vmux-writing.<pid>`); the next command that uses the pool repairs the volume
/// before anything opens it and removes the mark.
#[test]
fn a_preallocated_growth_killed_midway_is_repaired_by_the_next_command() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let seed = seed();
    println!("VMUX_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::new("a_preallocated_growth_killed_midway");
    while tally.wants_more(WANTED, MAX_TRIES) {
        let home = Home::new();
        let dir = home.pool_dir();
        let spec = VolumeSpec {
            capacity: parse_size("8M").expect("size"),
            format: None,
            preallocate: false,
        };
        let vol = home
            .storage
            .vol_create("default", "vol.qcow2", spec)
            .expect("create");
        fill(&vol.path, 0, 1 << 20, 0x11);
        let victim = Victim::spawn(&home, "grow");
        let marker = dir.join(format!(".vol.qcow2.vmux-writing.{}", victim.pid()));
        let bytes = rng.between(16 << 20, GROW_TO / 4 * 3);
        let ending = victim.kill_after(|| marker.exists() && at_least(&vol.path, bytes));
        let landed = ending.landed(marker.exists());
        tally.record(landed);
        // Any command that uses the pool settles the interrupted write first.
        let info = home
            .storage
            .vol_info("default", "vol.qcow2")
            .expect("vol-info");
        assert!(!marker.exists(), "the mark is removed");
        check_ok(&vol.path);
        if landed {
            assert!((8 << 20..=GROW_TO).contains(&info.capacity));
        } else {
            assert_eq!(info.capacity, GROW_TO, "the growth completed");
        }
        let image = open_ro(&vol.path);
        let mut first = [0u8; 4];
        image.read_at(0, &mut first).expect("read");
        assert_eq!(first, [0x11; 4], "the data is intact");
    }
    tally.finish(MIN_LANDED, "");
}
