//! End to end: the real `vmux` binary in a real pseudo-terminal (tmux), against real vmd
//! processes and the built-in demo guest on /dev/kvm, with `VMUX_HOME` in a temp dir.
//!
//! A user creates a VM with the wizard, it starts and its console opens; they type `help`
//! and see the demo's answer, detach, quit; `vmux list` shows the VM running; a relaunch
//! shows it again and shuts it down. Without tmux or /dev/kvm the tests skip, saying what, or
//! fail under CI (tests/common/prereq.rs).
//!
//! In the storage pane a user creates, clones and deletes volumes, and `vmux vol-list` agrees
//! at each step (needs tmux only).
//!
//! A user makes a VM from a downloaded disk image with cloud-init, through the wizard (the
//! image's "kernel" is the demo guest, see tests/common/binary.rs).

mod common;

use common::prereq::{Need, TMUX, met};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const VMUX: &str = env!("CARGO_BIN_EXE_vmux");
/// Longest the TUI or a guest may take to show an expected screen on this emulating KVM.
const TIMEOUT: Duration = Duration::from_secs(40);

/// A private tmux server (its socket inside the test's temporary `VMUX_HOME`, so no other
/// tmux server, a user's or another test run's, can be reached) with one 120×40 session
/// running the TUI.
struct Tmux {
    server: common::tmux::Tmux,
    home: tempfile::TempDir,
}

impl Tmux {
    fn new() -> Tmux {
        let home = tempfile::tempdir().expect("tempdir");
        Tmux {
            server: common::tmux::Tmux::at(&home.path().join("tmux.sock")),
            home,
        }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    fn tmux(&self, args: &[&str]) -> Output {
        self.server.tmux(args)
    }

    /// Starts `vmux` (no subcommand) in the session; the pane stays open after it exits
    /// and prints its exit status.
    fn launch(&self) {
        let command = format!(
            "env VMUX_HOME={} {VMUX}; echo vmux-exit=$?; sleep 600",
            self.home().display()
        );
        self.server.run_in_session(&command, 120, 40);
    }

    fn keys(&self, keys: &[&str]) {
        self.server.keys(keys);
    }

    /// Types text literally.
    fn type_text(&self, text: &str) {
        self.keys(&["-l", text]);
    }

    /// Waits until the screen satisfies `check`; fails with the last screen otherwise.
    fn wait(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        self.server.wait(TIMEOUT, what, check)
    }

    fn wait_for(&self, text: &str) -> String {
        self.wait(&format!("{text:?}"), |s| s.contains(text))
    }

    fn vmux(&self, args: &[&str]) -> String {
        let out = Command::new(VMUX)
            .args(args)
            .env("VMUX_HOME", self.home())
            .output()
            .expect("vmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Leave no VM or tmux server behind, whatever happened.
        let _ = Command::new(VMUX)
            .args(["destroy", "e2e"])
            .env("VMUX_HOME", self.home())
            .output();
        self.server.kill();
    }
}

fn row_of<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == name))
}

#[test]
fn wizard_console_detach_quit_relaunch_and_shutdown_with_real_vms() {
    if !met(&[TMUX, Need::Kvm]) {
        return;
    }
    let t = Tmux::new();
    t.launch();
    t.wait_for("Welcome to vmux");

    // The wizard: name, boot source (the demo is the default), resources, review.
    t.keys(&["n"]);
    t.wait_for("1 Name");
    t.keys(&["C-u"]);
    t.type_text("e2e");
    t.keys(&["Enter"]);
    t.wait_for("Space or ←/→ switches");
    t.keys(&["Enter"]);
    t.wait_for("About hot-add");
    t.keys(&["Enter"]);
    t.wait_for("Existing volumes");
    t.keys(&["Enter"]);
    // vmux defines the `default` network on first use, so the network step is there once
    // the networks have been read.
    let next = t.wait("the network step or the review", |s| {
        s.contains("Each ticked network") || s.contains("The same from a shell")
    });
    if next.contains("Each ticked network") {
        t.keys(&["Enter"]);
    }
    let review = t.wait_for("The same from a shell");
    assert!(review.contains("vmux create e2e --demo"), "{review}");
    t.keys(&["Enter"]);

    // Created, started and attached: the demo's prompt, then its answer to `help`.
    t.wait_for("demo$");
    t.type_text("help");
    t.keys(&["Enter"]);
    t.wait_for("online CPUs by APIC id");

    // Detach: back to the list with the VM still running.
    t.keys(&["C-]"]);
    t.wait("e2e running in the list", |s| {
        s.contains("VMs (1)") && row_of(s, "e2e").is_some_and(|r| r.contains("running"))
    });

    t.keys(&["q"]);
    t.wait_for("vmux-exit=0");
    let listed = t.vmux(&["list"]);
    let row = row_of(&listed, "e2e").unwrap_or_else(|| panic!("not listed:\n{listed}"));
    assert!(row.contains("running"), "{listed}");

    // A new TUI finds it, and shuts it down.
    t.launch();
    t.wait("e2e running after relaunch", |s| {
        row_of(s, "e2e").is_some_and(|r| r.contains("running"))
    });
    t.keys(&["d"]);
    t.wait("e2e shut off", |s| {
        row_of(s, "e2e").is_some_and(|r| r.contains("shut off"))
    });
    let listed = t.vmux(&["list", "--all"]);
    assert!(
        row_of(&listed, "e2e").is_some_and(|r| r.contains("shut off")),
        "{listed}"
    );
    t.keys(&["q"]);
    t.wait_for("vmux-exit=0");
}

