//! Disk crash safety through the whole stack (issue 4): a VM whose disk is a qcow2 pool volume
//! runs the guest-kit `blkstress` program (write sector n, flush, print `flushed n gen g`,
//! forever), and vmd is killed with SIGKILL at a random moment, until 20 kills landed during the
//! guest's writes (at most 50 tries). Two VMs take turns:
//! one on a volume made by `vol-create-as` (64 KiB clusters, so most writes land in clusters
//! allocated before), one on a pool image with 512-byte clusters whose written sectors are
//! discarded again after each round, so every guest write allocates a cluster (new L2 entries,
//! refcounts, L2 tables and refcount blocks: the metadata a crash can tear). After each kill:
//!
//! * `qemu-img check` exits 0 (clean) or 3 (leaked clusters only: space, never data);
//! * every write the guest reported as flushed in that boot is in the image, byte for byte
//!   (the image is converted to raw by `qemu-img convert` and each sector compared with the
//!   pattern tests/guests/README.md defines);
//! * each boot's generation (stored in sector 0, flushed before the first write) is larger
//!   than the previous boot's, so sector 0's flush survived too.
//!
//! A kill counts as landed during the writes only with proof: the guest printed more `flushed`
//! lines between its first one and the kill (it was writing), vmd was alive when the signal
//! was sent, and the guest never reported an end (`done` or `FAILED`). The test prints
//! `crash test NAME: K of N kills landed mid-write` with the writes verified, and fails unless
//! all 20 landed.
//!
//! `VMUX_CRASH_SEED=<n>` replays a run's kill delays (each run prints its seed).

mod common;

use common::binary::{guest, ok, vmux};
use common::crash::{Rng, Tally, seed};
use common::prereq::{Need, QEMU_IMG, QEMU_IO, met};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

/// Kills that must land during the guest's writes.
const ROUNDS: usize = 20;
/// Tries at most.
const MAX_TRIES: usize = 50;
/// Kill delay after the first `flushed` line, milliseconds (inclusive range).
const DELAY_MS: (u64, u64) = (100, 800);
const SECTOR: usize = 512;

/// The bytes of `path` from `offset` on (empty when the file is missing).
fn read_from(path: &Path, offset: u64) -> Vec<u8> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut bytes = Vec::new();
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset)).expect("seek console log");
    file.read_to_end(&mut bytes).expect("read console log");
    bytes
}

/// What one boot printed, from complete lines only (a line cut by the kill promises nothing).
#[derive(Debug, Default)]
struct BootLog {
    /// From `blkstress: ... gen <g>`.
    generation: Option<u64>,
    /// Sector → generation of its last `flushed` line.
    flushed: BTreeMap<u64, u64>,
    /// `flushed` lines seen (a sector written twice counts twice).
    lines: usize,
    /// The line saying blkstress ended (`... done` or `... FAILED: ...`), if it did.
    ended: Option<String>,
}

fn parse_log(bytes: &[u8]) -> BootLog {
    let text = String::from_utf8_lossy(bytes);
    let mut log = BootLog::default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    for line in complete.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["flushed", n, "gen", g] => {
                let (n, g) = (n.parse().expect("sector"), g.parse().expect("generation"));
                log.flushed.insert(n, g);
                log.lines += 1;
            }
            ["blkstress:", .., "gen", g] => log.generation = Some(g.parse().expect("generation")),
            ["blkstress:", .., "done"] | ["blkstress:", _, "FAILED:", ..] => {
                log.ended = Some(line.to_string());
            }
            _ => {}
        }
    }
    log
}

/// Sector `n` as blkstress writes it in generation `g` (tests/guests/README.md).
fn expected_sector(n: u64, g: u64) -> [u8; SECTOR] {
    let mut sector = [0u8; SECTOR];
    sector[0..8].copy_from_slice(&n.to_le_bytes());
    sector[8..16].copy_from_slice(&g.to_le_bytes());
    let seed = (n as u8).wrapping_mul(7) ^ ((n >> 8) as u8) ^ (g as u8).wrapping_mul(59);
    for (i, byte) in sector.iter_mut().enumerate().skip(16) {
        *byte = (i as u8).wrapping_mul(13) ^ seed;
    }
    sector
}

