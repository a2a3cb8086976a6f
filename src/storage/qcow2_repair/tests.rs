//! Tests of the refcount check and repair on images made by qemu-img and imago, damaged the
//! way a killed writer damages them (and worse), held to `qemu-img check` and
//! `qemu-img compare`. Tests that need qemu-img say "skipped" when it is missing.

use super::*;
use std::fs;
use std::os::unix::fs::FileExt;
use std::process::{Command, Output};

const CLUSTER: u64 = 64 << 10;

fn qemu_img_present() -> bool {
    Command::new("qemu-img")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

macro_rules! need_qemu {
    () => {
        if !qemu_img_present() {
            println!("skipped: qemu-img is missing; install qemu-utils");
            return;
        }
    };
}

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `qemu-img check`'s exit status (0 clean, 2 corrupt, 3 leaks only) and its report.
fn qemu_check(path: &Path) -> (i32, String) {
    let out = Command::new("qemu-img")
        .args(["check", s(path)])
        .output()
        .expect("run qemu-img check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn assert_qemu_clean(path: &Path) {
    let (code, text) = qemu_check(path);
    assert_eq!(code, 0, "qemu-img check after the repair:\n{text}");
}

fn assert_same_data(a: &Path, b: &Path) {
    run(
        "qemu-img",
        &["compare", "-f", "qcow2", "-F", "qcow2", s(a), s(b)],
    );
}

/// A qcow2 image made by qemu-img with `options`, then written by qemu-io `writes`.
fn qemu_image(dir: &Path, name: &str, size: &str, options: &str, writes: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec!["create", "-q", "-f", "qcow2"];
    if !options.is_empty() {
        args.extend(["-o", options]);
    }
    args.extend([s(&path), size]);
    run("qemu-img", &args);
    write_with_qemu_io(&path, writes);
    path
}

fn write_with_qemu_io(path: &Path, writes: &[&str]) {
    if writes.is_empty() {
        return;
    }
    let mut args = vec!["-f", "qcow2"];
    for write in writes {
        args.extend(["-c", write]);
    }
    args.push(s(path));
    run("qemu-io", &args);
}

fn copy(path: &Path, name: &str) -> PathBuf {
    let to = path.with_file_name(name);
    fs::copy(path, &to).expect("copy image");
    to
}

fn read_u64(path: &Path, at: u64) -> u64 {
    let mut bytes = [0u8; 8];
    fs::File::open(path)
        .expect("open")
        .read_exact_at(&mut bytes, at)
        .expect("read");
    u64::from_be_bytes(bytes)
}

fn write_bytes(path: &Path, at: u64, bytes: &[u8]) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for writing")
        .write_all_at(bytes, at)
        .expect("write");
}

/// Points refcount table entry `index` at nothing: every refcount it covered reads as 0.
fn drop_refcount_block(path: &Path, index: u64) {
    let table = read_u64(path, 48);
    write_bytes(path, table + index * 8, &[0u8; 8]);
}

/// Sets the 16-bit refcount of `cluster` (images with 64 KiB clusters, refcount block 0).
fn set_refcount16(path: &Path, cluster: u64, value: u16) {
    let table = read_u64(path, 48);
    let block = read_u64(path, table);
    write_bytes(path, block + cluster * 2, &value.to_be_bytes());
}

fn repaired(path: &Path) -> CheckReport {
    let report = repair_image(path).expect("repair");
    assert!(report.repaired, "{report:?}");
    report
}

#[test]
fn a_clean_image_checks_clean_and_is_left_alone() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = qemu_image(
        dir.path(),
        "a.qcow2",
        "1G",
        "",
        &["write -P 0x5a 0 1M", "write -P 0x33 700M 64k"],
    );
    let before = fs::read(&image).expect("read");
    let report = check_image(&image).expect("check");
    assert!(report.is_clean(), "{report:?}");
    assert!(report.allocated_clusters > 17, "{report:?}");
    let report = repair_image(&image).expect("repair");
    assert!(!report.repaired);
    assert_eq!(
        fs::read(&image).expect("read"),
        before,
        "a clean image was written"
    );
}

