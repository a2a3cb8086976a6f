//! Progress and cancellation of every long storage operation (full clone, convert, import,
//! upload, download, wipe, preallocated growth, snapshot deletion), on raw and qcow2 volumes with
//! sparse and dense content:
//!
//! - a watcher thread samples the progress handle while the operation runs: `done` never goes
//!   backwards, never passes `total`, and reaches `total` exactly once, when the operation has
//!   finished (never earlier), with `total` the bytes the operation has to walk;
//! - a canceller thread cancels at a random point (the seed is printed; `VMUX_TEST_SEED` repeats
//!   a run): the operation fails as cancelled and the pool is exactly as before (listing, files,
//!   the source's content, `qemu-img check`); a wipe, which overwrites in place, keeps name,
//!   format and size. Sparse volumes are 64 MiB (64 KiB of data per MiB, the rest holes,
//!   walked in milliseconds), dense ones 16 MiB of data; a sparse walk can end before the
//!   canceller runs, so after six misses its last try cancels before the start.

mod common;

use common::prereq::{QEMU_IMG, met};
use common::storage::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use vmux::progress::{Progress, ProgressSnapshot};
use vmux::storage::grow::GROW_STEP;
use vmux::storage::{
    ImageFormat, SnapshotManager, StorageError, VolumeSpec, copy::COPY_CHUNK, open_image,
};

/// Virtual size of the sparse test volumes (64 KiB of data per MiB, the rest holes).
const SPARSE_SIZE: u64 = 64 << 20;
/// Virtual size of the dense test volumes (every byte written).
const DENSE_SIZE: u64 = 16 << 20;
/// What a preallocated growth adds (four steps).
const GROWTH: u64 = 4 * GROW_STEP;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// 64 KiB of data at every MiB, the rest holes.
    Sparse,
    /// Every byte written, none zero.
    Dense,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Clone,
    Convert,
    Import,
    Upload,
    Download,
    Wipe,
    Grow,
    SnapshotDelete,
}

const FORMATS: [ImageFormat; 2] = [ImageFormat::Raw, ImageFormat::Qcow2];
const FILLS: [Fill; 2] = [Fill::Sparse, Fill::Dense];

/// Writes `fill` into the image at `path` (format by name, backing files in its directory).
fn write_content(path: &Path, fill: Fill, seed: u8) {
    let image = open_image(path, &options(path, false)).expect("open writable");
    match fill {
        Fill::Sparse => {
            let end = image.capacity();
            image.write_at(1 << 20, &[seed; 4096]).expect("write");
            image
                .write_at(9 << 20, &[seed ^ 0x5a; 65536])
                .expect("write");
            image
                .write_at(end - 8192, &[seed ^ 0xa5; 8192])
                .expect("write");
        }
        Fill::Dense => {
            let capacity = image.capacity();
            let mut offset = 0;
            while offset < capacity {
                let byte = ((offset >> 20) as u8).wrapping_add(seed) | 1;
                image.write_at(offset, &[byte; 1 << 20]).expect("write");
                offset += 1 << 20;
            }
        }
    }
    image.flush().expect("flush");
}

fn size(fill: Fill) -> u64 {
    match fill {
        Fill::Sparse => SPARSE_SIZE,
        Fill::Dense => DENSE_SIZE,
    }
}

fn volume(home: &Home, name: &str, fill: Fill, seed: u8) -> PathBuf {
    let info = home
        .storage
        .vol_create(
            "default",
            name,
            VolumeSpec {
                capacity: size(fill),
                format: None,
                preallocate: false,
            },
        )
        .expect("create");
    write_content(&info.path, fill, seed);
    info.path
}

/// One operation set up in a fresh home, ready to run.
struct Scene {
    home: Home,
    op: Op,
    format: ImageFormat,
    fill: Fill,
    /// Images whose content must survive a cancel (read through their chains).
    kept: Vec<PathBuf>,
    /// Images `qemu-img check` must pass after a cancel (qcow2 ones).
    checked: Vec<PathBuf>,
    /// Bytes the operation walks.
    total: u64,
}

