//! Concurrent changes to one VM definition through the `vmux` binary: read-modify-write verbs
//! run at the same time lose nothing (the store's lock serialises them), and `vmux edit`
//! refuses to overwrite a definition another command changed while the editor was open,
//! saving nothing, rather than silently undoing that change.

mod common;

use common::binary::ok;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn concurrent_attach_disk_config_writers_lose_no_disk() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["create", "web", "--demo"]);
    const WRITERS: usize = 8;
    for i in 0..WRITERS {
        ok(h, &["vol-create-as", "default", &format!("d{i}.raw"), "1M"]);
    }

    let children: Vec<_> = (0..WRITERS)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_vmux"))
                .args([
                    "attach-disk",
                    "web",
                    &format!("default/d{i}.raw"),
                    "--config",
                ])
                .env("VMUX_HOME", h)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn vmux")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let definition = ok(h, &["dumpconfig", "web"]);
    for i in 0..WRITERS {
        assert!(
            definition.contains(&format!("volume = \"d{i}.raw\"")),
            "d{i}.raw was lost: {definition}"
        );
    }
}

#[test]
fn an_edit_of_a_definition_changed_meanwhile_is_refused_and_the_change_kept() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    ok(h, &["create", "web", "--demo"]);
    // An "editor" that says when it has the file, waits for a go, then edits.
    let started = h.join("editor-started");
    let go = h.join("editor-go");
    let editor = h.join("editor.sh");
    std::fs::write(
        &editor,
        format!(
            "#!/bin/sh\ntouch '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done\nsed -i 's/^memory = .*/memory = \"512M\"/' \"$1\"\n",
            started.display(),
            go.display()
        ),
    )
    .expect("editor script");
    let edit = Command::new(env!("CARGO_BIN_EXE_vmux"))
        .args(["edit", "web"])
        .env("VMUX_HOME", h)
        .env("VISUAL", format!("sh {}", editor.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vmux edit");
    wait_for(&started);

    ok(h, &["autostart", "web"]);
    std::fs::write(&go, b"").expect("go");
    let out = edit.wait_with_output().expect("wait for edit");

    assert!(!out.status.success(), "the edit must not be saved");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("changed while you were editing") && err.contains("vmux edit web"),
        "{err}"
    );
    let definition = ok(h, &["dumpconfig", "web"]);
    assert!(definition.contains("autostart = true"), "{definition}");
    assert!(!definition.contains("512M"), "{definition}");
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