#[test]
fn a_tiny_window_asks_to_be_enlarged_and_quits_cleanly() {
    if !met(&[TMUX]) {
        return;
    }
    let t = Tmux::new();
    t.launch();
    t.wait_for("Welcome to vmux");
    let out = t.tmux(&["resize-window", "-t", "tui", "-x", "40", "-y", "10"]);
    assert!(out.status.success(), "{out:?}");
    t.wait_for("make the window larger");
    t.keys(&["q"]);
    t.wait_for("vmux-exit=0");
}

#[test]
fn volumes_created_cloned_and_deleted_in_the_storage_pane_show_in_vol_list() {
    if !met(&[TMUX]) {
        return;
    }
    let t = Tmux::new();
    t.launch();
    t.wait_for("Welcome to vmux");
    t.keys(&["2"]);
    t.wait_for("volumes in default (0)");

    t.keys(&["n"]);
    t.wait_for("new volume in pool default");
    t.keys(&["C-u"]);
    t.type_text("e2e-data.qcow2");
    t.keys(&["Down", "C-u"]);
    t.type_text("64M");
    t.keys(&["Enter"]);
    t.wait_for("created default/e2e-data.qcow2");
    let listed = t.vmux(&["vol-list", "default"]);
    let row = row_of(&listed, "e2e-data.qcow2").unwrap_or_else(|| panic!("not listed:\n{listed}"));
    assert!(row.contains("64M") && row.contains("qcow2"), "{listed}");

    // A full clone runs on a worker thread; the pane shows it when it is done.
    t.keys(&["Tab", "c"]);
    t.wait_for("clone default/e2e-data.qcow2");
    t.keys(&["Enter"]);
    t.wait_for("cloned default/e2e-data.qcow2 to e2e-data-clone.qcow2");
    t.wait_for("volumes in default (2)");
    let listed = t.vmux(&["vol-list", "default"]);
    assert!(
        row_of(&listed, "e2e-data-clone.qcow2").is_some(),
        "{listed}"
    );

    // The new clone is selected.
    t.keys(&["DC"]);
    t.wait_for("Delete default/e2e-data-clone.qcow2");
    t.keys(&["y"]);
    t.wait_for("deleted default/e2e-data-clone.qcow2");
    let listed = t.vmux(&["vol-list", "default"]);
    assert!(
        row_of(&listed, "e2e-data-clone.qcow2").is_none(),
        "{listed}"
    );
    assert!(row_of(&listed, "e2e-data.qcow2").is_some(), "{listed}");

    t.keys(&["q"]);
    t.wait_for("vmux-exit=0");
}

