//! Interop with QEMU's tools, both ways: images vmux creates and writes pass `qemu-img check`
//! and read back in qemu-io / `qemu-img compare`; images `qemu-img` makes (compressed clusters,
//! backing chains, internal snapshots, preallocation modes, 512-byte and 2 MiB clusters) read
//! correctly through `BlockImage`, and writes to them keep them valid; features vmux does not
//! handle are refused by name. Needs qemu-utils (scripts/test.sh installs it).

mod common;

use common::prereq::{QEMU_IMG, QEMU_IO, met};
use common::storage::*;
use std::path::Path;
use vmux::storage::create::{NewImage, create_image};
use vmux::storage::format::ImageFormat;
use vmux::storage::image::open_image;

/// A raw file with a recognisable pattern: a different byte in every 64 KiB, holes between.
fn patterned_raw(dir: &Path, name: &str, len: u64) -> std::path::PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(len).expect("size");
    use std::os::unix::fs::FileExt;
    for (i, at) in (0..len).step_by(3 << 16).enumerate() {
        file.write_all_at(&vec![(i % 251) as u8 + 1; 65536], at)
            .expect("write");
    }
    path
}

#[test]
fn a_qcow2_vmux_writes_passes_check_and_reads_in_qemu_io() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.qcow2");
    create_image(&path, &NewImage::new(ImageFormat::Qcow2, 64 << 20)).expect("create");
    fill(&path, 0, 65536, 0xab);
    fill(&path, 10 << 20, 4096, 0xcd);
    fill(&path, (64 << 20) - 512, 512, 0xef);
    check_ok(&path);
    qemu_io(
        "qcow2",
        &path,
        &[
            "read -P 0xab 0 64k",
            "read -P 0xcd 10M 4k",
            "read -P 0xef 67108352 512",
            "read -P 0 64k 1M",
        ],
    );
}

#[test]
fn a_preallocated_qcow2_from_vmux_passes_check() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.qcow2");
    let spec = NewImage {
        preallocate: true,
        ..NewImage::new(ImageFormat::Qcow2, 32 << 20)
    };
    create_image(&path, &spec).expect("create");
    check_ok(&path);
    qemu_io("qcow2", &path, &["read -P 0 0 32M"]);
}

#[test]
fn a_vmux_overlay_on_a_qemu_base_reads_through_and_passes_check() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = patterned_raw(dir.path(), "src.raw", 16 << 20);
    let base = dir.path().join("base.qcow2");
    qemu_img(&["convert", "-O", "qcow2", &s(&raw), &s(&base)]);
    let top = dir.path().join("top.qcow2");
    let spec = NewImage {
        backing: Some(("base.qcow2".into(), ImageFormat::Qcow2)),
        ..NewImage::new(ImageFormat::Qcow2, 16 << 20)
    };
    create_image(&top, &spec).expect("create overlay");
    fill(&top, 1 << 20, 100_000, 0x77);
    check_ok(&top);
    let info = qemu_img(&["info", &s(&top)]);
    assert!(info.contains("backing file: base.qcow2"), "{info}");
    assert!(read_all(open_ro(&top).as_ref()) == qemu_bytes(&top, dir.path()));
}

#[test]
fn compressed_clusters_from_qemu_read_correctly() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = patterned_raw(dir.path(), "src.raw", 8 << 20);
    let comp = dir.path().join("comp.qcow2");
    qemu_img(&["convert", "-c", "-O", "qcow2", &s(&raw), &s(&comp)]);
    let image = open_ro(&comp);
    assert!(read_all(image.as_ref()) == std::fs::read(&raw).expect("read raw"));
}

#[test]
fn writing_over_compressed_clusters_keeps_the_image_valid() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = patterned_raw(dir.path(), "src.raw", 8 << 20);
    let comp = dir.path().join("comp.qcow2");
    qemu_img(&["convert", "-c", "-O", "qcow2", &s(&raw), &s(&comp)]);
    fill(&comp, 4096, 8192, 0x42);
    check_ok(&comp);
    qemu_io("qcow2", &comp, &["read -P 0x42 4k 8k", "read -P 1 0 4k"]);
}

