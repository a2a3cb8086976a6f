//! Boot-image extraction time: from opening a 2 GiB qcow2 disk image to having the kernel
//! and initrd bytes in memory (partition table, ext4 metadata, grub.cfg, the two files), the
//! work vmux does at every start of a VM that boots an image's own kernel. Goal: ≤ 100 ms.
//!
//! The image is `bench.qcow2` from `scripts/make-test-images.sh --bench` (Debian layout, an
//! 8 MiB kernel and a 48 MiB initrd of random bytes), built under target/test-images-bench on
//! first use. Printed: the median of `VMUX_BENCH_BOOTIMG_RUNS` (default 21) runs of
//! open+inspect+extract, split into inspect and extract, for the qcow2 image and for its raw
//! twin, next to the time one `pread` of the same number of bytes from the raw file into a new
//! buffer takes (the floor: page faults of the new memory and one kernel copy). Everything is in the page cache after the first run, as it is for a VM
//! restarted on the same host.
//!
//! Run: `cargo bench --bench bootimg` (needs the tools the script lists).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vmux::bootimg::{self, RawFile, ReadAt, StorageDisk};
use vmux::storage::format::{BackingTrust, Detect};

fn images() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/test-images-bench");
    let status = Command::new("bash")
        .arg(root.join("scripts/make-test-images.sh"))
        .args(["--bench"])
        .arg(&out)
        .status()
        .expect("run make-test-images.sh");
    assert!(status.success(), "make-test-images.sh --bench failed");
    out
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:7.2} ms", d.as_secs_f64() * 1e3)
}

/// Open + inspect + extract `runs` times; medians of (total, inspect, extract) and the bytes.
fn measure(runs: usize, open: &dyn Fn() -> Arc<dyn ReadAt>) -> (Duration, Duration, Duration, u64) {
    let (mut total, mut inspect, mut extract) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let disk = open();
        let plan = bootimg::inspect(Arc::clone(&disk)).expect("inspect");
        let inspected = Instant::now();
        let files = bootimg::extract(disk, &plan).expect("extract");
        let done = Instant::now();
        bytes = files.kernel.len() as u64 + files.initrd.as_ref().map_or(0, |i| i.len() as u64);
        total.push(done - start);
        inspect.push(inspected - start);
        extract.push(done - inspected);
    }
    (median(total), median(inspect), median(extract), bytes)
}

fn main() {
    let runs: usize = std::env::var("VMUX_BENCH_BOOTIMG_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21);
    let dir = images();
    let qcow2 = dir.join("bench.qcow2");
    let raw = dir.join("bench.raw");
    if !raw.exists() {
        let status = Command::new("qemu-img")
            .args(["convert", "-f", "qcow2", "-O", "raw"])
            .arg(&qcow2)
            .arg(&raw)
            .status()
            .expect("qemu-img");
        assert!(status.success());
    }
    let q = measure(runs, &|| {
        Arc::new(
            StorageDisk::open(&qcow2, Detect::ByName, &BackingTrust::none()).expect("open qcow2"),
        ) as Arc<dyn ReadAt>
    });
    let r = measure(runs, &|| {
        Arc::new(RawFile::new(std::fs::File::open(&raw).expect("open raw")).expect("size"))
            as Arc<dyn ReadAt>
    });
    let floor = {
        let file = std::fs::File::open(&raw).expect("open raw");
        median(
            (0..runs)
                .map(|_| {
                    let start = Instant::now();
                    let mut buf = vec![0u8; q.3 as usize];
                    file.read_exact_at(&mut buf, 20480 * 512).expect("pread");
                    std::hint::black_box(&buf);
                    start.elapsed()
                })
                .collect(),
        )
    };
    println!(
        "boot-image extraction, 2 GiB disk, {} MiB of kernel+initrd, median of {runs} runs",
        q.3 >> 20
    );
    println!(
        "  qcow2  total {}  (inspect {}, extract {})",
        ms(q.0),
        ms(q.1),
        ms(q.2)
    );
    println!(
        "  raw    total {}  (inspect {}, extract {})",
        ms(r.0),
        ms(r.1),
        ms(r.2)
    );
    println!(
        "  one pread of the same bytes into a new buffer (the floor): {}",
        ms(floor)
    );
    println!(
        "  goal <= 100 ms: {}",
        if q.0 <= Duration::from_millis(100) {
            "met"
        } else {
            "NOT met"
        }
    );
}