/// The imago 0.2.6 crash, reproduced in-process: a write that needs a new L2 table, then
/// the writer disappears without a flush (the image is leaked, so imago never writes back
/// its refcount cache).
fn imago_killed_after_new_l2_table(path: &Path) {
    use imago::file::File as ImagoFile;
    use imago::qcow2::Qcow2;
    use imago::{
        DenyImplicitOpenGate, FormatAccess, FormatDriverBuilder, Storage, StorageOpenOptions,
    };
    let file =
        ImagoFile::open(StorageOpenOptions::new().filename(path).write(true)).expect("open file");
    let qcow2 = Qcow2::<ImagoFile>::builder(file)
        .write(true)
        .open(DenyImplicitOpenGate::default())
        .expect("open qcow2");
    let access = FormatAccess::new(qcow2);
    access.write(&[0x11u8; 4096][..], 0).expect("write at 0");
    access.flush().expect("flush");
    // 600 MiB is past the first L2 table's 512 MiB: a new L2 table, written at once with
    // the L1 entry naming it; its refcount stays in imago's cache.
    access
        .write(&[0x22u8; 4096][..], 600 << 20)
        .expect("write at 600 MiB");
    std::mem::forget(access);
}

#[test]
fn an_l1_entry_naming_an_l2_table_with_refcount_zero_is_repaired() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = qemu_image(dir.path(), "crash.qcow2", "2G", "", &[]);
    imago_killed_after_new_l2_table(&image);
    let (code, text) = qemu_check(&image);
    assert_eq!(code, 2, "the imago crash must corrupt the image:\n{text}");
    assert!(text.contains("refcount=0 reference=1"), "{text}");
    let before = copy(&image, "before.qcow2");

    let found = check_image(&image).expect("check");
    assert!(found.errors >= 1 && found.damage == 0, "{found:?}");
    repaired(&image);

    assert_qemu_clean(&image);
    assert_same_data(&image, &before);
}

#[test]
fn after_the_repair_new_allocations_do_not_reuse_the_l2_table() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = qemu_image(dir.path(), "crash.qcow2", "2G", "", &[]);
    imago_killed_after_new_l2_table(&image);
    repaired(&image);
    // Before the repair the free-looking L2 cluster would be handed out for this data.
    write_with_qemu_io(
        &image,
        &["write -P 0x44 1200M 1M", "write -P 0x45 601M 64k"],
    );
    assert_qemu_clean(&image);
    run(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            "read -P 0x11 0 4k",
            "-c",
            "read -P 0x44 1200M 1M",
            "-c",
            "read -P 0x45 601M 64k",
            s(&image),
        ],
    );
}

#[test]
fn a_missing_refcount_block_is_rebuilt() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = qemu_image(
        dir.path(),
        "a.qcow2",
        "1G",
        "",
        &["write -P 0x5a 0 3M", "write -P 0x66 800M 128k"],
    );
    let before = copy(&image, "before.qcow2");
    drop_refcount_block(&image, 0);
    assert_eq!(qemu_check(&image).0, 2);
    let found = repaired(&image);
    assert!(found.errors > 50, "{found:?}");
    assert_qemu_clean(&image);
    assert_same_data(&image, &before);
}

#[test]
fn leaked_clusters_are_freed() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = qemu_image(dir.path(), "a.qcow2", "1G", "", &["write -P 0x5a 0 1M"]);
    let before = copy(&image, "before.qcow2");
    // One more cluster at the end of the file, counted although nothing uses it.
    let len = fs::metadata(&image).expect("stat").len();
    let spare = len.div_ceil(CLUSTER);
    write_bytes(&image, spare * CLUSTER, &[0u8; CLUSTER as usize]);
    set_refcount16(&image, spare, 1);
    let (code, text) = qemu_check(&image);
    assert_eq!(code, 3, "leaks only:\n{text}");
    let found = check_image(&image).expect("check");
    assert_eq!((found.errors, found.leaks), (0, 1), "{found:?}");
    repaired(&image);
    assert_qemu_clean(&image);
    assert_same_data(&image, &before);
}

