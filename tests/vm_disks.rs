//! Disks from pool volumes in a running VM, end to end through the `vmux` binary: a qcow2 and a
//! raw volume are created with `vol-create-as`, given to a VM with `create --disk`, and the
//! guest-kit `blk` program (a virtio-blk driver) writes, flushes and reads them back. QEMU's
//! tools then check what landed in the images.

mod common;

use common::binary::{guest, ok, vmux};
use common::prereq::{Need, QEMU_IMG, met};
use std::path::Path;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

/// Waits until `vmux list --all` reports `state` for `vm` (the `blk` guest powers off itself).
fn wait_for_state(home: &Path, vm: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = ok(home, &["list", "--all", "--json"]);
        let doc: serde_json::Value = serde_json::from_str(&list).expect("list json");
        let found = doc["vms"]
            .as_array()
            .and_then(|vms| vms.iter().find(|v| v["name"] == vm))
            .map(|v| v["state"].as_str().unwrap_or_default().to_string());
        if found.as_deref() == Some(state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{vm} never reached {state}: {list}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_guest_writes_a_qcow2_volume_that_qemu_img_then_checks_clean() {
    if !met(&[Need::Kvm, QEMU_IMG]) {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["vol-create-as", "default", "data.qcow2", "64M"]);
    ok(
        h,
        &[
            "vol-create-as",
            "default",
            "seed.raw",
            "1M",
            "--format",
            "raw",
        ],
    );
    let kernel = guest("blk");
    ok(
        h,
        &[
            "create",
            "b",
            "--kernel",
            kernel.to_str().expect("utf-8 path"),
            "--disk",
            "default/data.qcow2,serial=DATA-1",
            "--disk",
            "default/seed.raw,readonly",
        ],
    );
    ok(h, &["start", "b"]);
    wait_for_state(h, "b", "shut_off");

    let log = std::fs::read_to_string(h.join("state/vms/b/console.log")).expect("console log");
    assert!(log.contains("serial=DATA-1 pattern ok"), "{log}");
    assert!(log.contains("serial=vmux-vdb read-only ok"), "{log}");
    assert!(log.contains("blk: 2 disks, 0 failures"), "{log}");

    let image = h.join("data/images/data.qcow2");
    let check = Command::new("qemu-img")
        .arg("check")
        .arg(&image)
        .output()
        .expect("qemu-img check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let raw = h.join("out.raw");
    let convert = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&image)
        .arg(&raw)
        .status()
        .expect("qemu-img convert");
    assert!(convert.success());
    let bytes = std::fs::read(&raw).expect("read converted image");
    assert!(
        bytes[..512].iter().all(|&b| b == 0),
        "sector 0 was never written"
    );
    assert!(
        bytes[512..1024].iter().any(|&b| b != 0),
        "the guest's sector 1 is not in the image"
    );
    let seed = std::fs::read(h.join("data/images/seed.raw")).expect("read raw volume");
    assert!(
        seed.iter().all(|&b| b == 0),
        "the read-only disk was written"
    );
}

/// A guest that powers off without ever flushing still finds its acknowledged writes in a
/// qcow2 image that checks clean: vmd writes back the image's metadata (kept in memory by the
/// qcow2 driver) when the VM ends. Without that, the L2 table mapping the write was lost.
#[test]
fn writes_a_guest_never_flushed_are_in_the_qcow2_image_after_it_powers_off() {
    if !met(&[Need::Kvm, QEMU_IMG]) {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["vol-create-as", "default", "data.qcow2", "64M"]);
    let kernel = guest("blk");
    ok(
        h,
        &[
            "create",
            "b",
            "--kernel",
            kernel.to_str().expect("utf-8 path"),
            "--cmdline",
            "noflush",
            "--disk",
            "default/data.qcow2",
        ],
    );
    ok(h, &["start", "b"]);
    wait_for_state(h, "b", "shut_off");
    let log = std::fs::read_to_string(h.join("state/vms/b/console.log")).expect("console log");
    assert!(log.contains("blk: 1 disks, 0 failures"), "{log}");

    let image = h.join("data/images/data.qcow2");
    let check = Command::new("qemu-img")
        .arg("check")
        .arg(&image)
        .output()
        .expect("qemu-img check");
    assert!(
        check.status.success(),
        "qemu-img check after a power-off without flush: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let raw = h.join("out.raw");
    let convert = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&image)
        .arg(&raw)
        .status()
        .expect("qemu-img convert");
    assert!(convert.success());
    let bytes = std::fs::read(&raw).expect("read converted image");
    assert!(
        bytes[512..1024].iter().any(|&b| b != 0),
        "the guest's acknowledged write to sector 1 is not in the image"
    );
}

#[test]
fn starting_a_vm_whose_volume_is_missing_names_the_volume() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["vol-create-as", "default", "ghost.qcow2", "1M"]);
    ok(
        h,
        &["create", "m", "--demo", "--disk", "default/ghost.qcow2"],
    );
    // Gone behind vmux's back after the definition: start checks again.
    std::fs::remove_file(h.join("data/images/ghost.qcow2")).expect("remove the image");
    let out = vmux(h, &["start", "m"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ghost.qcow2"), "{err}");
    let list = ok(h, &["list", "--all"]);
    assert!(list.contains("shut off"), "{list}");
}

/// The console log's `flushed` lines so far.
fn flushed_lines(home: &Path, vm: &str) -> usize {
    std::fs::read_to_string(home.join(format!("state/vms/{vm}/console.log")))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("flushed "))
        .count()
}

#[test]
fn stats_report_a_running_guests_disk_io_per_disk() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["vol-create-as", "default", "busy.qcow2", "16M"]);
    ok(
        h,
        &[
            "vol-create-as",
            "default",
            "idle.raw",
            "1M",
            "--format",
            "raw",
        ],
    );
    let kernel = guest("blkstress");
    ok(
        h,
        &[
            "create",
            "w",
            "--kernel",
            kernel.to_str().expect("utf-8 path"),
            "--disk",
            "default/busy.qcow2",
            "--disk",
            "default/idle.raw,readonly",
        ],
    );
    ok(h, &["start", "w"]);

    // Rates need two samples of a disk that is being written (vmd samples once a second).
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let stats: serde_json::Value =
            serde_json::from_str(&ok(h, &["stats", "w", "--json"])).expect("stats json");
        if stats["disks"][0]["write_bytes_per_sec"].as_f64() > Some(0.0) {
            break stats;
        }
        assert!(
            Instant::now() < deadline,
            "no write rate within 30 s: {stats}"
        );
        thread::sleep(Duration::from_millis(200));
    };
    let text = ok(h, &["stats", "w"]);
    let flushed = flushed_lines(h, "w");
    ok(h, &["destroy", "w"]);

    let (vda, vdb) = (&stats["disks"][0], &stats["disks"][1]);
    assert_eq!(vda["target"], "vda", "{stats}");
    assert!(
        vda["read_ops"].as_u64() >= Some(1),
        "sector 0 is read first: {vda}"
    );
    assert!(vda["write_ops"].as_u64() >= Some(2), "{vda}");
    assert_eq!(
        vda["write_bytes"].as_u64(),
        vda["write_ops"].as_u64().map(|ops| ops * 512),
        "every write is one sector: {vda}"
    );
    assert!(vda["flushes"].as_u64() >= Some(2), "{vda}");
    assert!(
        vda["flushes"].as_u64() <= Some(flushed as u64 + 2),
        "no more flushes than the guest made (its log may lag by one): {vda}"
    );
    assert_eq!(vda["errors"], 0, "{vda}");
    assert!(vda["average_latency_ns"].as_u64() > Some(0), "{vda}");
    assert_eq!(vdb["target"], "vdb", "{stats}");
    assert_eq!(
        vdb["write_ops"], 0,
        "blkstress never touches a read-only disk: {vdb}"
    );
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("vda "))
        .unwrap_or_else(|| panic!("no vda row in:\n{text}"));
    assert!(row.contains("/s"), "{row}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("vdb ")),
        "{text}"
    );
}

