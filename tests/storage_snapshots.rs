//! External disk snapshots through `SnapshotManager`, as `vmux snapshot-*` uses them: each step
//! checked by what the VM's disk reads afterwards, by `qemu-img check`, and by which files and
//! snapshots remain; and the error path of every snapshot verb.

mod common;

use common::prereq::{QEMU_IMG, met};
use common::storage::*;
use std::path::PathBuf;
use vmux::config::parse_size;
use vmux::progress::Progress;
use vmux::storage::{SnapshotManager, StorageError, VolumeSpec};

struct Vm {
    home: Home,
    snaps: SnapshotManager,
}

/// A stopped VM `web1` with a 4 MiB qcow2 disk (pattern 0x11 in its first MiB) and a read-only
/// raw data disk.
fn vm() -> Vm {
    vm_with("web1.qcow2")
}

fn vm_with(volume: &str) -> Vm {
    let home = Home::new();
    let spec = VolumeSpec {
        capacity: parse_size("4M").expect("size"),
        format: None,
        preallocate: false,
    };
    let disk = home
        .storage
        .vol_create("default", volume, spec)
        .expect("disk");
    home.storage
        .vol_create("default", "data.raw", spec)
        .expect("data disk");
    fill(&disk.path, 0, 1 << 20, 0x11);
    home.define_vm(
        "web1",
        &[&format!("default/{volume}"), "default/data.raw,readonly"],
    );
    let snaps = SnapshotManager::new(home.paths.clone());
    Vm { home, snaps }
}

impl Vm {
    /// The file of the VM's first disk now.
    fn disk(&self) -> PathBuf {
        let spec = &self.home.vm_disks("web1")[0];
        let source = spec.split(',').next().expect("a source");
        let volume = source.trim_start_matches("default/");
        self.home.pool_dir().join(volume)
    }

    /// Writes through the VM's current disk (as the guest would).
    fn write(&self, offset: u64, len: usize, byte: u8) {
        fill(&self.disk(), offset, len, byte);
    }

    /// The byte at `offset` of the VM's current disk.
    fn byte(&self, offset: u64) -> u8 {
        let image = open_ro(&self.disk());
        let mut b = [0u8; 1];
        image.read_at(offset, &mut b).expect("read");
        b[0]
    }

    fn names(&self) -> Vec<String> {
        self.snaps
            .list("web1")
            .expect("list")
            .into_iter()
            .map(|s| s.name)
            .collect()
    }

    fn volumes(&self) -> Vec<String> {
        self.home
            .storage
            .vol_list("default")
            .expect("vol-list")
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    fn check_all(&self) {
        for name in self.volumes().iter().filter(|n| n.ends_with(".qcow2")) {
            check_ok(&self.home.pool_dir().join(name));
        }
    }
}

fn err_text<T: std::fmt::Debug>(result: Result<T, StorageError>) -> String {
    result.expect_err("must fail").to_string()
}

#[test]
fn create_puts_an_overlay_on_each_writable_disk_and_freezes_the_old_image() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let vm = vm();
    let info = vm.snaps.create("web1", "s1").expect("create");
    assert_eq!(info.disks.len(), 1, "the read-only disk is not snapshotted");
    assert_eq!(
        vm.home.vm_disks("web1"),
        [
            "default/web1.s1.qcow2,format=qcow2",
            "default/data.raw,readonly"
        ]
    );
    vm.write(0, 4096, 0x22);
    let base = read_all(open_ro(&vm.home.pool_dir().join("web1.qcow2")).as_ref());
    assert_eq!(base[0], 0x11, "the frozen image does not change");
    assert_eq!(vm.byte(0), 0x22);
    assert_eq!(vm.byte(8192), 0x11, "unwritten data reads through");
    let info = qemu_img(&["info", &s(&vm.disk())]);
    assert!(info.contains("backing file: web1.qcow2"), "{info}");
    vm.check_all();
}

#[test]
fn list_is_in_creation_order_with_the_newest_current() {
    let vm = vm();
    vm.snaps.create("web1", "b-first").expect("create");
    vm.snaps.create("web1", "a-second").expect("create");
    let list = vm.snaps.list("web1").expect("list");
    assert_eq!(
        list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["b-first", "a-second"]
    );
    assert!(!list[0].current && list[1].current);
    assert!(list[0].created > 1_600_000_000);
    let json = serde_json::to_value(&list).expect("json");
    assert_eq!(json[1]["state"], "ready");
}