#[test]
fn plus_hot_adds_a_vcpu_the_demo_guest_onlines_and_a_disk_is_hot_added() {
    if !met(&[TMUX, Need::Kvm]) {
        return;
    }
    let t = Tmux::new();
    let out = Command::new(VMUX)
        .args([
            "create",
            "e2e",
            "--demo",
            "--vcpus",
            "1",
            "--max-vcpus",
            "4",
            "--start",
        ])
        .env("VMUX_HOME", t.home())
        .output()
        .expect("vmux runs");
    assert!(out.status.success(), "{out:?}");
    t.launch();
    t.wait("e2e running", |s| {
        row_of(s, "e2e").is_some_and(|r| r.contains("running"))
    });
    t.keys(&["+"]);
    t.wait_for("the guest brought its new vCPUs online (2 online)");
    let info = t.vmux(&["info", "e2e"]);
    let vcpus = info
        .lines()
        .find_map(|l| l.strip_prefix("vCPUs:"))
        .and_then(|rest| rest.split_whitespace().next());
    assert_eq!(vcpus, Some("2"), "{info}");

    // A new volume, hot-added: the status line names the guest device it became (the VM
    // has no other disk).
    t.keys(&["A"]);
    t.wait_for("add a disk to e2e");
    t.keys(&["Space"]);
    t.wait_for("e2e-data.qcow2");
    t.keys(&["Enter"]);
    t.wait_for("attached as vda, now and at the next boot");
    let listed = t.vmux(&["vol-list", "default"]);
    assert!(row_of(&listed, "e2e-data.qcow2").is_some(), "{listed}");
    t.keys(&["q"]);
    t.wait_for("vmux-exit=0");
}

#[test]
fn the_wizard_makes_a_vm_from_a_downloaded_image_with_cloud_init_and_it_boots_its_kernel() {
    if !met(&[TMUX, Need::Kvm]) {
        return;
    }
    let images = match common::binary::demo_images("tui-e2e-images") {
        Ok(dir) => dir,
        Err(reason) => {
            common::prereq::settle(vec![common::prereq::Missing::new(
                reason,
                "apt-get install e2fsprogs gdisk fdisk dosfstools mtools",
            )]);
            return;
        }
    };
    let t = Tmux::new();
    let download = t.home().join("debian-12-genericcloud-amd64.qcow2");
    std::fs::copy(images.join("debian.qcow2"), &download).expect("copy the image");
    let key = t.home().join("id_ed25519.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmK8vNYVH2kq0JUhw1Pc3Xo1ZB1gVgJ9Pc me@host\n",
    )
    .expect("key");
    t.launch();
    t.wait_for("Welcome to vmux");

    t.keys(&["n"]);
    t.wait_for("1 Name");
    t.keys(&["C-u"]);
    t.type_text("e2e");
    t.keys(&["Enter"]);
    t.wait_for("Space or ←/→ switches");
    // Install from: the disk image, a file, linked (the default).
    t.keys(&["Left"]);
    t.wait_for("disk image (a cloud image");
    t.keys(&["Down", "Down"]);
    t.type_text(&download.display().to_string());
    t.keys(&["Enter"]);
    t.wait_for("3 Cloud-init");
    t.keys(&["C-u"]);
    t.type_text("me");
    t.keys(&["Tab", "C-u"]);
    t.type_text(&key.display().to_string());
    t.keys(&["Enter"]);
    t.wait_for("About hot-add");
    t.keys(&["Enter"]);
    t.wait_for("Existing volumes");
    t.keys(&["Enter"]);
    let next = t.wait("the network step or the review", |s| {
        s.contains("Each ticked network") || s.contains("The same from a shell")
    });
    if next.contains("Each ticked network") {
        t.keys(&["Enter"]);
    }
    let review = t.wait_for("The same from a shell");
    let flat: String = review.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("vmux create e2e --image") && flat.contains("--linked --cloud-init"),
        "{review}"
    );
    t.keys(&["Enter"]);

    // Created, started and attached: the image's own kernel (the demo) answers.
    t.wait_for("demo$");
    t.keys(&["C-]"]);
    t.wait("e2e running in the list", |s| {
        row_of(s, "e2e").is_some_and(|r| r.contains("running"))
    });
    let info: serde_json::Value =
        serde_json::from_str(&t.vmux(&["info", "e2e", "--json"])).expect("info json");
    assert_eq!(
        info["boot_image"]["kernel"], "/boot/vmlinuz-6.1.0-28-amd64",
        "{info}"
    );
    assert!(
        info["disks"][0]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/e2e.qcow2")),
        "{info}"
    );
    assert_eq!(info["disks"][1]["read_only"], true, "the seed: {info}");
    let definition = t.vmux(&["dumpconfig", "e2e"]);
    assert!(definition.contains("user = \"me\""), "{definition}");
    t.keys(&["q"]);
    t.wait_for("vmux-exit=0");
}
