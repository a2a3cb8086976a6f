//! Pool and volume operations through `StorageManager`, as `vmux pool-*`/`vol-*` use them: the
//! happy paths checked with qemu-img, and the error path of every verb (the message must name
//! the volume, pool or VM and say what to do).

mod common;

use common::prereq::{QEMU_IMG, QEMU_IO, met};
use common::storage::*;
use std::path::Path;
use vmux::config::{DiskConfig, Store, parse_size};
use vmux::progress::Progress;
use vmux::storage::format::ImageFormat;
use vmux::storage::image::ImageLock;
use vmux::storage::{StorageError, VolumeSpec};

fn spec(size: &str) -> VolumeSpec {
    VolumeSpec {
        capacity: parse_size(size).expect("size"),
        format: None,
        preallocate: false,
    }
}

fn err_text<T: std::fmt::Debug>(result: Result<T, StorageError>) -> String {
    result.expect_err("must fail").to_string()
}

// ---- pools ----

#[test]
fn pool_life_cycle_define_start_autostart_destroy_undefine() {
    let home = Home::new();
    let dir = home.dir.path().join("fast");
    std::fs::create_dir(&dir).expect("mkdir");
    home.storage
        .define_pool("fast", &dir, false)
        .expect("define");
    home.storage.start_pool("fast").expect("start");
    home.storage
        .set_pool_autostart("fast", true)
        .expect("autostart");
    home.storage
        .vol_create("fast", "a.raw", spec("1M"))
        .expect("create in fast");
    let names: Vec<_> = home
        .storage
        .list_pools()
        .expect("list")
        .into_iter()
        .map(|p| p.expect("valid").name)
        .collect();
    assert_eq!(names, ["default", "fast"]);
    home.storage.stop_pool("fast").expect("destroy");
    home.storage.undefine_pool("fast").expect("undefine");
    assert!(dir.join("a.raw").exists(), "undefine keeps the volumes");
}

#[test]
fn a_broken_pool_file_is_reported_and_the_others_still_list() {
    let home = Home::new();
    home.pool_dir();
    let file = home.paths.config.join("pools/bad.toml");
    std::fs::write(&file, "name = \"bad\"\npath = \"relative\"\n").expect("write");
    let pools = home.storage.list_pools().expect("list");
    let errors: Vec<String> = pools
        .iter()
        .filter_map(|p| p.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("bad.toml") && errors[0].contains("absolute"),
        "{}",
        errors[0]
    );
    assert!(
        pools
            .iter()
            .any(|p| p.as_ref().is_ok_and(|p| p.name == "default"))
    );
}

#[test]
fn pool_errors_name_the_pool_and_the_fix() {
    let home = Home::new();
    let file = home.dir.path().join("file");
    std::fs::write(&file, b"x").expect("write");
    home.storage.define_pool("f", &file, false).expect("define");
    let text = err_text(home.storage.start_pool("f"));
    assert!(
        text.contains("'f'") && text.contains("writable directory"),
        "{text}"
    );
    assert!(err_text(home.storage.stop_pool("ghost")).contains("pool-list"));
    assert!(err_text(home.storage.set_pool_autostart("ghost", true)).contains("'ghost'"));
    assert!(err_text(home.storage.pool_info("ghost")).contains("'ghost'"));
    assert!(err_text(home.storage.define_pool("f", &file, false)).contains("already defined"));
    let text = err_text(home.storage.vol_list("f"));
    assert!(text.contains("vmux pool-start f"), "{text}");
}

// ---- create, info, list ----

