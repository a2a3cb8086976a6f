//! The storage verbs through the `vmux` binary, with `VMUX_HOME` in a temporary directory: what
//! a user types and reads, including `--json` output and the exit status and message of errors,
//! `--progress` JSON lines, and Ctrl-C (SIGINT) cancelling a long verb at random points.

mod common;

use common::prereq::{QEMU_IMG, met};
use common::storage::{check_ok, qemu_img};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

fn vmux(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmux"))
        .args(args)
        .env("VMUX_HOME", home)
        .output()
        .expect("run vmux")
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = vmux(home, args);
    assert!(
        out.status.success(),
        "vmux {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(home: &Path, args: &[&str]) -> String {
    let out = vmux(home, args);
    assert_eq!(out.status.code(), Some(1), "vmux {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn pool_list_shows_the_default_pool_on_first_run() {
    let home = tempfile::tempdir().expect("tempdir");
    let text = ok(home.path(), &["pool-list"]);
    assert!(
        text.contains("default") && text.contains("active"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(home.path(), &["pool-list", "--json"])).expect("json");
    assert_eq!(json[0]["name"], "default");
    assert_eq!(json[0]["autostart"], true);
}

#[test]
fn create_then_info_as_json() {
    let home = tempfile::tempdir().expect("tempdir");
    let text = ok(
        home.path(),
        &["vol-create-as", "default", "web1.qcow2", "20G"],
    );
    assert!(
        text.contains("web1.qcow2") && text.contains("20G"),
        "{text}"
    );
    let info: serde_json::Value = serde_json::from_str(&ok(
        home.path(),
        &["vol-info", "default", "web1.qcow2", "--json"],
    ))
    .expect("json");
    assert_eq!(info["capacity"], 20u64 << 30);
    assert_eq!(info["format"], "qcow2");
    assert!(info["allocation"].as_u64().expect("allocation") < 1 << 20);
    let list = ok(home.path(), &["vol-list", "default"]);
    assert!(
        list.contains("web1.qcow2") && list.contains("20G"),
        "{list}"
    );
    let grown = ok(
        home.path(),
        &["vol-resize", "default", "web1.qcow2", "+10G"],
    );
    assert!(grown.contains("30G"), "{grown}");
}

#[test]
fn errors_exit_1_with_the_reason_and_the_fix() {
    let home = tempfile::tempdir().expect("tempdir");
    let err = fails(home.path(), &["vol-create-as", "default", "a.raw", "lots"]);
    assert!(err.starts_with("error: ") && err.contains("512M"), "{err}");
    let err = fails(home.path(), &["vol-delete", "default", "ghost.qcow2"]);
    assert!(
        err.contains("ghost.qcow2") && err.contains("vmux vol-list default"),
        "{err}"
    );
    let err = fails(home.path(), &["pool-start", "nope"]);
    assert!(err.contains("'nope'"), "{err}");
    let err = fails(home.path(), &["snapshot-list", "ghost"]);
    assert!(err.contains("'ghost'"), "{err}");
}

#[test]
fn a_snapshot_round_trip_through_the_binary() {
    let home = tempfile::tempdir().expect("tempdir");
    ok(
        home.path(),
        &["vol-create-as", "default", "web1.qcow2", "1M"],
    );
    let vms = home.path().join("config/vms");
    std::fs::create_dir_all(&vms).expect("mkdir");
    std::fs::write(
        vms.join("web1.toml"),
        "name = \"web1\"\nvcpus = 1\nmax_vcpus = 4\nmemory = \"256M\"\n[boot]\nsource = \"demo\"\n[[disks]]\npool = \"default\"\nvolume = \"web1.qcow2\"\n",
    )
    .expect("define VM");
    ok(home.path(), &["snapshot-create", "web1", "before-upgrade"]);
    let list: serde_json::Value =
        serde_json::from_str(&ok(home.path(), &["snapshot-list", "web1", "--json"])).expect("json");
    assert_eq!(list[0]["name"], "before-upgrade");
    assert_eq!(list[0]["current"], true);
    let err = fails(home.path(), &["vol-delete", "default", "web1.qcow2"]);
    assert!(err.contains("used by VM web1"), "{err}");
    ok(home.path(), &["snapshot-revert", "web1", "before-upgrade"]);
    ok(home.path(), &["snapshot-delete", "web1", "before-upgrade"]);
    let text = ok(home.path(), &["snapshot-list", "web1"]);
    assert!(!text.contains("before-upgrade"), "{text}");
}

#[test]
fn undefine_refuses_a_vm_with_snapshots_unless_told_to_drop_their_metadata() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["vol-create-as", "default", "web1.qcow2", "1G"]);
    ok(
        h,
        &["create", "web1", "--demo", "--disk", "default/web1.qcow2"],
    );
    ok(h, &["snapshot-create", "web1", "s1"]);
    let metadata = h.join("config/snapshots/web1");
    assert!(metadata.join("s1.toml").exists(), "where snapshots live");

    let err = fails(h, &["undefine", "web1"]);
    assert!(
        err.contains("has a snapshot (s1)") && err.contains("--snapshots-metadata"),
        "{err}"
    );
    assert!(ok(h, &["list", "--all"]).contains("web1"), "still defined");

    let out = ok(h, &["undefine", "web1", "--snapshots-metadata"]);
    assert!(out.contains("disk images stay"), "{out}");
    assert!(!metadata.exists(), "the snapshot metadata folder is gone");
    let volumes = ok(h, &["vol-list", "default"]);
    assert!(
        volumes.contains("web1.qcow2") && volumes.contains("web1.s1.qcow2"),
        "the frozen image and the overlay stay: {volumes}"
    );
}

#[test]
fn undefine_of_a_vm_whose_snapshots_were_all_deleted_leaves_no_metadata_folder() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["vol-create-as", "default", "web1.qcow2", "1G"]);
    ok(
        h,
        &["create", "web1", "--demo", "--disk", "default/web1.qcow2"],
    );
    ok(h, &["snapshot-create", "web1", "s1"]);
    ok(h, &["snapshot-delete", "web1", "s1"]);
    assert!(
        h.join("config/snapshots/web1").is_dir(),
        "snapshot-delete leaves the emptied folder"
    );

    ok(h, &["undefine", "web1"]);

    assert!(!h.join("config/snapshots/web1").exists());
    // A new VM of the same name starts without snapshots.
    ok(
        h,
        &["create", "web1", "--demo", "--disk", "default/web1.qcow2"],
    );
    assert!(!ok(h, &["snapshot-list", "web1"]).contains("s1"));
}