#[test]
fn compressed_clusters_keep_their_data() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = dir.path().join("src.raw");
    run("qemu-img", &["create", "-q", "-f", "raw", s(&raw), "64M"]);
    run(
        "qemu-io",
        &[
            "-f",
            "raw",
            "-c",
            "write -P 0x61 0 5M",
            "-c",
            "write -P 0x62 40M 3M",
            s(&raw),
        ],
    );
    let image = dir.path().join("c.qcow2");
    run(
        "qemu-img",
        &["convert", "-c", "-O", "qcow2", s(&raw), s(&image)],
    );
    let before = copy(&image, "before.qcow2");
    assert!(check_image(&image).expect("check").is_clean());
    drop_refcount_block(&image, 0);
    repaired(&image);
    assert_qemu_clean(&image);
    assert_same_data(&image, &before);
    run(
        "qemu-img",
        &["compare", "-f", "raw", "-F", "qcow2", s(&raw), s(&image)],
    );
}

#[test]
fn internal_snapshots_keep_their_data_and_copied_flags() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = qemu_image(dir.path(), "s.qcow2", "1G", "", &["write -P 0x11 0 2M"]);
    run("qemu-img", &["snapshot", "-c", "one", s(&image)]);
    write_with_qemu_io(&image, &["write -P 0x22 1M 2M", "write -P 0x23 600M 64k"]);
    run("qemu-img", &["snapshot", "-c", "two", s(&image)]);
    write_with_qemu_io(&image, &["write -P 0x33 0 64k"]);
    assert!(check_image(&image).expect("check").is_clean());
    let snapshot_one = dir.path().join("one-before.raw");
    run(
        "qemu-img",
        &[
            "convert",
            "-l",
            "snapshot.name=one",
            "-O",
            "raw",
            s(&image),
            s(&snapshot_one),
        ],
    );
    let before = copy(&image, "before.qcow2");
    drop_refcount_block(&image, 0);

    let found = repaired(&image);
    assert!(found.errors > 0, "{found:?}");
    assert_qemu_clean(&image);
    assert_same_data(&image, &before);
    let snapshot_after = dir.path().join("one-after.raw");
    run(
        "qemu-img",
        &[
            "convert",
            "-l",
            "snapshot.name=one",
            "-O",
            "raw",
            s(&image),
            s(&snapshot_after),
        ],
    );
    assert!(
        fs::read(&snapshot_one).expect("read") == fs::read(&snapshot_after).expect("read"),
        "snapshot 'one' changed"
    );
    let list = run("qemu-img", &["snapshot", "-l", s(&image)]);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("one") && list.contains("two"), "{list}");
}

#[test]
fn a_wrong_copied_flag_on_a_shared_cluster_is_cleared() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = qemu_image(dir.path(), "s.qcow2", "1G", "", &["write -P 0x11 0 64k"]);
    run("qemu-img", &["snapshot", "-c", "one", s(&image)]);
    // The first data cluster is shared with the snapshot (refcount 2): mark it "copied",
    // which would let a write change the snapshot.
    let l2 = read_u64(&image, read_u64(&image, 40)) & walk::OFFSET_MASK;
    let entry = read_u64(&image, l2);
    write_bytes(&image, l2, &(entry | walk::COPIED).to_be_bytes());
    assert_eq!(qemu_check(&image).0, 2);
    let found = repaired(&image);
    assert_eq!(found.copied_flags, 1, "{found:?}");
    assert_eq!(read_u64(&image, l2), entry);
    assert_qemu_clean(&image);
}

#[test]
fn every_refcount_width_is_rebuilt() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    for bits in [1, 2, 4, 8, 16, 32, 64] {
        let image = qemu_image(
            dir.path(),
            &format!("r{bits}.qcow2"),
            "1G",
            &format!("refcount_bits={bits}"),
            &["write -P 0x5a 0 1M", "write -P 0x5b 900M 64k"],
        );
        assert!(
            check_image(&image).expect("check").is_clean(),
            "{bits} bits"
        );
        let before = copy(&image, &format!("r{bits}-before.qcow2"));
        drop_refcount_block(&image, 0);
        let found = repaired(&image);
        assert!(found.errors > 0, "{bits} bits: {found:?}");
        assert_qemu_clean(&image);
        assert_same_data(&image, &before);
    }
}