#[test]
fn created_volumes_have_the_asked_format_size_and_pass_check() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let home = Home::new();
    let q = home
        .storage
        .vol_create("default", "web1.qcow2", spec("20G"))
        .expect("qcow2");
    assert_eq!((q.format, q.capacity), (ImageFormat::Qcow2, 20 << 30));
    check_ok(&q.path);
    let r = home
        .storage
        .vol_create(
            "default",
            "data.raw",
            VolumeSpec {
                preallocate: true,
                ..spec("4M")
            },
        )
        .expect("raw");
    assert_eq!((r.format, r.capacity), (ImageFormat::Raw, 4 << 20));
    assert!(r.allocation >= 4 << 20);
    let odd = home
        .storage
        .vol_create("default", "odd", spec("1000"))
        .expect("odd size");
    assert_eq!((odd.format, odd.capacity), (ImageFormat::Qcow2, 1024));
    let listed: Vec<String> = home
        .storage
        .vol_list("default")
        .expect("list")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(listed, ["data.raw", "odd", "web1.qcow2"]);
}

#[test]
fn vol_create_errors() {
    let home = Home::new();
    home.storage
        .vol_create("default", "a.qcow2", spec("1M"))
        .expect("create");
    let text = err_text(home.storage.vol_create("default", "a.qcow2", spec("1M")));
    assert!(
        text.contains("already exists") && text.contains("vol-delete"),
        "{text}"
    );
    assert!(
        err_text(home.storage.vol_create("default", "../x", spec("1M")))
            .contains("not a valid volume name")
    );
    assert!(err_text(home.storage.vol_create("default", "z.raw", spec("0"))).contains("above 0"));
    let text = err_text(home.storage.vol_create(
        "default",
        "b.raw",
        VolumeSpec {
            format: Some(ImageFormat::Qcow2),
            ..spec("1M")
        },
    ));
    assert!(text.contains("b.qcow2"), "{text}");
    let text = err_text(home.storage.vol_create(
        "default",
        "huge.raw",
        VolumeSpec {
            preallocate: true,
            ..spec("1000000T")
        },
    ));
    assert!(text.contains("not enough free space"), "{text}");
    assert!(!home.pool_dir().join("huge.raw").exists());
    assert!(err_text(home.storage.vol_create("ghost", "a.raw", spec("1M"))).contains("'ghost'"));
    let leftovers: Vec<_> = std::fs::read_dir(home.pool_dir())
        .expect("list")
        .flatten()
        .map(|e| e.file_name())
        .filter(|name| name != vmux::storage::records::RECORDS_FILE)
        .collect();
    assert_eq!(leftovers.len(), 1, "only a.qcow2 remains: {leftovers:?}");
}

#[test]
fn vol_info_errors_name_the_file() {
    let home = Home::new();
    let dir = home.pool_dir();
    std::fs::write(dir.join("fake.qcow2"), vec![0u8; 4096]).expect("write");
    let text = err_text(home.storage.vol_info("default", "fake.qcow2"));
    assert!(
        text.contains("fake.qcow2") && text.contains("not a qcow2 image"),
        "{text}"
    );
    let text = err_text(home.storage.vol_info("default", "ghost.raw"));
    assert!(
        text.contains("ghost.raw") && text.contains("vol-list default"),
        "{text}"
    );
    // vol-list shows the bad file with its error instead of failing.
    let list = home.storage.vol_list("default").expect("list");
    assert!(list[0].1.is_err());
}

#[test]
fn vol_info_reports_backing_and_users() {
    let home = Home::new();
    home.storage
        .vol_create("default", "base.qcow2", spec("8M"))
        .expect("create");
    home.storage
        .vol_clone("default", "base.qcow2", "top.qcow2", true, &Progress::new())
        .expect("linked clone");
    home.define_vm("web1", &["default/top.qcow2"]);
    let base = home
        .storage
        .vol_info("default", "base.qcow2")
        .expect("info");
    assert_eq!(base.used_by, ["web1"]);
    assert_eq!(base.backing_of.len(), 1);
    let top = home.storage.vol_info("default", "top.qcow2").expect("info");
    let backing = top.backing.expect("backing");
    assert_eq!(backing.name, "base.qcow2");
    assert_eq!(backing.format, Some(ImageFormat::Qcow2));
    let json = serde_json::to_value(home.storage.vol_info("default", "top.qcow2").expect("info"))
        .expect("json");
    assert_eq!(json["used_by"][0], "web1");
    assert_eq!(json["format"], "qcow2");
}