/// Size of the dense volumes the long verbs walk (a few tenths of a second in a debug build).
const DENSE: u64 = 32 << 20;

/// A vmux home whose default pool holds `src.raw` (dense, non-zero bytes), its qcow2 copy
/// `src.qcow2`, and an image file `file.qcow2` outside the pool.
fn dense_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    ok(home.path(), &["pool-list"]);
    let pool = pool_dir(home.path());
    let mut bytes = Vec::with_capacity(DENSE as usize);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while bytes.len() < DENSE as usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&(x | 1).to_le_bytes());
    }
    std::fs::write(pool.join("src.raw"), &bytes).expect("write src.raw");
    let src = pool.join("src.raw");
    let src = src.to_str().expect("utf-8 path");
    for dest in [pool.join("src.qcow2"), home.path().join("file.qcow2")] {
        qemu_img(&[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            src,
            dest.to_str().expect("utf-8 path"),
        ]);
    }
    home
}

fn pool_dir(home: &Path) -> PathBuf {
    home.join("data/images")
}

/// One JSON progress line as `--progress` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Line {
    done: u64,
    total: u64,
    finished: bool,
    cancelled: bool,
}

/// Parses a `--progress` line of verb `op`, failing the test on anything else.
fn parse_line(op: &str, line: &str) -> Line {
    let json: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
    assert_eq!(json["op"], op, "{line}");
    let number = |key: &str| {
        json[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} is not a number: {line}"))
    };
    let flag = |key: &str| json.get(key).is_some_and(|v| v == true);
    Line {
        done: number("done"),
        total: number("total"),
        finished: flag("finished"),
        cancelled: flag("cancelled"),
    }
}

/// Never backwards, never past the total, and at most one line at 100 %, the finished one.
fn assert_monotonic(lines: &[Line]) {
    for pair in lines.windows(2) {
        assert!(pair[1].done >= pair[0].done, "went back: {lines:?}");
        assert_eq!(pair[1].total, pair[0].total, "total changed: {lines:?}");
    }
    for line in lines {
        assert!(line.done <= line.total, "{lines:?}");
        assert_eq!(line.done == line.total, line.finished, "{lines:?}");
    }
}