/// Waits until the console log (from `offset`) has a complete `flushed` line.
fn wait_for_first_flush(log: &Path, offset: u64, round: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if parse_log(&read_from(log, offset)).lines > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "round {round}: no flushed write within 30 s; console: {}",
            String::from_utf8_lossy(&read_from(log, offset))
        );
        thread::sleep(Duration::from_millis(5));
    }
}

fn vmd_pid(home: &Path, vm: &str) -> u32 {
    let text = std::fs::read_to_string(home.join(format!("state/vms/{vm}/vmd.pid")))
        .expect("vmd.pid of a running VM");
    text.trim().parse().expect("a pid")
}

/// Whether process `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// SIGKILL, then wait until the process is gone (reaped by whoever its parent is).
fn kill_9(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {pid} failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    let proc = PathBuf::from(format!("/proc/{pid}/stat"));
    loop {
        let gone = match std::fs::read_to_string(&proc) {
            Err(_) => true,
            // A zombie has released its files and locks; its parent reaps it later.
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
        };
        if gone {
            return;
        }
        assert!(Instant::now() < deadline, "vmd {pid} survived SIGKILL");
        thread::sleep(Duration::from_millis(5));
    }
}

fn qemu_img_check(image: &Path) -> Output {
    Command::new("qemu-img")
        .arg("check")
        .arg(image)
        .output()
        .expect("run qemu-img check")
}

/// One VM of the test and its disk.
struct Target {
    vm: &'static str,
    image: PathBuf,
    console: PathBuf,
    /// Discard the written sectors after each round, so the next round allocates again.
    discard_after: bool,
    last_generation: u64,
}

impl Target {
    fn new(home: &Path, vm: &'static str, volume: &str, discard_after: bool) -> Target {
        Target {
            vm,
            image: home.join("data/images").join(volume),
            console: home.join(format!("state/vms/{vm}/console.log")),
            discard_after,
            last_generation: 0,
        }
    }