#[test]
fn small_clusters_with_many_l2_tables_and_refcount_blocks_are_rebuilt() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let writes: Vec<String> = (0..40)
        .map(|i| format!("write -P {} {}M 4k", i + 1, i * 3))
        .collect();
    let writes: Vec<&str> = writes.iter().map(String::as_str).collect();
    let image = qemu_image(
        dir.path(),
        "small.qcow2",
        "128M",
        "cluster_size=512",
        &writes,
    );
    let before = copy(&image, "before.qcow2");
    assert!(check_image(&image).expect("check").is_clean());
    for index in 0..4 {
        drop_refcount_block(&image, index);
    }
    repaired(&image);
    assert_qemu_clean(&image);
    assert_same_data(&image, &before);
}

#[test]
fn the_dirty_bit_is_cleared_after_the_repair() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = qemu_image(
        dir.path(),
        "lazy.qcow2",
        "1G",
        "lazy_refcounts=on",
        &["write -P 0x5a 0 1M"],
    );
    let features = read_u64(&image, 72);
    write_bytes(&image, 72, &(features | 1).to_be_bytes());
    drop_refcount_block(&image, 0);
    let found = check_image(&image).expect("check");
    assert!(found.dirty && found.errors > 0, "{found:?}");
    repaired(&image);
    assert_eq!(read_u64(&image, 72) & 1, 0, "dirty bit still set");
    assert_qemu_clean(&image);
    super::super::format::inspect(&image, super::super::format::Detect::ByName)
        .expect("vmux opens it again");
}

#[test]
fn persistent_bitmaps_are_counted() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = qemu_image(dir.path(), "b.qcow2", "1G", "", &["write -P 0x5a 0 1M"]);
    run("qemu-img", &["bitmap", "--add", s(&image), "b0"]);
    run(
        "qemu-img",
        &["bitmap", "--add", "-g", "512", s(&image), "fine"],
    );
    // qemu-io marks what it writes in both (enabled, persistent) bitmaps.
    write_with_qemu_io(&image, &["write -P 0x5b 500M 1M"]);
    assert_eq!(qemu_check(&image).0, 0);
    let found = check_image(&image).expect("check");
    assert!(
        found.is_clean(),
        "bitmap clusters must be counted: {found:?}"
    );
    drop_refcount_block(&image, 0);
    repaired(&image);
    assert_qemu_clean(&image);
    let info = run("qemu-img", &["info", s(&image)]);
    assert!(String::from_utf8_lossy(&info.stdout).contains("fine"));
}

#[test]
fn features_the_check_does_not_walk_are_refused_by_name() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data.raw");
    let external = qemu_image(
        dir.path(),
        "ext.qcow2",
        "64M",
        &format!("data_file={}", s(&data)),
        &[],
    );
    let subclusters = qemu_image(dir.path(), "sub.qcow2", "64M", "extended_l2=on", &[]);
    for (image, name) in [
        (external, "external data file"),
        (subclusters, "extended L2"),
    ] {
        let err = repair_image(&image).expect_err("refused");
        assert!(
            matches!(err, RepairError::Unsupported { .. }) && err.to_string().contains(name),
            "{err}"
        );
    }
}

#[test]
fn an_l1_entry_past_the_end_of_the_file_is_refused_and_nothing_is_written() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = qemu_image(dir.path(), "a.qcow2", "1G", "", &["write -P 0x5a 0 1M"]);
    let l1 = read_u64(&image, 40);
    write_bytes(&image, l1 + 8, &(1u64 << 40 | walk::COPIED).to_be_bytes());
    let before = fs::read(&image).expect("read");
    let err = repair_image(&image).expect_err("damage");
    assert!(matches!(err, RepairError::Damaged { .. }), "{err}");
    assert!(
        err.to_string().contains("beyond the end of the file"),
        "{err}"
    );
    assert_eq!(fs::read(&image).expect("read"), before);
}

