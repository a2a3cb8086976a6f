//! Every CLI verb over `--connect ssh://…`: a test sshd on loopback (tests/common/sshd.rs)
//! whose logins run this build's `vmux agent --stdio` on their own vmux home, reached through
//! the system ssh. What a verb prints over SSH must be what it prints on that host; a VM is
//! driven end to end over SSH; each way a connection fails gets its own message.

mod common;

use common::prereq::{Need, met};
use common::sshd::{TestSshd, URI};
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

/// Runs `vmux args` on the "remote" host itself (its home, no SSH).
fn on_host(sshd: &TestSshd, args: &[&str]) -> Output {
    sshd.vmux(&sshd.remote_home)
        .args(args)
        .output()
        .expect("run vmux")
}

/// Runs `vmux --connect URI args` from a machine whose own home is `local`.
fn over_ssh(sshd: &TestSshd, local: &Path, args: &[&str]) -> Output {
    sshd.vmux(local)
        .arg("--connect")
        .arg(URI)
        .args(args)
        .output()
        .expect("run vmux")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A verb's output with what changes from one moment to the next masked: a pool's figures
/// follow the file system's free space, which other processes on the machine change.
fn stable(args: &[&str], stdout: &[u8]) -> String {
    let out = text(stdout);
    if !args[0].starts_with("pool-") {
        return out;
    }
    let digits = regex::Regex::new(r"[0-9]+(\.[0-9]+)?").expect("regex");
    digits.replace_all(&out, "N").into_owned()
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The remote host with a few of everything: VMs (one with a disk and a snapshot), volumes, a
/// second pool and a network.
fn furnish(sshd: &TestSshd) {
    let setup: &[&[&str]] = &[
        &[
            "create",
            "web",
            "--demo",
            "--vcpus",
            "2",
            "--max-vcpus",
            "4",
        ],
        &["create", "db", "--demo", "--memory", "96M"],
        &["vol-create-as", "default", "data.qcow2", "64M"],
        &[
            "vol-create-as",
            "default",
            "raw.img",
            "8M",
            "--format",
            "raw",
        ],
        &["attach-disk", "db", "default/data.qcow2", "--config"],
        &["snapshot-create", "db", "before-upgrade"],
        &[
            "net-define-as",
            "lab",
            "--mode",
            "isolated",
            "--subnet",
            "10.213.7.0/24",
        ],
        &["autostart", "web"],
    ];
    for args in setup {
        ok(on_host(sshd, args), &format!("{args:?}"));
    }
    let extra = sshd.dir.path().join("extra-pool");
    std::fs::create_dir_all(&extra).expect("pool dir");
    ok(
        on_host(
            sshd,
            &[
                "pool-define-as",
                "extra",
                "--target",
                extra.to_str().expect("utf-8"),
            ],
        ),
        "pool-define-as",
    );
}

#[test]
fn every_read_verb_prints_over_ssh_what_it_prints_on_the_host() {
    let Some(sshd) = TestSshd::start() else {
        return;
    };
    furnish(&sshd);
    let local = tempfile::tempdir().expect("local home");
    let verbs: &[&[&str]] = &[
        &["list", "--all"],
        &["list", "--all", "--json"],
        &["info", "web"],
        &["info", "db", "--json"],
        &["dumpconfig", "db"],
        &["dumpconfig", "web", "--json"],
        &["pool-list"],
        &["pool-list", "--json"],
        &["pool-info", "default", "--json"],
        &["vol-list", "default"],
        &["vol-list", "default", "--json"],
        &["vol-info", "default", "data.qcow2", "--json"],
        &["snapshot-list", "db"],
        &["snapshot-list", "db", "--json"],
        &["net-list", "--all"],
        &["net-list", "--all", "--json"],
        &["net-info", "lab", "--json"],
        &["vol-check", "default", "data.qcow2"],
    ];
    for args in verbs {
        let here = on_host(&sshd, args);
        let there = over_ssh(&sshd, local.path(), args);
        assert!(
            here.status.success(),
            "{args:?} on the host: {}",
            text(&here.stderr)
        );
        assert_eq!(
            (
                stable(args, &there.stdout),
                text(&there.stderr),
                there.status.code()
            ),
            (
                stable(args, &here.stdout),
                text(&here.stderr),
                here.status.code()
            ),
            "vmux {args:?} over ssh differs from the host (sshd log: {})",
            sshd.log()
        );
    }
    // Nothing was read or written on the connecting machine's own home.
    let list = ok(
        sshd.vmux(local.path())
            .args(["list", "--all", "--json"])
            .output()
            .expect("run"),
        "local list",
    );
    let list: serde_json::Value = serde_json::from_str(&list).expect("json");
    assert_eq!(list["vms"], serde_json::json!([]), "{list}");
}

#[test]
fn errors_over_ssh_read_as_they_do_on_the_host() {
    let Some(sshd) = TestSshd::start() else {
        return;
    };
    furnish(&sshd);
    let local = tempfile::tempdir().expect("local home");
    let failing: &[&[&str]] = &[
        &["info", "nope"],
        &["shutdown", "web"],
        &["vol-info", "default", "nope.qcow2"],
        &["pool-start", "nope"],
        &["net-info", "nope"],
        &["setvcpus", "web", "9", "--config"],
        &["undefine", "db"],
        &["create", "web", "--demo"],
    ];
    for args in failing {
        let here = on_host(&sshd, args);
        let there = over_ssh(&sshd, local.path(), args);
        assert!(!here.status.success(), "{args:?} should fail on the host");
        assert_eq!(
            (
                text(&there.stdout),
                text(&there.stderr),
                there.status.code()
            ),
            (text(&here.stdout), text(&here.stderr), here.status.code()),
            "vmux {args:?} over ssh fails differently from the host"
        );
    }
}

#[test]
fn changes_made_over_ssh_land_on_the_remote_host() {
    let Some(sshd) = TestSshd::start() else {
        return;
    };
    let local = tempfile::tempdir().expect("local home");
    let steps: &[&[&str]] = &[
        &["create", "app", "--demo", "--max-vcpus", "3"],
        &["setvcpus", "app", "2", "--config"],
        &["vol-create-as", "default", "a.qcow2", "32M"],
        &["vol-clone", "default", "a.qcow2", "b.qcow2"],
        &["vol-resize", "default", "b.qcow2", "48M"],
        &["attach-disk", "app", "default/b.qcow2", "--config"],
        &["snapshot-create", "app", "s1"],
        &["snapshot-delete", "app", "s1"],
        &["detach-disk", "app", "vda", "--config"],
        &["vol-delete", "default", "a.qcow2"],
        &[
            "net-define-as",
            "lab2",
            "--mode",
            "isolated",
            "--subnet",
            "10.213.8.0/24",
        ],
        &["net-undefine", "lab2"],
        &["autostart", "app"],
    ];
    for args in steps {
        ok(
            over_ssh(&sshd, local.path(), args),
            &format!("{args:?} over ssh"),
        );
    }
    let config = ok(
        on_host(&sshd, &["dumpconfig", "app", "--json"]),
        "dumpconfig",
    );
    let config: serde_json::Value = serde_json::from_str(&config).expect("json");
    assert_eq!(config["vcpus"], 2, "{config}");
    assert_eq!(config["autostart"], true, "{config}");
    let volumes = ok(on_host(&sshd, &["vol-list", "default"]), "vol-list");
    assert!(
        volumes.contains("b.qcow2") && !volumes.contains("a.qcow2"),
        "{volumes}"
    );
    let info = ok(
        on_host(&sshd, &["vol-info", "default", "b.qcow2", "--json"]),
        "vol-info",
    );
    let info: serde_json::Value = serde_json::from_str(&info).expect("json");
    assert_eq!(info["capacity"], 48 << 20, "{info}");
    assert!(
        !local.path().join("vms").exists(),
        "the local home stays empty"
    );
}

#[test]
fn a_vm_is_created_started_used_resized_and_stopped_over_ssh() {
    let Some(sshd) = TestSshd::start() else {
        return;
    };
    if !met(&[Need::Kvm]) {
        return;
    }
    let local = tempfile::tempdir().expect("local home");
    let run = |args: &[&str]| ok(over_ssh(&sshd, local.path(), args), &format!("{args:?}"));
    run(&["create", "web", "--demo", "--max-vcpus", "2"]);
    run(&["start", "web"]);
    // Type into the console over SSH and wait for the guest's answer (the echoed command line
    // starts with the prompt, the answer at the start of a line).
    let mut console = sshd
        .vmux(local.path())
        .args([
            "--connect",
            URI,
            "console",
            "web",
            "--until",
            "(?m)^over-ssh-42",
            "--timeout",
            "90",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("console");
    let mut input = console.stdin.take().expect("stdin");
    std::thread::sleep(std::time::Duration::from_millis(500));
    input.write_all(b"echo over-ssh-42\n").expect("type");
    let out = console.wait_with_output().expect("console ends");
    assert!(
        out.status.success(),
        "no answer over ssh: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    drop(input);
    run(&["setvcpus", "web", "2", "--live"]);
    let info: serde_json::Value =
        serde_json::from_str(&run(&["info", "web", "--json"])).expect("json");
    assert_eq!(info["vcpus"], 2, "{info}");
    run(&["shutdown", "web"]);
    let list = run(&["list", "--all"]);
    assert!(
        list.lines()
            .any(|l| l.contains("web") && l.contains("shut off")),
        "{list}"
    );
}

#[test]
fn each_way_a_connection_fails_gets_its_own_message() {
    let Some(sshd) = TestSshd::start() else {
        return;
    };
    let local = tempfile::tempdir().expect("local home");
    let attempt = |uri: &str, remote_vmux: Option<&str>| {
        let mut command = sshd.vmux(local.path());
        if let Some(program) = remote_vmux {
            command.env("VMUX_REMOTE_VMUX", program);
        }
        let out = command
            .args(["--connect", uri, "list"])
            .output()
            .expect("run");
        assert!(!out.status.success(), "{uri} should fail");
        text(&out.stderr)
    };
    let closed = attempt("ssh://vmux-test-closed", None);
    assert!(closed.contains("cannot reach vmux-test-closed"), "{closed}");
    assert!(
        closed.contains("Connection refused"),
        "ssh's words: {closed}"
    );
    let stranger = attempt("ssh://vmux-test-stranger", None);
    assert!(
        stranger.contains("ssh could not log in to vmux-test-stranger"),
        "{stranger}"
    );
    assert!(
        stranger.contains("Permission denied"),
        "ssh's words: {stranger}"
    );
    let missing = attempt("ssh://vmux-test-novmux", Some("vmux-not-installed"));
    assert!(
        missing.contains("vmux is not installed on vmux-test-novmux"),
        "{missing}"
    );
    assert!(
        missing.contains("install vmux on vmux-test-novmux"),
        "{missing}"
    );
    let future = attempt("ssh://vmux-test-future", Some("vmux-future"));
    assert!(future.contains("speaks host protocol 999"), "{future}");
    assert!(
        future.contains("install the same vmux version on both"),
        "{future}"
    );
    let bad = attempt("host2", None);
    assert!(bad.contains("ssh://[user@]host[:port]"), "{bad}");
}

#[test]
fn vmux_connect_in_the_environment_works_like_the_option() {
    let Some(sshd) = TestSshd::start() else {
        return;
    };
    furnish(&sshd);
    let local = tempfile::tempdir().expect("local home");
    let out = sshd
        .vmux(local.path())
        .env("VMUX_CONNECT", URI)
        .args(["list", "--all", "--json"])
        .output()
        .expect("run");
    assert_eq!(
        text(&out.stdout),
        text(&on_host(&sshd, &["list", "--all", "--json"]).stdout)
    );
}