// ---- resize ----

#[test]
fn resize_grows_and_refuses_to_cut_data() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let home = Home::new();
    for name in ["a.qcow2", "a.raw"] {
        let info = home
            .storage
            .vol_create("default", name, spec("8M"))
            .expect("create");
        fill(&info.path, 5 << 20, 4096, 0x99);
        let grown = home
            .storage
            .vol_resize("default", name, 16 << 20, false)
            .expect("grow");
        assert_eq!(grown.capacity, 16 << 20);
        let text = err_text(home.storage.vol_resize("default", name, 4 << 20, false));
        assert!(text.contains("--shrink"), "{text}");
        let text = err_text(home.storage.vol_resize("default", name, 4 << 20, true));
        assert!(
            text.contains("holds data up to") && text.contains(name),
            "{text}"
        );
        let shrunk = home
            .storage
            .vol_resize("default", name, 6 << 20, true)
            .expect("shrink above the data");
        assert_eq!(shrunk.capacity, 6 << 20);
        let bytes = read_all(open_ro(&info.path).as_ref());
        assert!(bytes[5 << 20..(5 << 20) + 4096].iter().all(|b| *b == 0x99));
        if name.ends_with("qcow2") {
            check_ok(&info.path);
        }
    }
}

#[test]
fn shrinking_an_empty_terabyte_qcow2_keeps_the_file_small_and_clean() {
    let home = Home::new();
    let info = home
        .storage
        .vol_create("default", "big.qcow2", spec("1T"))
        .expect("create");
    let before = std::fs::metadata(&info.path).expect("stat").len();

    let shrunk = home
        .storage
        .vol_resize("default", "big.qcow2", 2 << 30, true)
        .expect("shrink");

    assert_eq!(shrunk.capacity, 2 << 30);
    let after = std::fs::metadata(&info.path).expect("stat").len();
    assert!(
        after <= before,
        "the file grew from {before} to {after} bytes"
    );
    check_ok(&info.path);
    let qemu = qemu_img(&["info", "--output=json", &s(&info.path)]);
    assert!(qemu.contains("\"virtual-size\": 2147483648"), "{qemu}");
}

#[test]
fn resize_of_a_running_vms_disk_or_a_backing_file_is_refused() {
    let home = Home::new();
    home.storage
        .vol_create("default", "a.qcow2", spec("1M"))
        .expect("create");
    home.storage
        .vol_create("default", "b.qcow2", spec("1M"))
        .expect("create");
    home.storage
        .vol_clone("default", "b.qcow2", "c.qcow2", true, &Progress::new())
        .expect("linked");
    home.define_vm("web1", &["default/a.qcow2"]);
    home.fake_running("web1");
    let text = err_text(
        home.storage
            .vol_resize("default", "a.qcow2", 2 << 20, false),
    );
    assert!(
        text.contains("running VM 'web1'") && text.contains("vmux shutdown web1"),
        "{text}"
    );
    let text = err_text(
        home.storage
            .vol_resize("default", "b.qcow2", 2 << 20, false),
    );
    assert!(
        text.contains("backing file of") && text.contains("c.qcow2"),
        "{text}"
    );
    home.fake_stopped("web1");
    home.storage
        .vol_resize("default", "a.qcow2", 2 << 20, false)
        .expect("a stopped VM's disk can grow");
}

// ---- clone, convert, upload, download ----