    /// Frees the clusters of sectors 1 ..= `last` (plus one: the write in flight at the kill),
    /// keeping sector 0 and its generation.
    fn discard_written(&self, last: u64) {
        let command = format!("discard 512 {}", (last + 1) * SECTOR as u64);
        let out = Command::new("qemu-io")
            .args(["-d", "unmap", "-c", &command])
            .arg(&self.image)
            .output()
            .expect("run qemu-io");
        assert!(
            out.status.success(),
            "qemu-io {command} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn killing_vmd_during_flushed_writes_keeps_every_flushed_write_and_a_consistent_image() {
    if !met(&[Need::Kvm, QEMU_IMG, QEMU_IO]) {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["vol-create-as", "default", "crash.qcow2", "16M"]);
    let kernel = guest("blkstress");
    ok(
        h,
        &[
            "create",
            "c",
            "--kernel",
            kernel.to_str().expect("utf-8 path"),
            "--disk",
            "default/crash.qcow2",
        ],
    );
    // The second VM's disk: an image qemu-img made in the pool, with the smallest clusters.
    let small = h.join("data/images/small.qcow2");
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-o", "cluster_size=512"])
        .arg(&small)
        .arg("16M")
        .status()
        .expect("qemu-img create");
    assert!(status.success(), "qemu-img create failed");
    ok(
        h,
        &[
            "create",
            "s",
            "--kernel",
            kernel.to_str().expect("utf-8 path"),
            "--disk",
            "default/small.qcow2",
        ],
    );
    let mut targets = [
        Target::new(h, "c", "crash.qcow2", false),
        Target::new(h, "s", "small.qcow2", true),
    ];
    let raw = h.join("disk.raw");
    let seed = seed();
    println!("VMUX_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let (mut verified, mut leaked_rounds) = (0usize, 0usize);
    let mut tally = Tally::new("killing_vmd_during_flushed_writes");

    while tally.wants_more(ROUNDS, MAX_TRIES) {
        let round = tally.tries() + 1;
        let target = &mut targets[round % 2];
        let offset = std::fs::metadata(&target.console).map_or(0, |m| m.len());
        ok(h, &["start", target.vm]);
        wait_for_first_flush(&target.console, offset, round);
        let first = parse_log(&read_from(&target.console, offset)).lines;
        thread::sleep(Duration::from_millis(rng.between(DELAY_MS.0, DELAY_MS.1)));
        // Proof the kill lands while the guest writes: it went on writing after its first
        // flush, vmd is alive now, and (checked below) the guest never said it ended.
        let before = parse_log(&read_from(&target.console, offset)).lines;
        let pid = vmd_pid(h, target.vm);
        let was_alive = alive(pid);
        if was_alive {
            kill_9(pid);
        }

        let check = qemu_img_check(&target.image);
        let report = String::from_utf8_lossy(&check.stdout);
        match check.status.code() {
            Some(0) => {}
            Some(3) => leaked_rounds += 1,
            other => panic!(
                "round {round} ({}): qemu-img check exited {other:?}:\n{report}",
                target.vm
            ),
        }
        let boot = parse_log(&read_from(&target.console, offset));
        if let Some(end) = &boot.ended {
            assert!(
                !end.contains("FAILED"),
                "round {round} ({}): {end}",
                target.vm
            );
        }
        let landed = was_alive && before > first && boot.ended.is_none();
        tally.record(landed);
        if !was_alive {
            // The VM ended before the kill: wait until vmux sees it stopped.
            let deadline = Instant::now() + Duration::from_secs(10);
            while ok(h, &["list", "--all"]).contains("running") && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
        }
        let generation = boot.generation.expect("the boot line names the generation");
        assert!(
            generation > target.last_generation,
            "round {round} ({}): generation {generation} after {}: sector 0's flush was lost",
            target.vm,
            target.last_generation
        );
        target.last_generation = generation;
        let status = Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(&target.image)
            .arg(&raw)
            .status()
            .expect("qemu-img convert");
        assert!(status.success(), "round {round}: qemu-img convert failed");
        let disk = std::fs::read(&raw).expect("read converted image");
        for (&n, &g) in &boot.flushed {
            assert_eq!(g, generation, "round {round}: a line of another generation");
            let at = n as usize * SECTOR;
            let found = disk.get(at..at + SECTOR).expect("sector inside the disk");
            assert!(
                found == expected_sector(n, g),
                "round {round} ({}): sector {n} lost its flushed gen {g} write; it holds n={} g={}",
                target.vm,
                u64::from_le_bytes(found[0..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(found[8..16].try_into().expect("8 bytes")),
            );
        }
        verified += boot.flushed.len();
        println!(
            "round {round} ({}): gen {generation}, {} flushed writes checked, qemu-img check {}, \
             kill landed mid-write: {landed}",
            target.vm,
            boot.flushed.len(),
            check.status.code().unwrap_or(-1)
        );
        if target.discard_after {
            target.discard_written(boot.flushed.keys().max().copied().unwrap_or(0) + 1);
        }
    }

    tally.finish(
        ROUNDS,
        &format!(
            " ({verified} flushed writes verified, {leaked_rounds} kills left leaked clusters, \
             {:.1} s)",
            started.elapsed().as_secs_f64()
        ),
    );
    assert!(
        verified >= tally.tries(),
        "every round verifies at least one write"
    );
}

/// Complete lines of `bytes` that start with `prefix`.
fn lines_starting(bytes: &[u8], prefix: &str) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .filter(|line| line.starts_with(prefix))
        .count()
}

/// Waits until the console log (from `offset`) has `count` complete lines starting with
/// `prefix`.
fn wait_for_lines(log: &Path, offset: u64, prefix: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines_starting(&read_from(log, offset), prefix) < count {
        assert!(
            Instant::now() < deadline,
            "no {count} '{prefix}' lines within 30 s; console: {}",
            String::from_utf8_lossy(&read_from(log, offset))
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until no process holds VM `vm`'s pid lock: after SIGKILL the process can show as a
/// zombie while its other threads still exit, holding its files (and locks) a little longer.
fn wait_for_vmd_gone(home: &Path, vm: &str) {
    use vmux::vmd::pidfile::{Liveness, probe};
    let pid_file = home.join(format!("state/vms/{vm}/vmd.pid"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe(&pid_file, || {}).expect("probe vmd.pid") != Liveness::Dead {
        assert!(
            Instant::now() < deadline,
            "vmd of {vm} still holds its lock"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// The imago 0.2.6 crash (issue: a Linux guest's `dd oflag=direct`, then `kill -9` of vmd,
/// left "ERROR cluster 4 refcount=0 reference=1" behind): imago writes a new L2 table and the
/// L1 entry naming it at once, but the L2 table's refcount only at the next flush. Here the
/// guest writes without flushing, 1 GiB apart on a sparse 64 GiB volume, so each write needs
/// a new L2 table, and vmd is killed mid-way. Then `vmux list` notices the crash and repairs
/// the image, `qemu-img check` is clean, the crash reason says what was repaired, the VM
/// starts again, and a clean destroy (still without a guest flush) leaves a clean image too.
#[test]
fn killing_vmd_after_unflushed_writes_that_need_new_l2_tables_leaves_a_clean_image() {
    if !met(&[Need::Kvm, QEMU_IMG]) {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["vol-create-as", "default", "big.qcow2", "64G"]);
    let kernel = guest("blkstress");
    ok(
        h,
        &[
            "create",
            "l",
            "--kernel",
            kernel.to_str().expect("utf-8 path"),
            "--cmdline",
            // 2097152 sectors = 1 GiB: every write lands in a new 512 MiB L2 table's range.
            "stride=2097152 flush=no",
            "--disk",
            "default/big.qcow2",
        ],
    );
    let image = h.join("data/images/big.qcow2");
    let console = h.join("state/vms/l/console.log");

    ok(h, &["start", "l"]);
    // The first write lands in sector 0's L2 table; the next ones each allocate one.
    wait_for_lines(&console, 0, "written", 4);
    kill_9(vmd_pid(h, "l"));
    wait_for_vmd_gone(h, "l");
    let killed = qemu_img_check(&image);
    println!(
        "after kill -9: qemu-img check exited {:?}:\n{}",
        killed.status.code(),
        String::from_utf8_lossy(&killed.stdout)
    );

    let list = vmux(h, &["list"]);
    println!(
        "vmux list: {}{}",
        String::from_utf8_lossy(&list.stdout),
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(list.status.success(), "vmux list failed");
    let check = qemu_img_check(&image);
    assert_eq!(
        check.status.code(),
        Some(0),
        "qemu-img check after `vmux list`:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let info = ok(h, &["info", "l"]);
    assert!(info.contains("crashed"), "{info}");
    if killed.status.code() != Some(0) {
        assert!(
            info.contains("repaired the qcow2 refcounts of default/big.qcow2"),
            "{info}"
        );
    }

    let offset = std::fs::metadata(&console).map_or(0, |m| m.len());
    ok(h, &["start", "l"]);
    wait_for_lines(&console, offset, "written", 4);
    let boot = parse_log(&read_from(&console, offset));
    assert_eq!(
        boot.generation,
        Some(2),
        "sector 0's flushed generation survived"
    );
    ok(h, &["destroy", "l"]);
    let check = qemu_img_check(&image);
    assert_eq!(
        check.status.code(),
        Some(0),
        "qemu-img check after a clean destroy:\n{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