#[test]
fn an_l2_table_inside_the_l1_table_is_overlapping_damage() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = qemu_image(dir.path(), "a.qcow2", "1G", "", &["write -P 0x5a 0 1M"]);
    let l1 = read_u64(&image, 40);
    write_bytes(&image, l1 + 8, &l1.to_be_bytes());
    let report = check_image(&image).expect("check");
    assert!(report.damage > 0, "{report:?}");
    assert!(
        report.problems.iter().any(|p| p.contains("both")),
        "{report:?}"
    );
}

#[test]
fn a_v2_image_is_checked_and_repaired() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = qemu_image(
        dir.path(),
        "v2.qcow2",
        "1G",
        "compat=0.10",
        &["write -P 0x5a 0 1M"],
    );
    let before = copy(&image, "before.qcow2");
    drop_refcount_block(&image, 0);
    repaired(&image);
    assert_qemu_clean(&image);
    assert_same_data(&image, &before);
}

/// Deterministic garbage (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn crafted_metadata_bytes_never_panic_and_stay_bounded() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let original = qemu_image(
        dir.path(),
        "orig.qcow2",
        "1G",
        "cluster_size=4096",
        &["write -P 0x5a 0 256k", "write -P 0x5b 300M 8k"],
    );
    run("qemu-img", &["snapshot", "-c", "s", s(&original)]);
    write_with_qemu_io(&original, &["write -P 0x5c 0 8k"]);
    let bytes = fs::read(&original).expect("read");
    let metadata_end = bytes.len().min(64 << 10);
    let target = dir.path().join("fuzz.qcow2");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let started = std::time::Instant::now();
    let (mut ok, mut refused) = (0, 0);
    for round in 0..300 {
        let mut image = bytes.clone();
        for _ in 0..1 + rng.next() % 8 {
            let at = (rng.next() as usize) % metadata_end;
            match rng.next() % 4 {
                // A random byte.
                0 => image[at] = rng.next() as u8,
                // A plausible big-endian offset, sometimes huge.
                1 if at + 8 <= image.len() => {
                    let value = match rng.next() % 3 {
                        0 => rng.next(),
                        1 => (rng.next() % 4096) << 12,
                        _ => u64::MAX,
                    };
                    image[at & !7..(at & !7) + 8].copy_from_slice(&value.to_be_bytes());
                }
                // Header fields: table sizes, counts, offsets.
                _ => {
                    let field = [36usize, 40, 48, 56, 60, 64][(rng.next() % 6) as usize];
                    let len = if matches!(field, 36 | 56 | 60) { 4 } else { 8 };
                    let value = rng.next().to_be_bytes();
                    image[field..field + len].copy_from_slice(&value[..len]);
                }
            }
        }
        fs::write(&target, &image).expect("write fuzz image");
        match check_image(&target) {
            Ok(_) => ok += 1,
            Err(_) => refused += 1,
        }
        match repair_image(&target) {
            Ok(report) if report.repaired => {
                let after = check_image(&target).expect("a repaired image checks");
                assert!(after.is_clean(), "round {round}: {after:?}");
            }
            Ok(_) | Err(_) => {}
        }
    }
    assert!(ok > 50 && refused > 10, "ok {ok}, refused {refused}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "300 crafted images took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_huge_snapshot_count_and_table_sizes_are_bounded() {
    need_qemu!();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = qemu_image(dir.path(), "h.qcow2", "1G", "", &["write -P 0x5a 0 64k"]);
    // 65536 snapshots whose table is the L1 table: entries of garbage sizes.
    let l1 = read_u64(&image, 40);
    write_bytes(&image, 60, &65536u32.to_be_bytes());
    write_bytes(&image, 64, &l1.to_be_bytes());
    let started = std::time::Instant::now();
    let result = check_image(&image);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    match result {
        Ok(report) => assert!(report.damage > 0, "{report:?}"),
        Err(e) => assert!(
            matches!(e, RepairError::Image(_) | RepairError::TooLarge { .. }),
            "{e}"
        ),
    }
}