#[test]
fn revert_brings_back_the_snapshot_and_discards_what_came_after() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let vm = vm();
    vm.snaps.create("web1", "s1").expect("s1");
    vm.write(0, 4096, 0x22);
    vm.snaps.create("web1", "s2").expect("s2");
    vm.write(0, 4096, 0x33);
    let report = vm.snaps.revert("web1", "s1").expect("revert");
    assert_eq!(report.removed_snapshots, ["s2"]);
    assert_eq!(vm.byte(0), 0x11);
    assert_eq!(vm.names(), ["s1"]);
    assert_eq!(vm.volumes(), ["data.raw", "web1.qcow2", "web1.s1-2.qcow2"]);
    // The snapshot survives its revert: change things and revert again.
    vm.write(0, 4096, 0x44);
    vm.snaps.revert("web1", "s1").expect("revert again");
    assert_eq!(vm.byte(0), 0x11);
    assert_eq!(vm.volumes(), ["data.raw", "web1.qcow2", "web1.s1.qcow2"]);
    vm.check_all();
}

#[test]
fn revert_to_a_later_snapshot_keeps_the_earlier_ones() {
    let vm = vm();
    vm.snaps.create("web1", "s1").expect("s1");
    vm.write(0, 4096, 0x22);
    vm.snaps.create("web1", "s2").expect("s2");
    vm.write(0, 4096, 0x33);
    vm.snaps.revert("web1", "s2").expect("revert");
    assert_eq!(vm.byte(0), 0x22);
    assert_eq!(vm.names(), ["s1", "s2"]);
    vm.snaps.revert("web1", "s1").expect("then the older one");
    assert_eq!(vm.byte(0), 0x11);
}

#[test]
fn deleting_the_oldest_snapshot_merges_it_and_keeps_every_state() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let vm = vm();
    vm.snaps.create("web1", "s1").expect("s1");
    vm.write(0, 4096, 0x22);
    vm.write(65536, 4096, 0x23);
    vm.snaps.create("web1", "s2").expect("s2");
    vm.write(0, 4096, 0x33);
    vm.snaps
        .delete("web1", "s1", &Progress::new())
        .expect("delete s1");
    assert_eq!(vm.names(), ["s2"]);
    assert_eq!(vm.byte(0), 0x33, "the VM's current data is unchanged");
    assert_eq!(vm.volumes(), ["data.raw", "web1.qcow2", "web1.s2.qcow2"]);
    let chain = qemu_img(&["info", "--backing-chain", &s(&vm.disk())]);
    assert!(chain.contains("backing file: web1.qcow2"), "{chain}");
    vm.check_all();
    // s2 still reverts to its state, which now lives in web1.qcow2.
    vm.snaps.revert("web1", "s2").expect("revert s2");
    assert_eq!(
        (vm.byte(0), vm.byte(65536), vm.byte(8192)),
        (0x22, 0x23, 0x11)
    );
}

#[test]
fn deleting_the_newest_snapshot_puts_the_vm_back_on_the_frozen_image() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let vm = vm();
    vm.snaps.create("web1", "s1").expect("s1");
    vm.write(4096, 4096, 0x22);
    vm.snaps
        .delete("web1", "s1", &Progress::new())
        .expect("delete");
    assert_eq!(vm.home.vm_disks("web1")[0], "default/web1.qcow2");
    assert_eq!((vm.byte(4096), vm.byte(0)), (0x22, 0x11));
    assert_eq!(vm.volumes(), ["data.raw", "web1.qcow2"]);
    assert!(vm.names().is_empty());
    vm.check_all();
}

#[test]
fn raw_disks_get_qcow2_overlays_and_merge_back_into_raw() {
    let vm = vm_with("web1.raw");
    vm.snaps.create("web1", "s1").expect("create");
    assert_eq!(
        vm.home.vm_disks("web1")[0],
        "default/web1.s1.qcow2,format=qcow2"
    );
    vm.write(0, 4096, 0x55);
    vm.write(1 << 20, 65536, 0);
    vm.snaps
        .delete("web1", "s1", &Progress::new())
        .expect("delete");
    assert_eq!(vm.home.vm_disks("web1")[0], "default/web1.raw");
    let bytes = std::fs::read(vm.home.pool_dir().join("web1.raw")).expect("read raw");
    assert!(bytes[..4096].iter().all(|b| *b == 0x55));
    assert!(bytes[4096..1 << 20].iter().all(|b| *b == 0x11));
}

#[test]
fn an_interrupted_creation_is_rolled_back_by_the_next_command() {
    let vm = vm();
    let prepared = vm.snaps.prepare("web1", "s1").expect("prepare");
    assert!(prepared.overlays[0].1.exists());
    // vmux died before switching the VM's disks: the next snapshot command cleans up.
    assert!(vm.names().is_empty());
    assert!(!prepared.overlays[0].1.exists());
    assert_eq!(vm.home.vm_disks("web1")[0], "default/web1.qcow2");
}

#[test]
fn prepare_then_complete_is_a_whole_snapshot() {
    let vm = vm();
    let prepared = vm.snaps.prepare("web1", "live").expect("prepare");
    let info = vm.snaps.complete(&prepared).expect("complete");
    assert!(info.current);
    assert_eq!(
        vm.home.vm_disks("web1")[0],
        "default/web1.live.qcow2,format=qcow2"
    );
}