#[test]
fn full_and_linked_clones_read_like_the_source() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let home = Home::new();
    let src = home
        .storage
        .vol_create("default", "web1.qcow2", spec("16M"))
        .expect("create");
    fill(&src.path, 3 << 20, 123_456, 0x31);
    let full = home
        .storage
        .vol_clone(
            "default",
            "web1.qcow2",
            "web2.qcow2",
            false,
            &Progress::new(),
        )
        .expect("full");
    assert!(full.backing.is_none());
    check_ok(&full.path);
    same_content(&src.path, &full.path);
    let linked = home
        .storage
        .vol_clone(
            "default",
            "web1.qcow2",
            "web3.qcow2",
            true,
            &Progress::new(),
        )
        .expect("linked");
    let src_now = home
        .storage
        .vol_info("default", "web1.qcow2")
        .expect("info");
    assert!(
        linked.allocation < src_now.allocation,
        "a linked clone holds no data"
    );
    check_ok(&linked.path);
    same_content(&src.path, &linked.path);
    let raw = home
        .storage
        .vol_clone("default", "web1.qcow2", "web4.raw", false, &Progress::new())
        .expect("clone to raw by name");
    assert_eq!(raw.format, ImageFormat::Raw);
    same_content(&src.path, &raw.path);
}

#[test]
fn vol_clone_errors() {
    let home = Home::new();
    home.storage
        .vol_create("default", "a.qcow2", spec("1M"))
        .expect("create");
    let text =
        err_text(
            home.storage
                .vol_clone("default", "a.qcow2", "b.raw", true, &Progress::new()),
        );
    assert!(
        text.contains("linked clone") && text.contains("b.qcow2"),
        "{text}"
    );
    let text =
        err_text(
            home.storage
                .vol_clone("default", "a.qcow2", "a.qcow2", false, &Progress::new()),
        );
    assert!(text.contains("already exists"), "{text}");
    let text = err_text(home.storage.vol_clone(
        "default",
        "ghost.qcow2",
        "b.qcow2",
        false,
        &Progress::new(),
    ));
    assert!(text.contains("ghost.qcow2"), "{text}");
    home.define_vm("web1", &["default/a.qcow2"]);
    let text =
        err_text(
            home.storage
                .vol_clone("default", "a.qcow2", "b.qcow2", true, &Progress::new()),
        );
    assert!(
        text.contains("writable disk of VM 'web1'") && text.contains("full clone"),
        "{text}"
    );
}

#[test]
fn convert_both_ways_compares_equal() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let home = Home::new();
    let src = home
        .storage
        .vol_create("default", "a.raw", spec("16M"))
        .expect("create");
    fill(&src.path, 1 << 20, 3 << 20, 0x17);
    let q = home
        .storage
        .vol_convert("default", "a.raw", "a.qcow2", None, &Progress::new())
        .expect("to qcow2");
    assert_eq!(q.format, ImageFormat::Qcow2);
    check_ok(&q.path);
    same_content(&src.path, &q.path);
    let back = home
        .storage
        .vol_convert(
            "default",
            "a.qcow2",
            "b",
            Some(ImageFormat::Raw),
            &Progress::new(),
        )
        .expect("to raw");
    assert_eq!(back.format, ImageFormat::Raw);
    same_content(&src.path, &back.path);
    assert!(back.allocation < 8 << 20, "sparse: {}", back.allocation);
}

#[test]
fn vol_convert_errors() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let home = Home::new();
    home.storage
        .vol_create("default", "a.raw", spec("1M"))
        .expect("create");
    let text = err_text(home.storage.vol_convert(
        "default",
        "a.raw",
        "a.qcow2",
        Some(ImageFormat::Raw),
        &Progress::new(),
    ));
    assert!(
        text.contains("a.raw") && text.contains("--format"),
        "{text}"
    );
    let text =
        err_text(
            home.storage
                .vol_convert("default", "a.raw", "a.raw", None, &Progress::new()),
        );
    assert!(text.contains("already exists"), "{text}");
    let dir = home.pool_dir();
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-u",
        "-b",
        "gone.raw",
        "-F",
        "raw",
        &s(&dir.join("o.qcow2")),
        "1M",
    ]);
    let text =
        err_text(
            home.storage
                .vol_convert("default", "o.qcow2", "o.raw", None, &Progress::new()),
        );
    assert!(
        text.contains("gone.raw") && text.contains("does not exist"),
        "{text}"
    );
    assert!(!dir.join("o.raw").exists());
}

