//! Crash safety: a child process (this test binary, re-run on its ignored `child` test) starts a
//! long storage operation and is killed with SIGKILL in the middle. Afterwards the old state or
//! the new one must be there (never a half-written volume under a real name), `qemu-img check`
//! must pass, the next command must clean up the temporary file, and an interrupted snapshot
//! deletion must finish when run again.

mod storage_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use storage_common::*;
use vmux::config::{Paths, parse_size};
use vmux::progress::Progress;
use vmux::storage::{SnapshotManager, StorageManager, VolumeSpec};

/// Bytes of data the slow operations move (enough to take a while in a debug build).
const DATA: u64 = 256 << 20;

/// Runs the operation named by `VMUX_CRASH_ACTION` on the home in `VMUX_CRASH_HOME`; only ever
/// started by the tests below, as a child process they kill.
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
        "snapshot-delete" => {
            SnapshotManager::new(paths)
                .delete("web1", "s1", &Progress::new())
                .expect("delete");
        }
        other => panic!("unknown action {other}"),
    }
}

fn spawn(home: &Home, action: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VMUX_CRASH_HOME", home.dir.path())
        .env("VMUX_CRASH_ACTION", action)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn child")
}

/// Waits until `ready` holds (then kills the child) or the child ends by itself; says which.
fn kill_when(child: &mut Child, ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if ready() {
            child.kill().expect("kill");
            child.wait().expect("reap");
            eprintln!("killed the child mid-operation");
            return true;
        }
        if child.try_wait().expect("poll").is_some() {
            eprintln!("the child finished before the kill; checking the new state");
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("kill");
    panic!("the child neither got going nor finished in 60 s");
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

fn big_temporary(dir: &Path) -> bool {
    temporaries(dir)
        .iter()
        .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 16 << 20))
}

#[test]
fn a_convert_killed_midway_leaves_no_volume_and_no_litter() {
    let home = Home::new();
    let dir = home.pool_dir();
    dense_raw(&dir.join("src.raw"));
    let mut child = spawn(&home, "convert");
    let killed = kill_when(&mut child, || big_temporary(&dir));
    let dst = dir.join("dst.qcow2");
    if killed {
        assert!(!dst.exists(), "a killed convert must not leave dst.qcow2");
        assert!(!temporaries(&dir).is_empty(), "the kill hit mid-write");
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
    if killed {
        home.storage
            .vol_convert("default", "src.raw", "dst.qcow2", None, &Progress::new())
            .expect("convert again");
    }
    check_ok(&dst);
    same_content(&dir.join("src.raw"), &dst);
}

#[test]
fn an_upload_killed_midway_keeps_the_old_volume() {
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
    let mut child = spawn(&home, "upload");
    let killed = kill_when(&mut child, || big_temporary(&dir));
    check_ok(&vol.path);
    let image = open_ro(&vol.path);
    let mut first = [0u8; 4];
    image.read_at(0, &mut first).expect("read");
    if killed {
        assert_eq!(image.capacity(), 8 << 20, "the old volume is intact");
        assert_eq!(first, [0x11; 4]);
    } else {
        assert_eq!(image.capacity(), DATA, "the upload completed whole");
        assert_eq!(first, [1, 2, 3, 4]);
    }
}

#[test]
fn a_snapshot_delete_killed_midway_finishes_when_run_again() {
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
        let image = vmux::storage::open_image(&overlay, &storage_common::options(&overlay, false))
            .expect("open overlay");
        let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8 + 1).collect();
        for mib in 0..DATA >> 20 {
            image.write_at(mib << 20, &chunk).expect("write");
        }
        image.flush().expect("flush");
    }
    let expected = qemu_bytes(&overlay, home.dir.path());
    let record = home.paths.config.join("snapshots/web1/s1.toml");
    let mut child = spawn(&home, "snapshot-delete");
    let killed = kill_when(&mut child, || {
        std::fs::read_to_string(&record).is_ok_and(|t| t.contains("deleting"))
    });
    if killed {
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