#[test]
fn snapshot_errors_name_the_vm_and_the_fix() {
    let vm = vm();
    vm.snaps.create("web1", "s1").expect("create");
    let text = err_text(vm.snaps.create("web1", "s1"));
    assert!(text.contains("already has a snapshot 's1'"), "{text}");
    assert!(err_text(vm.snaps.create("web1", "a/b")).contains("not a valid name"));
    let text = err_text(vm.snaps.revert("web1", "nope"));
    assert!(
        text.contains("no snapshot 'nope'") && text.contains("snapshot-list web1"),
        "{text}"
    );
    assert!(
        err_text(vm.snaps.delete("web1", "nope", &Progress::new())).contains("no snapshot 'nope'")
    );
    assert!(err_text(vm.snaps.list("ghost")).contains("'ghost'"));
    vm.home.fake_running("web1");
    let text = err_text(vm.snaps.create("web1", "s2"));
    assert!(
        text.contains("its vmd must switch its disks") && text.contains("vmux shutdown web1"),
        "{text}"
    );
    assert!(err_text(vm.snaps.revert("web1", "s1")).contains("vmux shutdown web1"));
    assert!(
        err_text(vm.snaps.delete("web1", "s1", &Progress::new())).contains("vmux shutdown web1")
    );
    vm.home.fake_stopped("web1");
    vm.home.define_vm("ro", &["default/data.raw,readonly"]);
    let text = err_text(vm.snaps.create("ro", "s1"));
    assert!(text.contains("no writable disks"), "{text}");
}

#[test]
fn a_snapshotted_base_cannot_be_deleted_or_written() {
    let vm = vm();
    vm.snaps.create("web1", "s1").expect("create");
    let text = err_text(vm.home.storage.vol_delete("default", "web1.qcow2"));
    assert!(text.contains("used by VM web1"), "{text}");
    let text = err_text(
        vm.home
            .storage
            .vol_wipe("default", "web1.qcow2", &Progress::new()),
    );
    assert!(
        text.contains("backing file of") && text.contains("web1.s1.qcow2"),
        "{text}"
    );
}

/// Sets the stored refcount of the cluster holding `image`'s first L2 table to 0, as a merge
/// killed between imago's L1 write and its refcount write leaves it (`qemu-img check`: "ERROR
/// cluster N refcount=0 reference=1"). Assumes 16-bit refcounts and one refcount block.
fn lose_l2_refcount(image: &std::path::Path) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .expect("open image file");
    let be64 = |at: u64| {
        let mut bytes = [0u8; 8];
        file.read_exact_at(&mut bytes, at).expect("read");
        u64::from_be_bytes(bytes)
    };
    let cluster_bits = be64(16) & 0xffff_ffff;
    assert_eq!(be64(96) >> 32, 4, "16-bit refcounts");
    let l1 = be64(40);
    let l2_cluster = (be64(l1) & 0x00ff_ffff_ffff_fe00) >> cluster_bits;
    assert!(l2_cluster > 0, "the image has an L2 table");
    let block = be64(be64(48));
    file.write_all_at(&[0, 0], block + 2 * l2_cluster)
        .expect("clear the refcount");
    file.sync_all().expect("sync");
}

#[test]
fn a_resumed_deletion_repairs_the_base_before_merging_again() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let vm = vm();
    vm.snaps.create("web1", "s1").expect("s1");
    vm.write(2 << 20, 256 << 10, 0x22);
    vm.write(0, 4096, 0x23);
    let overlay = vm.disk();
    let base = vm.home.pool_dir().join("web1.qcow2");
    // What a kill mid-merge leaves: the record says `deleting` with its merge child ...
    let record = vm.home.paths.config.join("snapshots/web1/s1.toml");
    let mut fields: toml::Table = std::fs::read_to_string(&record)
        .expect("record")
        .parse()
        .expect("toml");
    fields.insert("state".into(), "deleting".into());
    let disk = fields["disks"].as_array_mut().expect("disks")[0]
        .as_table_mut()
        .expect("disk");
    disk.insert("merge_child".into(), s(&overlay).into());
    std::fs::write(&record, toml::to_string(&fields).expect("toml")).expect("write record");
    // ... and a base whose L2 table is referenced but not refcounted.
    lose_l2_refcount(&base);
    let found = vmux::storage::qcow2_repair::check_image(&base).expect("check");
    assert_eq!(found.errors, 1, "{:?}", found.problems);

    vm.snaps
        .delete("web1", "s1", &Progress::new())
        .expect("finish the deletion");

    assert!(vm.names().is_empty());
    assert_eq!(vm.home.vm_disks("web1")[0], "default/web1.qcow2");
    check_ok(&base);
    assert_eq!(
        (
            vm.byte(0),
            vm.byte(4096),
            vm.byte(2 << 20),
            vm.byte(3 << 20)
        ),
        (0x23, 0x11, 0x22, 0)
    );
    assert!(!overlay.exists());
}