#[test]
fn upload_replaces_content_and_download_writes_it_out() {
    if !met(&[QEMU_IMG, QEMU_IO]) {
        return;
    }
    let home = Home::new();
    let vol = home
        .storage
        .vol_create("default", "web1.qcow2", spec("4M"))
        .expect("create");
    let src = home.dir.path().join("disk.img");
    qemu_img(&["create", "-f", "qcow2", &s(&src), "8M"]);
    qemu_io("qcow2", &src, &["write -P 0x5c 2M 1M"]);
    // A qcow2 image named .img: its name says raw, its content qcow2; vmux does not guess.
    let text =
        err_text(
            home.storage
                .vol_upload("default", "web1.qcow2", &src, None, &Progress::new()),
        );
    assert!(
        text.contains("disk.img") && text.contains("qcow2 header") && text.contains("--format"),
        "{text}"
    );
    let up = home
        .storage
        .vol_upload(
            "default",
            "web1.qcow2",
            &src,
            Some(ImageFormat::Qcow2),
            &Progress::new(),
        )
        .expect("upload a qcow2 named .img with --format qcow2");
    assert_eq!((up.format, up.capacity), (ImageFormat::Qcow2, 8 << 20));
    check_ok(&vol.path);
    same_content(&src, &vol.path);
    let out = home.dir.path().join("out.img");
    let down = home
        .storage
        .vol_download("default", "web1.qcow2", &out, None, false, &Progress::new())
        .expect("download");
    assert_eq!(down.format, ImageFormat::Raw, "the .img name asks for raw");
    same_content(&vol.path, &out);
    let text = err_text(home.storage.vol_download(
        "default",
        "web1.qcow2",
        &out,
        None,
        false,
        &Progress::new(),
    ));
    assert!(text.contains("--force"), "{text}");
    home.storage
        .vol_download("default", "web1.qcow2", &out, None, true, &Progress::new())
        .expect("forced");
    let text = err_text(home.storage.vol_download(
        "default",
        "web1.qcow2",
        home.dir.path(),
        None,
        false,
        &Progress::new(),
    ));
    assert!(text.contains("is a directory"), "{text}");
}

#[test]
fn vol_upload_errors() {
    let home = Home::new();
    home.storage
        .vol_create("default", "a.qcow2", spec("1M"))
        .expect("create");
    let missing = home.dir.path().join("missing.img");
    let text =
        err_text(
            home.storage
                .vol_upload("default", "a.qcow2", &missing, None, &Progress::new()),
        );
    assert!(text.contains("missing.img"), "{text}");
    let fake = home.dir.path().join("fake.qcow2");
    std::fs::write(&fake, vec![1u8; 4096]).expect("write");
    let text =
        err_text(
            home.storage
                .vol_upload("default", "a.qcow2", &fake, None, &Progress::new()),
        );
    assert!(
        text.contains("fake.qcow2") && text.contains("not a qcow2 image"),
        "{text}"
    );
    home.define_vm("web1", &["default/a.qcow2"]);
    home.fake_running("web1");
    let raw = home.dir.path().join("ok.raw");
    std::fs::write(&raw, vec![1u8; 4096]).expect("write");
    let text =
        err_text(
            home.storage
                .vol_upload("default", "a.qcow2", &raw, None, &Progress::new()),
        );
    assert!(text.contains("running VM 'web1'"), "{text}");
}

// ---- wipe, delete ----