#[test]
fn a_qemu_backing_chain_reads_like_qemu_reads_it() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("base.raw");
    qemu_img(&["create", "-f", "raw", &s(&base), "8M"]);
    qemu_io("raw", &base, &["write -P 0x11 0 8M"]);
    let mid = dir.path().join("mid.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "base.raw",
        "-F",
        "raw",
        &s(&mid),
    ]);
    qemu_io("qcow2", &mid, &["write -P 0x22 1M 1M", "write -z 3M 64k"]);
    let top = dir.path().join("top.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "mid.qcow2",
        "-F",
        "qcow2",
        &s(&top),
    ]);
    qemu_io("qcow2", &top, &["write -P 0x33 1536k 64k"]);
    let image = open_ro(&top);
    let bytes = read_all(image.as_ref());
    assert!(bytes == qemu_bytes(&top, dir.path()));
    assert_eq!(bytes[(3 << 20) + 5], 0, "the zero cluster hides the base");
}

#[test]
fn internal_snapshots_survive_writes_through_vmux() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("snap.qcow2");
    qemu_img(&["create", "-f", "qcow2", &s(&img), "8M"]);
    qemu_io("qcow2", &img, &["write -P 0x01 0 8M"]);
    qemu_img(&["snapshot", "-c", "before", &s(&img)]);
    qemu_io("qcow2", &img, &["write -P 0x02 0 1M"]);
    // The active state reads right, and writing it copies the snapshot's shared clusters.
    let image = open_ro(&img);
    let bytes = read_all(image.as_ref());
    assert!(bytes[..1 << 20].iter().all(|b| *b == 2) && bytes[1 << 20..].iter().all(|b| *b == 1));
    drop(image);
    fill(&img, 2 << 20, 65536, 0x03);
    check_ok(&img);
    let snap = dir.path().join("before.raw");
    qemu_img(&["convert", "-l", "before", "-O", "raw", &s(&img), &s(&snap)]);
    assert!(std::fs::read(&snap).expect("read").iter().all(|b| *b == 1));
    qemu_io("qcow2", &img, &["read -P 0x03 2M 64k", "read -P 0x02 0 1M"]);
}

#[test]
fn qemu_preallocation_modes_read_and_write() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    for mode in ["metadata", "falloc", "full"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = dir.path().join(format!("{mode}.qcow2"));
        qemu_img(&[
            "create",
            "-f",
            "qcow2",
            "-o",
            &format!("preallocation={mode}"),
            &s(&img),
            "4M",
        ]);
        qemu_io("qcow2", &img, &["write -P 0x5a 64k 64k"]);
        let bytes = read_all(open_ro(&img).as_ref());
        assert!(bytes[65536..131072].iter().all(|b| *b == 0x5a), "{mode}");
        assert!(bytes[..65536].iter().all(|b| *b == 0), "{mode}");
        fill(&img, 3 << 20, 4096, 0x6b);
        check_ok(&img);
        qemu_io("qcow2", &img, &["read -P 0x6b 3M 4k"]);
    }
}

#[test]
fn tiny_and_huge_clusters_read_and_write() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    for cluster in ["512", "2M"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = dir.path().join("c.qcow2");
        qemu_img(&[
            "create",
            "-f",
            "qcow2",
            "-o",
            &format!("cluster_size={cluster}"),
            &s(&img),
            "8M",
        ]);
        qemu_io(
            "qcow2",
            &img,
            &["write -P 0x44 1000 3000", "write -P 0x55 5M 1M"],
        );
        let image = open_image(&img, &options(&img, false)).expect("open");
        let bytes = read_all(image.as_ref());
        assert!(bytes[1000..4000].iter().all(|b| *b == 0x44), "{cluster}");
        image.write_at(7 << 20, &[0x66; 70_000]).expect("write");
        image.flush().expect("flush");
        drop(image);
        check_ok(&img);
        qemu_io(
            "qcow2",
            &img,
            &["read -P 0x66 7M 70000", "read -P 0x55 5M 1M"],
        );
    }
}

