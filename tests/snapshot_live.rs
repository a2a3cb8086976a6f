//! A snapshot of a running VM through the `vmux` binary: the guest-kit `blkstress` program keeps
//! writing and flushing its disk while `snapshot-create` puts a qcow2 overlay on it; vmd pauses
//! the vCPUs, switches the disk to the overlay and resumes, and the guest's later writes land
//! in the overlay while the snapshot's image stays as it was.

mod common;

use common::binary::{guest, ok};
use common::prereq::{Need, QEMU_IMG, met};
use std::path::Path;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

/// How many `flushed` lines the guest has printed so far.
fn flushed_lines(home: &Path) -> usize {
    std::fs::read_to_string(home.join("state/vms/s/console.log"))
        .unwrap_or_default()
        .matches("flushed ")
        .count()
}

fn wait_for_flushes(home: &Path, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while flushed_lines(home) < at_least {
        assert!(
            Instant::now() < deadline,
            "the guest stopped writing at {}",
            flushed_lines(home)
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn qemu_img(args: &[&str], image: &Path) -> Output {
    Command::new("qemu-img")
        .args(args)
        .arg(image)
        .output()
        .expect("run qemu-img")
}

#[test]
fn a_running_vm_switches_to_the_overlay_and_keeps_writing() {
    if !met(&[Need::Kvm, QEMU_IMG]) {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["vol-create-as", "default", "data.qcow2", "16M"]);
    let kernel = guest("blkstress");
    let kernel = kernel.to_str().expect("utf-8 path");
    ok(
        h,
        &[
            "create",
            "s",
            "--kernel",
            kernel,
            "--cmdline",
            "sectors=64",
            "--disk",
            "default/data.qcow2",
        ],
    );
    ok(h, &["start", "s"]);
    wait_for_flushes(h, 5);

    ok(h, &["snapshot-create", "s", "s1"]);
    let at_switch = flushed_lines(h);
    wait_for_flushes(h, at_switch + 20);
    ok(h, &["destroy", "s"]);

    let images = h.join("data/images");
    let base = images.join("data.qcow2");
    let overlay = images.join("data.s1.qcow2");
    let definition = ok(h, &["dumpconfig", "s"]);
    assert!(definition.contains("data.s1.qcow2"), "{definition}");
    assert!(ok(h, &["snapshot-list", "s"]).contains("s1"));
    for image in [&base, &overlay] {
        let check = qemu_img(&["check"], image);
        assert!(
            matches!(check.status.code(), Some(0 | 3)),
            "{}: {}",
            image.display(),
            String::from_utf8_lossy(&check.stdout)
        );
    }
    let chain = String::from_utf8_lossy(&qemu_img(&["info", "--backing-chain"], &overlay).stdout)
        .into_owned();
    assert!(chain.contains("backing file: data.qcow2"), "{chain}");
    // The guest's writes after the switch went to the overlay: it holds data clusters now.
    let map =
        String::from_utf8_lossy(&qemu_img(&["map", "--output=json"], &overlay).stdout).into_owned();
    assert!(map.contains("\"depth\": 0, \"present\": true"), "{map}");
}
