//! The storage verbs through the `vmux` binary, with `VMUX_HOME` in a temporary directory: what
//! a user types and reads, including `--json` output and the exit status and message of errors.

use std::path::Path;
use std::process::{Command, Output};

fn vmux(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmux"))
        .args(args)
        .env("VMUX_HOME", home)
        .output()
        .expect("run vmux")
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = vmux(home, args);
    assert!(
        out.status.success(),
        "vmux {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(home: &Path, args: &[&str]) -> String {
    let out = vmux(home, args);
    assert_eq!(out.status.code(), Some(1), "vmux {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn pool_list_shows_the_default_pool_on_first_run() {
    let home = tempfile::tempdir().expect("tempdir");
    let text = ok(home.path(), &["pool-list"]);
    assert!(
        text.contains("default") && text.contains("active"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(home.path(), &["pool-list", "--json"])).expect("json");
    assert_eq!(json[0]["name"], "default");
    assert_eq!(json[0]["autostart"], true);
}

#[test]
fn create_then_info_as_json() {
    let home = tempfile::tempdir().expect("tempdir");
    let text = ok(
        home.path(),
        &["vol-create-as", "default", "web1.qcow2", "20G"],
    );
    assert!(
        text.contains("web1.qcow2") && text.contains("20G"),
        "{text}"
    );
    let info: serde_json::Value = serde_json::from_str(&ok(
        home.path(),
        &["vol-info", "default", "web1.qcow2", "--json"],
    ))
    .expect("json");
    assert_eq!(info["capacity"], 20u64 << 30);
    assert_eq!(info["format"], "qcow2");
    assert!(info["allocation"].as_u64().expect("allocation") < 1 << 20);
    let list = ok(home.path(), &["vol-list", "default"]);
    assert!(
        list.contains("web1.qcow2") && list.contains("20G"),
        "{list}"
    );
    let grown = ok(
        home.path(),
        &["vol-resize", "default", "web1.qcow2", "+10G"],
    );
    assert!(grown.contains("30G"), "{grown}");
}

#[test]
fn errors_exit_1_with_the_reason_and_the_fix() {
    let home = tempfile::tempdir().expect("tempdir");
    let err = fails(home.path(), &["vol-create-as", "default", "a.raw", "lots"]);
    assert!(err.starts_with("error: ") && err.contains("512M"), "{err}");
    let err = fails(home.path(), &["vol-delete", "default", "ghost.qcow2"]);
    assert!(
        err.contains("ghost.qcow2") && err.contains("vmux vol-list default"),
        "{err}"
    );
    let err = fails(home.path(), &["pool-start", "nope"]);
    assert!(err.contains("'nope'"), "{err}");
    let err = fails(home.path(), &["snapshot-list", "ghost"]);
    assert!(err.contains("'ghost'"), "{err}");
}

#[test]
fn a_snapshot_round_trip_through_the_binary() {
    let home = tempfile::tempdir().expect("tempdir");
    ok(
        home.path(),
        &["vol-create-as", "default", "web1.qcow2", "1M"],
    );
    let vms = home.path().join("config/vms");
    std::fs::create_dir_all(&vms).expect("mkdir");
    std::fs::write(
        vms.join("web1.toml"),
        "name = \"web1\"\nvcpus = 1\nmax_vcpus = 4\nmemory = \"256M\"\n[boot]\nsource = \"demo\"\n[[disks]]\npool = \"default\"\nvolume = \"web1.qcow2\"\n",
    )
    .expect("define VM");
    ok(home.path(), &["snapshot-create", "web1", "before-upgrade"]);
    let list: serde_json::Value =
        serde_json::from_str(&ok(home.path(), &["snapshot-list", "web1", "--json"])).expect("json");
    assert_eq!(list[0]["name"], "before-upgrade");
    assert_eq!(list[0]["current"], true);
    let err = fails(home.path(), &["vol-delete", "default", "web1.qcow2"]);
    assert!(err.contains("used by VM web1"), "{err}");
    ok(home.path(), &["snapshot-revert", "web1", "before-upgrade"]);
    ok(home.path(), &["snapshot-delete", "web1", "before-upgrade"]);
    let text = ok(home.path(), &["snapshot-list", "web1"]);
    assert!(!text.contains("before-upgrade"), "{text}");
}

#[test]
fn undefine_refuses_a_vm_with_snapshots_unless_told_to_drop_their_metadata() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["vol-create-as", "default", "web1.qcow2", "1G"]);
    ok(
        h,
        &["create", "web1", "--demo", "--disk", "default/web1.qcow2"],
    );
    ok(h, &["snapshot-create", "web1", "s1"]);
    let metadata = h.join("config/snapshots/web1");
    assert!(metadata.join("s1.toml").exists(), "where snapshots live");

    let err = fails(h, &["undefine", "web1"]);
    assert!(
        err.contains("has a snapshot (s1)") && err.contains("--snapshots-metadata"),
        "{err}"
    );
    assert!(ok(h, &["list", "--all"]).contains("web1"), "still defined");

    let out = ok(h, &["undefine", "web1", "--snapshots-metadata"]);
    assert!(out.contains("disk images stay"), "{out}");
    assert!(!metadata.exists(), "the snapshot metadata folder is gone");
    let volumes = ok(h, &["vol-list", "default"]);
    assert!(
        volumes.contains("web1.qcow2") && volumes.contains("web1.s1.qcow2"),
        "the frozen image and the overlay stay: {volumes}"
    );
}

#[test]
fn undefine_of_a_vm_whose_snapshots_were_all_deleted_leaves_no_metadata_folder() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["vol-create-as", "default", "web1.qcow2", "1G"]);
    ok(
        h,
        &["create", "web1", "--demo", "--disk", "default/web1.qcow2"],
    );
    ok(h, &["snapshot-create", "web1", "s1"]);
    ok(h, &["snapshot-delete", "web1", "s1"]);
    assert!(
        h.join("config/snapshots/web1").is_dir(),
        "snapshot-delete leaves the emptied folder"
    );

    ok(h, &["undefine", "web1"]);

    assert!(!h.join("config/snapshots/web1").exists());
    // A new VM of the same name starts without snapshots.
    ok(
        h,
        &["create", "web1", "--demo", "--disk", "default/web1.qcow2"],
    );
    assert!(!ok(h, &["snapshot-list", "web1"]).contains("s1"));
}