#[test]
fn unsupported_features_are_refused_by_name() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [(&str, &[&str], &str); 3] = [
        ("zstd.qcow2", &["-o", "compression_type=zstd"], "zstd"),
        ("ext.qcow2", &["-o", "extended_l2=on"], "extended L2"),
        (
            "df.qcow2",
            &["-o", "data_file=df.raw"],
            "external data file",
        ),
    ];
    for (name, qemu_options, feature) in cases {
        let img = dir.path().join(name);
        let mut args = vec!["create", "-f", "qcow2"];
        args.extend_from_slice(qemu_options);
        let p = s(&img);
        args.extend_from_slice(&[p.as_str(), "1M"]);
        // data_file= is resolved relative to the current directory by qemu-img.
        let out = std::process::Command::new("qemu-img")
            .args(&args)
            .current_dir(dir.path())
            .output()
            .expect("qemu-img runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = open_image(&img, &options(&img, true))
            .err()
            .unwrap_or_else(|| panic!("{name} must be refused"));
        let text = err.to_string();
        assert!(
            text.contains(feature) && text.contains(name),
            "{name}: {text}"
        );
    }
}

#[test]
fn an_encrypted_image_is_refused_by_name() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    // LUKS creation times its key derivation and fails under a loaded CPU, so the header's
    // crypt_method field (offset 32) is set to LUKS (2) on a plain image instead.
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("enc.qcow2");
    qemu_img(&["create", "-f", "qcow2", &s(&img), "1M"]);
    let mut bytes = std::fs::read(&img).expect("read");
    bytes[32..36].copy_from_slice(&2u32.to_be_bytes());
    std::fs::write(&img, &bytes).expect("write");
    let err = open_image(&img, &options(&img, true))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("encryption"), "{err}");
}

#[test]
fn a_missing_and_a_looping_backing_file_are_named() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-u",
        "-b",
        "gone.qcow2",
        "-F",
        "qcow2",
        &s(&a),
        "1M",
    ]);
    let err = open_image(&a, &options(&a, true))
        .err()
        .expect("missing backing");
    assert!(
        err.to_string().contains("gone.qcow2") && err.to_string().contains("does not exist"),
        "{err}"
    );

    let b = dir.path().join("b.qcow2");
    let c = dir.path().join("c.qcow2");
    qemu_img(&["create", "-f", "qcow2", &s(&b), "1M"]);
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "b.qcow2",
        "-F",
        "qcow2",
        &s(&c),
    ]);
    qemu_img(&["rebase", "-u", "-b", "c.qcow2", "-F", "qcow2", &s(&b)]);
    let err = open_image(&c, &options(&c, true)).err().expect("loop");
    assert!(err.to_string().contains("loops"), "{err}");
}

#[test]
fn a_corrupt_header_is_refused_with_the_file_name() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("bad.qcow2");
    qemu_img(&["create", "-f", "qcow2", &s(&img), "1M"]);
    let mut bytes = std::fs::read(&img).expect("read");
    bytes[20..24].copy_from_slice(&40u32.to_be_bytes()); // cluster_bits = 40
    std::fs::write(&img, &bytes).expect("write");
    let err = open_image(&img, &options(&img, true))
        .err()
        .expect("corrupt");
    assert!(
        err.to_string().contains("bad.qcow2") && err.to_string().contains("qemu-img check"),
        "{err}"
    );
}

#[test]
fn a_raw_image_written_by_vmux_compares_equal_to_its_qcow2_copy() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = patterned_raw(dir.path(), "src.raw", 16 << 20);
    let qcow = dir.path().join("copy.qcow2");
    create_image(&qcow, &NewImage::new(ImageFormat::Qcow2, 16 << 20)).expect("create");
    {
        let src = open_ro(&raw);
        let dst = open_image(&qcow, &options(&qcow, false)).expect("open");
        vmux::storage::copy::copy_image(
            src.as_ref(),
            dst.as_ref(),
            &vmux::progress::Progress::new(),
        )
        .expect("copy");
    }
    check_ok(&qcow);
    same_content(&raw, &qcow);
}
