//! Disk crash safety through the whole stack (issue 4): a VM whose disk is a qcow2 pool volume
//! runs the guest-kit `blkstress` program (write sector n, flush, print `flushed n gen g`,
//! forever), and vmd is killed with SIGKILL at a random moment, 20 times. Two VMs take turns:
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
//! `VMUX_CRASH_SEED=<n>` replays a run's kill delays (each run prints its seed).

mod common;

use common::prereq::{Need, QEMU_IMG, QEMU_IO, met};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ROUNDS: usize = 20;
/// Kill delay after the first `flushed` line, milliseconds (inclusive range).
const DELAY_MS: (u64, u64) = (100, 800);
const SECTOR: usize = 512;

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

fn guest(name: &str) -> PathBuf {
    Path::new(env!("VMUX_GUEST_DIR")).join(format!("{name}.elf"))
}

/// A small xorshift generator: reproducible delays from a printed seed, no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

fn seed() -> u64 {
    if let Some(seed) = std::env::var("VMUX_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return seed;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    nanos | 1
}

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
    let mut rng = Rng(seed);
    let started = Instant::now();
    let (mut verified, mut leaked_rounds) = (0usize, 0usize);

    for round in 1..=ROUNDS {
        let target = &mut targets[round % 2];
        let offset = std::fs::metadata(&target.console).map_or(0, |m| m.len());
        ok(h, &["start", target.vm]);
        wait_for_first_flush(&target.console, offset, round);
        thread::sleep(Duration::from_millis(rng.between(DELAY_MS.0, DELAY_MS.1)));
        kill_9(vmd_pid(h, target.vm));

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
            "round {round} ({}): gen {generation}, {} flushed writes checked, qemu-img check {}",
            target.vm,
            boot.flushed.len(),
            check.status.code().unwrap_or(-1)
        );
        if target.discard_after {
            target.discard_written(boot.flushed.keys().max().copied().unwrap_or(0) + 1);
        }
    }

    println!(
        "{ROUNDS} kills, {verified} flushed writes verified, {leaked_rounds} rounds with leaked clusters, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        verified >= ROUNDS,
        "every round verifies at least one write"
    );
}