impl Scene {
    fn new(op: Op, format: ImageFormat, fill: Fill) -> Scene {
        let home = Home::new();
        let name = format!("src.{format}");
        let src = volume(&home, &name, fill, 0x30);
        let mut kept = vec![src.clone()];
        let mut checked = vec![src.clone()];
        let mut total = size(fill);
        match op {
            Op::Upload | Op::Import => {
                let file = home.dir.path().join(format!("file.{format}"));
                vmux::storage::create::create_image(
                    &file,
                    &vmux::storage::create::NewImage::new(format, size(fill)),
                )
                .expect("upload file");
                write_content(&file, fill, 0x70);
                kept.push(file.clone());
                checked.push(file);
            }
            Op::Grow => total = GROWTH,
            Op::SnapshotDelete => {
                home.define_vm("web1", &[&format!("default/{name}")]);
                let snaps = SnapshotManager::new(home.paths.clone());
                snaps.create("web1", "s1").expect("snapshot");
                let overlay = self_disk(&home);
                write_content(&overlay, fill, 0x90);
                kept = vec![overlay.clone()];
                checked.push(overlay);
            }
            _ => {}
        }
        Scene {
            home,
            op,
            format,
            fill,
            kept,
            checked,
            total,
        }
    }

    /// Runs the operation with `progress`.
    fn run(&self, progress: &Progress) -> Result<(), StorageError> {
        let storage = &self.home.storage;
        let format = self.format;
        let src = format!("src.{format}");
        let other = match format {
            ImageFormat::Raw => ImageFormat::Qcow2,
            ImageFormat::Qcow2 => ImageFormat::Raw,
        };
        match self.op {
            Op::Clone => storage
                .vol_clone("default", &src, &format!("copy.{format}"), false, progress)
                .map(drop),
            Op::Convert => storage
                .vol_convert("default", &src, &format!("conv.{other}"), None, progress)
                .map(drop),
            Op::Import => storage
                .vol_import(
                    "default",
                    &format!("imported.{other}"),
                    &self.kept[1],
                    None,
                    progress,
                )
                .map(drop),
            Op::Upload => storage
                .vol_upload("default", &src, &self.kept[1], None, progress)
                .map(drop),
            Op::Download => storage
                .vol_download(
                    "default",
                    &src,
                    &self.home.dir.path().join(format!("down.{other}")),
                    None,
                    false,
                    progress,
                )
                .map(drop),
            Op::Wipe => storage.vol_wipe("default", &src, progress).map(drop),
            Op::Grow => storage
                .vol_grow_allocated("default", &src, size(self.fill) + GROWTH, progress)
                .map(drop),
            Op::SnapshotDelete => {
                SnapshotManager::new(self.home.paths.clone()).delete("web1", "s1", progress)
            }
        }
    }

    /// What a cancel must leave as it was.
    fn state(&self) -> State {
        let pool = self.home.pool_dir();
        let listing = self
            .home
            .storage
            .vol_list("default")
            .expect("list")
            .into_iter()
            .map(|(name, info)| {
                let info = info.expect("readable");
                // A wipe overwrites in place and a grow rolls back: their allocation may move.
                let allocation = match self.op {
                    Op::Wipe | Op::Grow | Op::SnapshotDelete => 0,
                    _ => info.allocation,
                };
                (name, info.format, info.capacity, allocation)
            })
            .collect();
        State {
            listing,
            files: names(&pool)
                .into_iter()
                .chain(names(self.home.dir.path()))
                .collect(),
            content: match self.op {
                Op::Wipe => Vec::new(),
                _ => self.kept.iter().map(|p| content(p)).collect(),
            },
        }
    }

    /// `qemu-img check` of every qcow2 image that must stay whole after a cancel.
    fn check(&self) {
        for path in &self.checked {
            check_qcow2(path);
        }
    }

    /// After a successful run: the images the operation made or changed pass `qemu-img
    /// check`, and a merged disk reads as the overlay did.
    fn check_result(&self, before: &[Vec<(u64, Vec<u8>)>]) {
        if self.op == Op::SnapshotDelete {
            let disk = self_disk(&self.home);
            check_qcow2(&disk);
            assert!(
                content(&disk) == before[0],
                "the merged disk reads differently"
            );
            return;
        }
        for path in std::fs::read_dir(self.home.pool_dir()).expect("list") {
            check_qcow2(&path.expect("entry").path());
        }
    }
}

/// `qemu-img check` of `path` when it is a qcow2 image.
fn check_qcow2(path: &Path) {
    if path.extension().is_some_and(|e| e == "qcow2") {
        check_ok(path);
    }
}

/// The current top image of VM web1's disk.
fn self_disk(home: &Home) -> PathBuf {
    let spec = &home.vm_disks("web1")[0];
    let source = spec.split(',').next().expect("a source");
    home.pool_dir().join(source.trim_start_matches("default/"))
}

/// Granularity of [`content`]'s blocks.
const BLOCK: u64 = 64 << 10;