#[test]
fn progress_prints_json_lines_that_parse_and_reach_100_percent_once() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let home = dense_home();
    let out = vmux(
        home.path(),
        &[
            "vol-convert",
            "default",
            "src.raw",
            "dst.qcow2",
            "--progress",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Line> = stderr
        .lines()
        .map(|l| parse_line("vol-convert", l))
        .collect();
    assert_monotonic(&lines);
    let last = lines.last().expect("a final line");
    assert!(last.finished && !last.cancelled, "{stderr}");
    assert_eq!((last.done, last.total), (DENSE, DENSE));
    assert_eq!(lines.iter().filter(|l| l.finished).count(), 1, "{stderr}");
    check_ok(&pool_dir(home.path()).join("dst.qcow2"));
}

#[test]
fn a_long_verb_prints_nothing_on_stderr_off_a_terminal_without_progress() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let home = dense_home();
    let out = vmux(
        home.path(),
        &["vol-clone", "default", "src.qcow2", "copy.qcow2"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a cancel must leave as it was: the pool listing (name, format, size, and allocation
/// unless the verb overwrites in place), every file name in the pool and the home, and the
/// bytes of every file in `kept`.
#[derive(Debug, PartialEq, Eq)]
struct PoolState {
    listing: Vec<(String, String, u64, u64)>,
    files: BTreeSet<String>,
    kept: Vec<Vec<u8>>,
}

fn pool_state(home: &Path, kept: &[PathBuf], in_place: bool) -> PoolState {
    let json: serde_json::Value =
        serde_json::from_str(&ok(home, &["vol-list", "default", "--json"])).expect("json");
    let listing = json
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| {
            let allocation = if in_place {
                0
            } else {
                v["allocation"].as_u64().expect("allocation")
            };
            (
                v["name"].as_str().expect("name").to_string(),
                v["format"].as_str().expect("format").to_string(),
                v["capacity"].as_u64().expect("capacity"),
                allocation,
            )
        })
        .collect();
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    };
    let files = names(&pool_dir(home))
        .into_iter()
        .chain(names(home))
        .collect();
    let kept = kept
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect();
    PoolState {
        listing,
        files,
        kept,
    }
}

/// Runs `vmux ARGS --progress` and sends it SIGINT once a progress line reports at least
/// `threshold` bytes done. Returns the exit status, the progress lines and the other stderr
/// lines; `None` when the verb finished first (before the threshold, or past its last chunk
/// when the signal came).
fn interrupt_at(
    home: &Path,
    op: &str,
    args: &[&str],
    threshold: u64,
) -> Option<(i32, Vec<Line>, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmux"))
        .args(args)
        .arg("--progress")
        .env("VMUX_HOME", home)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vmux");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut lines = Vec::new();
    let mut sent = false;
    let mut line = String::new();
    while stderr.read_line(&mut line).expect("read stderr") > 0 {
        if line.starts_with('{') {
            let parsed = parse_line(op, line.trim_end());
            lines.push(parsed);
            if !sent && !parsed.finished && parsed.done >= threshold {
                let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
                kill(pid, Signal::SIGINT).expect("SIGINT");
                sent = true;
            }
            line.clear();
        } else {
            break;
        }
    }
    let mut rest = std::mem::take(&mut line);
    stderr.read_to_string(&mut rest).expect("read stderr");
    let status = child.wait().expect("wait");
    if !sent || status.success() {
        // Finished first (a SIGINT past the last chunk lets the verb finish normally).
        assert!(status.success(), "{op}: {rest}");
        assert!(lines.last().is_some_and(|l| l.finished), "{op}: {lines:?}");
        return None;
    }
    Some((status.code().unwrap_or(-1), lines, rest))
}

/// The seed of the random points: `VMUX_TEST_SEED`, else the clock; printed to repeat a run.
fn seed() -> u64 {
    let seed = std::env::var("VMUX_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("VMUX_TEST_SEED={seed}");
    seed
}

/// Cancels `args` (`HOME` in them stands for the vmux home) by SIGINT at random points until
/// one lands mid-way (at most six tries): exit status 130, a `cancelled: ...` message naming
/// what was left, a last progress line marked cancelled and short of 100 %, and the pool
/// exactly as before, its qcow2 images passing `qemu-img check`.
fn sigint_leaves_the_pool_as_before(op: &str, args: &[&str], kept: &[&str], in_place: bool) {
    sigint_leaves_the_pool_as_before_in(op, args, kept, in_place, &|_| ());
}

/// [`sigint_leaves_the_pool_as_before`] in a home that `prepare` adds to first.
fn sigint_leaves_the_pool_as_before_in(
    op: &str,
    args: &[&str],
    kept: &[&str],
    in_place: bool,
    prepare: &dyn Fn(&Path),
) {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let mut random = seed();
    for attempt in 0..6 {
        let home = dense_home();
        prepare(home.path());
        let kept: Vec<PathBuf> = kept.iter().map(|k| home.path().join(k)).collect();
        let before = pool_state(home.path(), &kept, in_place);
        let base = home.path().to_str().expect("utf-8 path");
        let args: Vec<String> = args.iter().map(|a| a.replace("HOME", base)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        // Fast verbs (a wipe) may outrun random points: the last tries cancel at the first
        // progress line.
        let threshold = if attempt < 3 { random % (DENSE / 2) } else { 0 };
        let Some((status, lines, message)) = interrupt_at(home.path(), op, &args, threshold) else {
            eprintln!("{op}: try {attempt} finished before {threshold} bytes; again");
            continue;
        };
        let at = format!("{op} interrupted at {threshold} bytes");
        assert_eq!(status, 130, "{at}: {message}");
        assert!(message.starts_with("cancelled: "), "{at}: {message}");
        assert_monotonic(&lines);
        let last = lines.last().expect("lines");
        assert!(last.cancelled && !last.finished, "{at}: {lines:?}");
        let after = pool_state(home.path(), &kept, in_place);
        assert_eq!(after, before, "{at}");
        for path in std::fs::read_dir(pool_dir(home.path())).expect("list") {
            let path = path.expect("entry").path();
            if path.extension().is_some_and(|e| e == "qcow2") {
                check_ok(&path);
            }
        }
        return;
    }
    panic!("{op}: every try finished before its SIGINT");
}

#[test]
fn ctrl_c_cancels_a_conversion_and_leaves_the_pool_as_before() {
    sigint_leaves_the_pool_as_before(
        "vol-convert",
        &["vol-convert", "default", "src.raw", "dst.qcow2"],
        &["data/images/src.raw"],
        false,
    );
}

#[test]
fn ctrl_c_cancels_a_full_clone_and_leaves_the_pool_as_before() {
    sigint_leaves_the_pool_as_before(
        "vol-clone",
        &["vol-clone", "default", "src.qcow2", "copy.qcow2"],
        &["data/images/src.qcow2"],
        false,
    );
}

#[test]
fn ctrl_c_cancels_an_import_and_leaves_the_pool_and_the_file_as_before() {
    sigint_leaves_the_pool_as_before(
        "vol-import",
        &["vol-import", "default", "imported.raw", "HOME/file.qcow2"],
        &["file.qcow2"],
        false,
    );
}

#[test]
fn ctrl_c_cancels_a_download_and_writes_no_file() {
    sigint_leaves_the_pool_as_before(
        "vol-download",
        &["vol-download", "default", "src.qcow2", "HOME/down.raw"],
        &["data/images/src.qcow2"],
        false,
    );
}

#[test]
fn ctrl_c_cancels_a_wipe_and_keeps_the_volume_whole() {
    // A wipe only writes what the volume holds, and 32 MiB take less time than a SIGINT takes
    // to arrive on a busy machine: this volume holds 512 MiB (preallocated clusters, sparse
    // until the wipe writes them), so a SIGINT at any early progress line lands mid-way.
    let big = |home: &Path| {
        let path = pool_dir(home).join("big.qcow2");
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "preallocation=metadata",
            path.to_str().expect("utf-8 path"),
            "512M",
        ]);
    };
    sigint_leaves_the_pool_as_before_in(
        "vol-wipe",
        &["vol-wipe", "default", "big.qcow2"],
        &[],
        true,
        &big,
    );
}