#[test]
fn volume_changes_are_refused_while_a_running_vm_uses_the_volume() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["vol-create-as", "default", "live.qcow2", "16M"]);
    let kernel = guest("blkstress");
    ok(
        h,
        &[
            "create",
            "r",
            "--kernel",
            kernel.to_str().expect("utf-8 path"),
            "--disk",
            "default/live.qcow2",
        ],
    );
    ok(h, &["start", "r"]);

    let attempts: [&[&str]; 3] = [
        &["vol-delete", "default", "live.qcow2"],
        &["vol-wipe", "default", "live.qcow2"],
        &["vol-resize", "default", "live.qcow2", "32M"],
    ];
    let refusals: Vec<(Output, &[&str])> =
        attempts.iter().map(|args| (vmux(h, args), *args)).collect();
    let info = ok(h, &["vol-info", "default", "live.qcow2"]);
    ok(h, &["destroy", "r"]);

    for (out, args) in &refusals {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "vmux {args:?} must fail: {err}");
        assert!(
            err.contains("running VM 'r'") && err.contains("vmux shutdown r"),
            "vmux {args:?} must name the running VM and how to stop it: {err}"
        );
    }
    assert!(
        info.contains("16M") || info.contains("16 MiB"),
        "unchanged: {info}"
    );
    assert!(h.join("data/images/live.qcow2").exists());
}