/// What an image reads as: its non-zero 64 KiB blocks (aligned) with their offsets, through
/// its backing chain. Only ranges the image reports as data are read; fixed aligned blocks make a raw and a qcow2 image with the same content
/// compare equal, whatever extents each reports.
fn content(path: &Path) -> Vec<(u64, Vec<u8>)> {
    use vmux::storage::Extent;
    let image = open_ro(path);
    let mut blocks = std::collections::BTreeMap::new();
    let mut offset = 0;
    while offset < image.capacity() {
        let (kind, len) = image.extent(offset, COPY_CHUNK).expect("extent");
        if kind != Extent::Zero {
            let mut block = offset / BLOCK * BLOCK;
            while block < offset + len {
                let mut buf = vec![0u8; BLOCK.min(image.capacity() - block) as usize];
                image.read_at(block, &mut buf).expect("read");
                if buf.iter().any(|b| *b != 0) {
                    blocks.insert(block, buf);
                }
                block += BLOCK;
            }
        }
        offset += len;
    }
    blocks.into_iter().collect()
}

/// Every file name in `dir`, hidden ones included.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

struct State {
    listing: Vec<(String, ImageFormat, u64, u64)>,
    files: BTreeSet<String>,
    content: Vec<Vec<(u64, Vec<u8>)>>,
}

/// Samples a handle on a thread until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<ProgressSnapshot>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start(progress: &Progress) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = std::thread::spawn({
            let (progress, stop, samples) = (progress.clone(), stop.clone(), samples.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    samples.lock().expect("samples").push(progress.snapshot());
                    std::thread::yield_now();
                }
            }
        });
        Sampler {
            stop,
            samples,
            thread,
        }
    }

    fn finish(self, progress: &Progress) -> Vec<ProgressSnapshot> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("sampler");
        let mut samples = std::mem::take(&mut *self.samples.lock().expect("samples"));
        samples.push(progress.snapshot());
        samples
    }
}

/// Never backwards, never past the total, 100 % exactly once and only when finished.
fn assert_progress(samples: &[ProgressSnapshot], total: u64, what: &str) {
    let mut finishes = 0;
    for pair in samples.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(b.done >= a.done, "{what}: went back from {a:?} to {b:?}");
        assert!(a.total == 0 || b.total == a.total, "{what}: total changed");
        assert!(!a.finished || b.finished, "{what}: unfinished again");
        finishes += usize::from(!a.finished && b.finished);
    }
    for sample in samples {
        assert!(sample.done <= sample.total, "{what}: {sample:?}");
        if sample.total > 0 && sample.done == sample.total {
            assert!(
                sample.finished,
                "{what}: 100 % before finishing: {sample:?}"
            );
        }
    }
    let last = samples.last().expect("a sample");
    assert!(last.finished, "{what}: not finished: {last:?}");
    assert_eq!((last.done, last.total), (total, total), "{what}");
    assert!(finishes <= 1, "{what}: finished {finishes} times");
}

fn progress_of(op: Op) {
    if !met(&[QEMU_IMG]) {
        return;
    }
    for format in FORMATS {
        for fill in FILLS {
            let what = format!("{op:?} {format} {fill:?}");
            let scene = Scene::new(op, format, fill);
            let before: Vec<_> = scene.kept.iter().map(|p| content(p)).collect();
            let progress = Progress::new();
            let sampler = Sampler::start(&progress);
            scene
                .run(&progress)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let samples = sampler.finish(&progress);
            assert_progress(&samples, scene.total, &what);
            scene.check_result(&before);
        }
    }
}

/// A small random number generator (xorshift), seeded from the clock and printed.
struct Random(u64);

impl Random {
    fn new() -> Random {
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
        Random(seed)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if bound == 0 { 0 } else { self.0 % bound }
    }
}

/// Runs the scene's operation and cancels it once `threshold` bytes are done (`None`: before
/// it starts); says whether the cancel landed (the operation may finish first).
fn cancel_at(scene: &Scene, threshold: Option<u64>) -> bool {
    let progress = Progress::new();
    let Some(threshold) = threshold else {
        progress.cancel();
        return scene.run(&progress).is_err_and(|e| e.is_cancelled());
    };
    let done = Arc::new(AtomicBool::new(false));
    let canceller = std::thread::spawn({
        let (progress, done) = (progress.clone(), done.clone());
        move || {
            while !done.load(Ordering::Relaxed) {
                let now = progress.snapshot();
                if now.total > 0 && now.done >= threshold {
                    progress.cancel();
                    return;
                }
                std::thread::yield_now();
            }
        }
    });
    let result = scene.run(&progress);
    done.store(true, Ordering::Relaxed);
    canceller.join().expect("canceller");
    match result {
        Ok(()) => false,
        Err(e) if e.is_cancelled() => true,
        Err(e) => panic!("{:?} failed instead of being cancelled: {e}", scene.op),
    }
}

