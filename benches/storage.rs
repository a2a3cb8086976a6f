//! Storage benchmarks, side by side with QEMU's tools on the same files in one run, printing
//! ratios (vmux time / QEMU time: below 1 means vmux is faster):
//!
//! 1. sequential write and read of 1 GiB in 1 MiB requests on a new qcow2 image, through
//!    `BlockImage` vs `qemu-img bench -w` / `qemu-img bench` (queue depth 1, page cache);
//! 2. 4 KiB random reads and writes on a fully allocated 4 GiB qcow2 (both sides visit the same
//!    offsets: `i * step mod size` with a large odd step, qemu-img bench's `-S`), queue depth 1;
//! 3. `vol-convert` of a 1 GiB raw image full of data to qcow2 vs `qemu-img convert` (both
//!    timed to a synced output file);
//! 4. the refcount repair after a crash (`vol-check --repair`, and what a client runs after a
//!    vmd was killed) of a 20 GiB qcow2 with 2 GiB of data clusters mapped over the whole disk
//!    (1 MiB every 10 MiB; the data clusters are host-file holes, so it needs no disk space),
//!    all of its refcount blocks lost, vs `qemu-img check -r all` on an identical copy.
//!
//! Run: `cargo bench --bench storage` (needs qemu-utils); `VMUX_BENCH_ONLY=repair` (a comma
//! list of seq, rand, convert, repair) runs some of them. Sizes can be lowered for a quick look
//! with `VMUX_BENCH_SEQ_MIB`, `VMUX_BENCH_RAND_MIB`, `VMUX_BENCH_RAND_OPS`,
//! `VMUX_BENCH_REPAIR_GIB` (virtual size; a tenth of it is data); files go to
//! `VMUX_BENCH_DIR` (default: a temporary directory under target/).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vmux::config::Paths;
use vmux::progress::Progress;
use vmux::storage::create::{NewImage, create_image};
use vmux::storage::format::ImageFormat;
use vmux::storage::{OpenOptions, StorageManager, open_image};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Runs a command, panicking with its stderr when it fails; returns the wall time.
fn timed(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().expect("run qemu-img (install qemu-utils)");
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn qemu_img(args: &[&str]) -> Duration {
    timed(Command::new("qemu-img").args(args))
}

fn sync_file(path: &Path) {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .expect("sync");
}

fn report(name: &str, bytes: u64, ops: u64, ours: Duration, qemu: Duration) {
    let rate = |d: Duration| {
        if ops > 0 {
            format!("{:>9.0} IOPS", ops as f64 / d.as_secs_f64())
        } else {
            format!(
                "{:>7.0} MiB/s",
                bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
            )
        }
    };
    println!(
        "{name:<34} vmux {:>8.3} s {}   qemu {:>8.3} s {}   ratio {:.2}",
        ours.as_secs_f64(),
        rate(ours),
        qemu.as_secs_f64(),
        rate(qemu),
        ours.as_secs_f64() / qemu.as_secs_f64()
    );
}

fn fresh_qcow2(path: &Path, size: u64, preallocate: bool) {
    let _ = std::fs::remove_file(path);
    let spec = NewImage {
        preallocate,
        ..NewImage::new(ImageFormat::Qcow2, size)
    };
    create_image(path, &spec).expect("create qcow2");
}

fn sequential(dir: &Path) {
    let mib = env_u64("VMUX_BENCH_SEQ_MIB", 1024);
    let size = mib << 20;
    let ours_img = dir.join("seq-vmux.qcow2");
    let qemu_img_path = dir.join("seq-qemu.qcow2");
    let buf = vec![0x5au8; 1 << 20];
    let count = mib.to_string();

    fresh_qcow2(&ours_img, size, false);
    let image = open_image(&ours_img, &OpenOptions::writable()).expect("open");
    let start = Instant::now();
    for i in 0..mib {
        image.write_at(i << 20, &buf).expect("write");
    }
    image.flush().expect("flush");
    let ours_write = start.elapsed();
    drop(image);

    fresh_qcow2(&qemu_img_path, size, false);
    let qemu_write = qemu_img(&[
        "bench",
        "-w",
        "-q",
        "-c",
        &count,
        "-d",
        "1",
        "-s",
        "1M",
        "-t",
        "writeback",
        "--pattern=90",
        "-f",
        "qcow2",
        s(&qemu_img_path),
    ]) + {
        let start = Instant::now();
        sync_file(&qemu_img_path);
        start.elapsed()
    };
    report(
        &format!("seq write {mib} MiB (1 MiB req)"),
        size,
        0,
        ours_write,
        qemu_write,
    );

    let image = open_image(&ours_img, &OpenOptions::read_only()).expect("open");
    let mut read = vec![0u8; 1 << 20];
    // Both sides read the same file; an untimed pass first puts it in the page cache for both,
    // so neither pays for the disk and the other not.
    for i in 0..mib {
        image.read_at(i << 20, &mut read).expect("read");
    }
    let start = Instant::now();
    for i in 0..mib {
        image.read_at(i << 20, &mut read).expect("read");
    }
    let ours_read = start.elapsed();
    drop(image);
    let qemu_read = qemu_img(&[
        "bench",
        "-q",
        "-c",
        &count,
        "-d",
        "1",
        "-s",
        "1M",
        "-t",
        "writeback",
        "-f",
        "qcow2",
        s(&ours_img),
    ]);
    report(
        &format!("seq read {mib} MiB (1 MiB req)"),
        size,
        0,
        ours_read,
        qemu_read,
    );
    let _ = std::fs::remove_file(&ours_img);
    let _ = std::fs::remove_file(&qemu_img_path);
}

fn random(dir: &Path) {
    let size = env_u64("VMUX_BENCH_RAND_MIB", 4096) << 20;
    let ops = env_u64("VMUX_BENCH_RAND_OPS", 100_000);
    // 4 KiB times a prime (2^19 - 1): consecutive requests land far apart and, the image being
    // a power-of-two number of blocks, every block is visited before any repeats. (qemu-img
    // bench takes steps below 2^31 only.)
    let step: u64 = 4096 * 524_287;
    let path = dir.join("rand.qcow2");
    let start = Instant::now();
    fresh_qcow2(&path, size, true);
    println!(
        "  (setup: {} GiB preallocated qcow2 created in {:.1} s)",
        size >> 30,
        start.elapsed().as_secs_f64()
    );
    let count = ops.to_string();
    let step_text = step.to_string();

    let mut buf = vec![0u8; 4096];
    let image = open_image(&path, &OpenOptions::writable()).expect("open");
    // Warm both sides' view of the metadata the same way: one pass of the same reads first.
    for i in 0..ops.min(1000) {
        image.read_at((i * step) % size, &mut buf).expect("read");
    }
    let start = Instant::now();
    for i in 0..ops {
        image.read_at((i * step) % size, &mut buf).expect("read");
    }
    let ours_read = start.elapsed();
    let data = vec![0x3cu8; 4096];
    let start = Instant::now();
    for i in 0..ops {
        image.write_at((i * step) % size, &data).expect("write");
    }
    image.flush().expect("flush");
    let ours_write = start.elapsed();
    drop(image);

    let qemu_read = qemu_img(&[
        "bench",
        "-q",
        "-c",
        &count,
        "-d",
        "1",
        "-s",
        "4k",
        "-S",
        &step_text,
        "-t",
        "writeback",
        "-f",
        "qcow2",
        s(&path),
    ]);
    let qemu_write = qemu_img(&[
        "bench",
        "-w",
        "-q",
        "-c",
        &count,
        "-d",
        "1",
        "-s",
        "4k",
        "-S",
        &step_text,
        "-t",
        "writeback",
        "--pattern=60",
        "-f",
        "qcow2",
        s(&path),
    ]) + {
        let start = Instant::now();
        sync_file(&path);
        start.elapsed()
    };
    let label = format!("{} GiB", size >> 30);
    report(
        &format!("rand read 4K ({label} allocated)"),
        0,
        ops,
        ours_read,
        qemu_read,
    );
    report(
        &format!("rand write 4K ({label} allocated)"),
        0,
        ops,
        ours_write,
        qemu_write,
    );
    let _ = std::fs::remove_file(&path);
}

fn convert(dir: &Path) {
    let mib = env_u64("VMUX_BENCH_SEQ_MIB", 1024);
    let home = dir.join("home");
    let _ = std::fs::remove_dir_all(&home);
    let storage = StorageManager::new(Paths::under(&home));
    let pool = storage.active_dir("default").expect("default pool");
    let src = pool.join("src.raw");
    let start = Instant::now();
    {
        let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i % 253) as u8 + 1).collect();
        let mut file = std::fs::File::create(&src).expect("create source");
        for _ in 0..mib {
            std::io::Write::write_all(&mut file, &chunk).expect("write source");
        }
        file.sync_all().expect("sync source");
    }
    println!(
        "  (setup: {mib} MiB raw source written in {:.1} s)",
        start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    storage
        .vol_convert("default", "src.raw", "ours.qcow2", None, &Progress::new())
        .expect("vol-convert");
    let ours = start.elapsed();
    let theirs_path = dir.join("theirs.qcow2");
    let _ = std::fs::remove_file(&theirs_path);
    let theirs = qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        s(&src),
        s(&theirs_path),
    ]) + {
        let start = Instant::now();
        sync_file(&theirs_path);
        start.elapsed()
    };
    report(
        &format!("convert raw->qcow2 {mib} MiB"),
        mib << 20,
        0,
        ours,
        theirs,
    );
    let _ = std::fs::remove_dir_all(&home);
    let _ = std::fs::remove_file(&theirs_path);
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent; only measure on request.
    if !std::env::args().any(|a| a == "--bench") {
        println!("storage benchmarks: run with `cargo bench --bench storage`");
        return;
    }
    let dir: PathBuf = std::env::var_os("VMUX_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("storage-bench"));
    std::fs::create_dir_all(&dir).expect("bench dir");
    println!(
        "storage benchmarks in {} (ratio = vmux time / qemu time)",
        dir.display()
    );
    let only = std::env::var("VMUX_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|w| w.trim() == name);
    if wanted("seq") {
        sequential(&dir);
    }
    if wanted("rand") {
        random(&dir);
    }
    if wanted("convert") {
        convert(&dir);
    }
    if wanted("repair") {
        repair(&dir);
    }
}

fn repair(dir: &Path) {
    let gib = env_u64("VMUX_BENCH_REPAIR_GIB", 20);
    let size = gib << 30;
    let ours_path = dir.join("repair-vmux.qcow2");
    let qemu_path = dir.join("repair-qemu.qcow2");
    let start = Instant::now();
    // Every cluster mapped (metadata preallocation: the data clusters are holes in the host
    // file, so the bench needs no disk space for them), then 9 MiB of every 10 MiB discarded:
    // 1 MiB of data every 10 MiB, a tenth of the disk, in every L2 table.
    let _ = std::fs::remove_file(&ours_path);
    let size_text = size.to_string();
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-o",
        "preallocation=metadata",
        s(&ours_path),
        &size_text,
    ]);
    let discards: String = (0..size / (10 << 20))
        .map(|i| format!("discard {} {}\n", i * (10 << 20) + (1 << 20), 9u64 << 20))
        .collect();
    let mut qemu_io = Command::new("qemu-io")
        .args(["-f", "qcow2", s(&ours_path)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run qemu-io");
    std::io::Write::write_all(
        qemu_io.stdin.as_mut().expect("qemu-io stdin"),
        discards.as_bytes(),
    )
    .expect("send discards");
    drop(qemu_io.stdin.take());
    assert!(qemu_io.wait().expect("qemu-io").success(), "qemu-io failed");
    // Lose every refcount block: each allocated cluster then has refcount 0.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&ours_path)
        .expect("open for writing");
    let mut header = [0u8; 64];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut header, 0).expect("read header");
    let table = u64::from_be_bytes(header[48..56].try_into().expect("8 bytes"));
    let clusters = u32::from_be_bytes(header[56..60].try_into().expect("4 bytes"));
    let zeroes = vec![0u8; clusters as usize * 65536];
    std::os::unix::fs::FileExt::write_all_at(&file, &zeroes, table).expect("drop refcounts");
    drop(file);
    let status = Command::new("cp")
        .args(["--sparse=always", s(&ours_path), s(&qemu_path)])
        .status()
        .expect("run cp");
    assert!(status.success(), "cp failed");
    sync_file(&ours_path);
    sync_file(&qemu_path);
    println!(
        "  (setup: {gib} GiB qcow2 with {} MiB of data, refcounts dropped, in {:.1} s)",
        (size / 10) >> 20,
        start.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    let found = vmux::storage::qcow2_repair::repair_image(&ours_path).expect("repair");
    let ours = start.elapsed();
    assert!(found.repaired && found.errors > 0, "{found:?}");
    let qemu = {
        let start = Instant::now();
        // Exit status 0: everything found was repaired.
        let out = Command::new("qemu-img")
            .args(["check", "-r", "all", s(&qemu_path)])
            .output()
            .expect("run qemu-img check");
        assert!(out.status.success(), "qemu-img check -r all failed");
        start.elapsed()
    };
    println!(
        "{:<34} vmux {:>8.3} s   qemu {:>8.3} s   ratio {:.2}",
        format!("refcount repair {gib} GiB ({} errors)", found.errors),
        ours.as_secs_f64(),
        qemu.as_secs_f64(),
        ours.as_secs_f64() / qemu.as_secs_f64()
    );
    let status = Command::new("qemu-img")
        .args(["check", "-q", s(&ours_path)])
        .status()
        .expect("run qemu-img check");
    assert!(status.success(), "qemu-img check after vmux's repair");
    let _ = std::fs::remove_file(&ours_path);
    let _ = std::fs::remove_file(&qemu_path);
}