#[test]
fn wipe_zeroes_content_and_keeps_format_and_size() {
    if !met(&[QEMU_IMG]) {
        return;
    }
    let home = Home::new();
    for name in ["w.qcow2", "w.raw"] {
        let vol = home
            .storage
            .vol_create("default", name, spec("8M"))
            .expect("create");
        fill(&vol.path, 0, 1 << 20, 0xee);
        let wiped = home
            .storage
            .vol_wipe("default", name, &Progress::new())
            .expect("wipe");
        assert_eq!((wiped.format, wiped.capacity), (vol.format, vol.capacity));
        assert!(
            read_all(open_ro(&vol.path).as_ref())
                .iter()
                .all(|b| *b == 0)
        );
        if vol.format == ImageFormat::Qcow2 {
            check_ok(&vol.path);
            assert!(
                wiped.allocation < 1 << 20,
                "space given back: {}",
                wiped.allocation
            );
        }
        let on_disk = std::fs::read(&vol.path).expect("read file");
        assert!(
            !on_disk.windows(16).any(|w| w == [0xee; 16]),
            "{name}: old data left on disk"
        );
    }
}

#[test]
fn vol_wipe_of_a_backing_file_is_refused() {
    let home = Home::new();
    home.storage
        .vol_create("default", "b.qcow2", spec("1M"))
        .expect("create");
    home.storage
        .vol_clone("default", "b.qcow2", "c.qcow2", true, &Progress::new())
        .expect("linked");
    let text = err_text(
        home.storage
            .vol_wipe("default", "b.qcow2", &Progress::new()),
    );
    assert!(text.contains("backing file of"), "{text}");
}

#[test]
fn delete_is_refused_while_used_and_works_after() {
    let home = Home::new();
    home.storage
        .vol_create("default", "a.qcow2", spec("1M"))
        .expect("create");
    home.define_vm("web1", &["default/a.qcow2"]);
    let text = err_text(home.storage.vol_delete("default", "a.qcow2"));
    assert!(text.contains("used by VM web1"), "{text}");
    Store::new(home.paths.clone())
        .remove("web1")
        .expect("undefine");
    // Another process holding the image (a VM in another vmux) also blocks deletion.
    let path = home.pool_dir().join("a.qcow2");
    let lock = ImageLock::acquire(&path, false).expect("lock");
    let text = err_text(home.storage.vol_delete("default", "a.qcow2"));
    assert!(text.contains("in use by another process"), "{text}");
    drop(lock);
    home.storage
        .vol_delete("default", "a.qcow2")
        .expect("delete");
    assert!(!path.exists());
    let text = err_text(home.storage.vol_delete("default", "a.qcow2"));
    assert!(text.contains("no volume 'a.qcow2'"), "{text}");
}

#[test]
fn resolve_vm_disks_checks_every_disk() {
    let home = Home::new();
    home.storage
        .vol_create("default", "a.qcow2", spec("1M"))
        .expect("create");
    home.storage
        .vol_create("default", "b.raw", spec("1M"))
        .expect("create");
    let mut vm = vmux::config::VmConfig::new("web1", vmux::config::BootConfig::Demo);
    vm.disks = vec![
        "default/a.qcow2".parse::<DiskConfig>().expect("disk"),
        "default/b.raw,readonly,serial=S1".parse().expect("disk"),
    ];
    let disks = home.storage.resolve_vm_disks(&vm).expect("resolve");
    assert_eq!(disks[1].target, "vdb");
    assert!(disks[1].readonly);
    assert_eq!(disks[0].format, ImageFormat::Qcow2);
    home.storage
        .vol_clone("default", "a.qcow2", "c.qcow2", false, &Progress::new())
        .expect("clone");
    home.storage
        .vol_clone("default", "c.qcow2", "d.qcow2", true, &Progress::new())
        .expect("linked");
    vm.disks[0] = "default/c.qcow2".parse().expect("disk");
    let text = err_text(home.storage.resolve_vm_disks(&vm));
    assert!(
        text.contains("backing file of") && text.contains("d.qcow2"),
        "{text}"
    );
    vm.disks[0] = "default/missing.qcow2".parse().expect("disk");
    assert!(err_text(home.storage.resolve_vm_disks(&vm)).contains("missing.qcow2"));
    assert!(Path::new(&home.pool_dir()).join("a.qcow2").exists());
}