/// Mid-run cancels tried before a sparse walk falls back to a cancel before the start.
const TRIES: usize = 6;

fn cancel_of(op: Op) {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let mut random = Random::new();
    for format in FORMATS {
        for fill in FILLS {
            let what = format!("{op:?} {format} {fill:?}");
            // The last steps can outrun the canceller; try other points until one lands.
            let landed = (0..=TRIES).any(|attempt| {
                let scene = Scene::new(op, format, fill);
                let step = if op == Op::Grow {
                    GROW_STEP
                } else {
                    COPY_CHUNK
                };
                let threshold = if attempt < TRIES {
                    Some(random.below(scene.total.saturating_sub(3 * step)))
                } else if scene.fill == Fill::Sparse && op != Op::Grow {
                    eprintln!("{what}: the walk outran every cancel; cancelling at the start");
                    None
                } else {
                    return false;
                };
                let before = scene.state();
                if !cancel_at(&scene, threshold) {
                    eprintln!("{what}: finished before the cancel at {threshold:?}; again");
                    return false;
                }
                let after = scene.state();
                let at = format!("{what}: cancelled at {threshold:?}");
                assert_eq!(after.listing, before.listing, "{at}: listing");
                assert_eq!(after.files, before.files, "{at}: files");
                assert!(after.content == before.content, "{at}: content changed");
                scene.check();
                if op == Op::SnapshotDelete {
                    finish_after_cancel(&scene, &before, &what);
                }
                true
            });
            assert!(landed, "{what}: no cancel landed in {TRIES} tries");
        }
    }
}

/// A cancelled snapshot deletion is finished by running it again, and the VM's disk still
/// reads the same.
fn finish_after_cancel(scene: &Scene, before: &State, what: &str) {
    let snaps = SnapshotManager::new(scene.home.paths.clone());
    snaps
        .delete("web1", "s1", &Progress::new())
        .unwrap_or_else(|e| panic!("{what}: finishing: {e}"));
    assert!(snaps.list("web1").expect("list").is_empty(), "{what}");
    let disk = self_disk(&scene.home);
    assert!(
        content(&disk) == before.content[0],
        "{what}: the merged disk reads differently"
    );
}

#[test]
fn a_full_clone_reports_progress_to_100_percent_once() {
    progress_of(Op::Clone);
}

#[test]
fn a_conversion_reports_progress_to_100_percent_once() {
    progress_of(Op::Convert);
}

#[test]
fn an_import_reports_progress_to_100_percent_once() {
    progress_of(Op::Import);
}

#[test]
fn an_upload_reports_progress_to_100_percent_once() {
    progress_of(Op::Upload);
}

#[test]
fn a_download_reports_progress_to_100_percent_once() {
    progress_of(Op::Download);
}

#[test]
fn a_wipe_reports_progress_to_100_percent_once() {
    progress_of(Op::Wipe);
}

#[test]
fn a_preallocated_growth_reports_progress_to_100_percent_once() {
    progress_of(Op::Grow);
}

#[test]
fn a_snapshot_merge_reports_progress_to_100_percent_once() {
    progress_of(Op::SnapshotDelete);
}

#[test]
fn a_cancelled_clone_leaves_the_pool_as_before() {
    cancel_of(Op::Clone);
}

#[test]
fn a_cancelled_conversion_leaves_the_pool_as_before() {
    cancel_of(Op::Convert);
}

#[test]
fn a_cancelled_import_leaves_the_pool_and_the_file_as_before() {
    cancel_of(Op::Import);
}

#[test]
fn a_cancelled_upload_leaves_the_volume_and_the_file_as_before() {
    cancel_of(Op::Upload);
}

#[test]
fn a_cancelled_download_writes_no_file() {
    cancel_of(Op::Download);
}

#[test]
fn a_cancelled_wipe_keeps_the_volume_whole() {
    cancel_of(Op::Wipe);
}

#[test]
fn a_cancelled_preallocated_growth_keeps_the_old_size() {
    cancel_of(Op::Grow);
}

#[test]
fn a_cancelled_snapshot_merge_keeps_the_disk_reading_the_same_and_finishes_later() {
    cancel_of(Op::SnapshotDelete);
}
