//! VMs made from disk images, end to end through the real `vmux` binary with `VMUX_HOME` in a
//! temporary directory: `create --image` (in place and `--linked`), `vol-import`, cloud-init
//! seeds, `info`, and the kernel read from the image's own /boot at every start, reset
//! included.
//!
//! The images are Debian-like GPT disks built by `scripts/make-test-images.sh` whose "kernels"
//! are guest-kit programs (static ELF64, which the loader boots like a vmlinux): the `demo`
//! guest, which waits at a prompt, and the `acpi` guest, which prints the command line it got
//! and powers off. So these tests boot on this machine's KVM in seconds, while the real-Linux
//! tier (tests/linux_boot.rs) boots Debian's kernel from such an image and logs in over SSH.
//! They need the image tools (e2fsprogs, gdisk, fdisk, dosfstools, mtools, qemu-utils); without
//! them, or without /dev/kvm, they say so and pass, except under CI.

mod common;

use common::binary::{guest, ok, vmux};
use common::prereq::{Missing, Need, met, settle};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The root filesystem's first byte in the Debian-like images (partition 1 at sector 20480).
const ROOT_OFFSET: u64 = 20480 * 512;
/// The kernel version the images' default grub entry boots.
const VERSION: &str = "6.1.0-28-amd64";

/// Whether these tests can run here: /dev/kvm and the test images (built with the image
/// tools make-test-images.sh names); the shared prerequisite rule decides otherwise.
fn runnable() -> bool {
    if !met(&[Need::Kvm]) {
        return false;
    }
    match images() {
        Ok(_) => true,
        Err(reason) => settle(vec![Missing::new(
            reason,
            "apt-get install e2fsprogs gdisk fdisk dosfstools mtools",
        )]),
    }
}

/// The directory of test images whose default kernel is the demo guest, built once.
fn images() -> Result<PathBuf, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| common::binary::demo_images("cli-images"))
        .clone()
}

/// A private copy of test image `name` (as a user's download) in `dir`.
fn download(dir: &Path, name: &str) -> PathBuf {
    let from = images().expect("images").join(name);
    let to = dir.join(name);
    std::fs::copy(&from, &to).expect("copy the test image");
    to
}

fn json(home: &Path, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&ok(home, &args)).expect("vmux --json prints JSON")
}

fn fails(home: &Path, args: &[&str]) -> String {
    let out = vmux(home, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "vmux {args:?} should have failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits until VM `name`'s console (history included) matches `pattern`.
fn console_until(home: &Path, name: &str, pattern: &str) -> String {
    ok(
        home,
        &["console", name, "--until", pattern, "--timeout", "60"],
    )
}

/// Waits until VM `name` is `state`.
fn wait_state(home: &Path, name: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = json(home, &["info", name]);
        if info["state"] == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "VM {name} is not {state}: {info}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs debugfs on the root filesystem of the raw image `disk`, writable.
fn debugfs(disk: &Path, request: &str) {
    let target = format!("{}?offset={ROOT_OFFSET}", disk.display());
    let out = Command::new("debugfs")
        .env("PATH", "/usr/sbin:/sbin:/usr/bin:/bin")
        .args(["-w", "-R", request, &target])
        .output()
        .expect("run debugfs (e2fsprogs)");
    assert!(
        out.status.success(),
        "debugfs {request}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads a file out of the root filesystem of the raw image `disk`.
fn debugfs_cat(disk: &Path, file: &str) -> String {
    let target = format!("{}?offset={ROOT_OFFSET}", disk.display());
    let out = Command::new("debugfs")
        .env("PATH", "/usr/sbin:/sbin:/usr/bin:/bin")
        .args(["-R", &format!("cat {file}"), &target])
        .output()
        .expect("run debugfs (e2fsprogs)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a kernel update inside the guest does to /boot: a new kernel file, and grub.cfg's
/// default entry pointing at it (as `update-grub` writes it).
fn install_kernel(disk: &Path, kernel: &Path, version: &str, work: &Path) {
    debugfs(
        disk,
        &format!("write {} /boot/vmlinuz-{version}", kernel.display()),
    );
    let cfg = debugfs_cat(disk, "/boot/grub/grub.cfg");
    let updated = cfg.replacen(
        &format!("/boot/vmlinuz-{VERSION} root="),
        &format!("/boot/vmlinuz-{version} root="),
        1,
    );
    assert_ne!(
        cfg, updated,
        "grub.cfg has no default entry to update:\n{cfg}"
    );
    let file = work.join("grub.cfg");
    std::fs::write(&file, updated).expect("write grub.cfg");
    debugfs(disk, "rm /boot/grub/grub.cfg");
    debugfs(
        disk,
        &format!("write {} /boot/grub/grub.cfg", file.display()),
    );
}

fn ssh_key(dir: &Path) -> PathBuf {
    let key = dir.join("id_ed25519.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmK8vNYVH2kq0JUhw1Pc3Xo1ZB1gVgJ9Pc me@host\n",
    )
    .expect("write key");
    key
}

#[test]
fn an_image_vm_boots_the_kernel_grub_names_and_a_reset_boots_the_updated_one() {
    if !runnable() {
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    let disk = download(work.path(), "debian.raw");
    let disk_arg = disk.to_str().expect("utf-8 path");

    let created = ok(
        home.path(),
        &[
            "create",
            "web1",
            "--image",
            disk_arg,
            "--cmdline-extra",
            "vmux.marker=1",
        ],
    );
    assert!(
        created.contains(&format!(
            "boot: image {disk_arg} \u{2192} /boot/vmlinuz-{VERSION} (grub entry 'Debian GNU/Linux')"
        )),
        "{created}"
    );
    ok(home.path(), &["start", "web1"]);
    console_until(home.path(), "web1", "demo\\$ ");
    let info = json(home.path(), &["info", "web1"]);
    assert_eq!(
        info["boot_image"]["kernel"],
        format!("/boot/vmlinuz-{VERSION}")
    );
    assert_eq!(
        info["boot_image"]["initrds"][0],
        format!("/boot/initrd.img-{VERSION}")
    );
    let cmdline = info["boot_image"]["cmdline"].as_str().unwrap_or_default();
    assert!(
        cmdline.starts_with(&format!("BOOT_IMAGE=/boot/vmlinuz-{VERSION} root=UUID="))
            && cmdline.ends_with(" vmux.marker=1"),
        "{cmdline}"
    );

    // A kernel update while the VM runs: the acpi guest, which prints its command line.
    install_kernel(&disk, &guest("acpi"), "6.1.0-99-amd64", work.path());
    ok(home.path(), &["reset", "web1"]);
    wait_state(home.path(), "web1", "shut_off");

    let log = std::fs::read_to_string(home.path().join("state/vms/web1/console.log"))
        .expect("console log");
    assert!(
        log.contains("cmdline: BOOT_IMAGE=/boot/vmlinuz-6.1.0-99-amd64 root=UUID="),
        "the reset did not boot the updated kernel:\n{log}"
    );
    let shown = ok(home.path(), &["info", "web1"]);
    assert!(
        shown.contains("/boot/vmlinuz-6.1.0-99-amd64 (grub entry 'Debian GNU/Linux')"),
        "{shown}"
    );
}

#[test]
fn a_linked_vm_gets_an_overlay_and_a_read_only_cloud_init_seed_removed_with_undefine() {
    if !runnable() {
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    let base = download(work.path(), "debian.qcow2");
    let key = ssh_key(work.path());
    let before = std::fs::read(&base).expect("base");

    let created = json(
        home.path(),
        &[
            "create",
            "web1",
            "--image",
            base.to_str().expect("utf-8"),
            "--linked",
            "--cloud-init",
            &format!("user=me,ssh-key={},root-password=generate", key.display()),
            "--start",
        ],
    );

    assert_eq!(created["disks"][0]["pool"], "default");
    assert_eq!(created["disks"][0]["volume"], "web1.qcow2");
    // The download became the base volume default/debian.qcow2, read-only under the overlay.
    let base_volume = json(home.path(), &["vol-info", "default", "debian.qcow2"]);
    assert_eq!(
        base_volume["backing_of"].as_array().map(Vec::len),
        Some(1),
        "{base_volume}"
    );
    let password = created["generated_passwords"][0]["password"]
        .as_str()
        .expect("a generated password");
    console_until(home.path(), "web1", "demo\\$ ");
    let info = json(home.path(), &["info", "web1"]);
    let disks = info["disks"].as_array().expect("disks");
    assert_eq!(disks.len(), 2, "{info}");
    assert_eq!(disks[1]["target"], "vdb");
    assert_eq!(disks[1]["read_only"], true);
    let seed = PathBuf::from(disks[1]["path"].as_str().expect("seed path"));
    assert_eq!(info["cloud_init"]["seed"], disks[1]["path"]);
    assert!(
        info["cloud_init"]["instance_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("vmux-")),
        "{info}"
    );
    ok(home.path(), &["destroy", "web1"]);

    // The password is in the seed only as a hash, and nowhere else in vmux's files.
    let definition =
        std::fs::read_to_string(home.path().join("config/vms/web1.toml")).expect("definition");
    assert!(!definition.contains(password), "{definition}");
    let seed_bytes = std::fs::read(&seed).expect("seed");
    assert!(
        !seed_bytes
            .windows(password.len())
            .any(|w| w == password.as_bytes())
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&seed).expect("seed").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read(&base).expect("base"),
        before,
        "the base image changed"
    );

    ok(home.path(), &["undefine", "web1"]);
    assert!(!seed.exists(), "undefine left the seed behind");
}

#[test]
fn an_image_without_a_kernel_is_refused_at_create_with_what_was_found() {
    if !runnable() {
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    let disk = download(work.path(), "nokernel.raw");

    let err = fails(
        home.path(),
        &["create", "web1", "--image", disk.to_str().expect("utf-8")],
    );

    assert!(err.contains("cannot boot the disk image"), "{err}");
    assert!(err.contains("no kernel found in the disk image"), "{err}");
    assert!(err.contains("--kernel/--initrd"), "{err}");
    assert!(!home.path().join("config/vms/web1.toml").exists());
}

#[test]
fn a_kernel_removed_inside_the_image_fails_the_start_naming_the_file() {
    if !runnable() {
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    let disk = download(work.path(), "debian.raw");
    ok(
        home.path(),
        &["create", "web1", "--image", disk.to_str().expect("utf-8")],
    );
    debugfs(&disk, &format!("rm /boot/vmlinuz-{VERSION}"));

    let err = fails(home.path(), &["start", "web1"]);

    assert!(
        err.contains(&format!(
            "grub entry 'Debian GNU/Linux' loads /boot/vmlinuz-{VERSION} from partition 1, which does not exist there"
        )),
        "{err}"
    );
    assert_eq!(json(home.path(), &["info", "web1"])["state"], "shut_off");
}

#[test]
fn vol_import_copies_or_links_a_download_and_a_file_not_named_for_its_format_needs_it_said() {
    if !runnable() {
        return;
    }
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    let download = download(work.path(), "debian.qcow2");
    // Ubuntu names its qcow2 cloud images .img.
    let ubuntu_style = work.path().join("jammy-server-cloudimg-amd64.img");
    std::fs::copy(&download, &ubuntu_style).expect("copy");
    let file = ubuntu_style.to_str().expect("utf-8");

    let err = fails(home.path(), &["create", "web1", "--image", file]);
    assert!(err.contains("does not say its format"), "{err}");
    assert!(err.contains("--format qcow2"), "{err}");
    let err = fails(home.path(), &["vol-import", "default", "jammy.qcow2", file]);
    assert!(err.contains("qcow2 header"), "{err}");

    let copied = json(
        home.path(),
        &[
            "vol-import",
            "default",
            "jammy.qcow2",
            file,
            "--format",
            "qcow2",
        ],
    );
    assert_eq!(copied["format"], "qcow2");
    assert!(copied["backing"].is_null(), "{copied}");
    let linked = json(
        home.path(),
        &[
            "vol-import",
            "default",
            "web2.qcow2",
            file,
            "--linked",
            "--format",
            "qcow2",
        ],
    );
    assert_eq!(
        linked["backing"]["name"],
        "jammy-server-cloudimg-amd64.qcow2"
    );
    assert_eq!(linked["backing"]["format"], "qcow2");

    for volume in ["default/jammy.qcow2", "default/web2.qcow2"] {
        let name = volume.replace(['/', '.'], "-");
        let out = ok(home.path(), &["create", &name, "--image", volume]);
        assert!(out.contains(&format!("/boot/vmlinuz-{VERSION}")), "{out}");
    }
    // The base is shared: a VM cannot write it while overlays read through it.
    let err = fails(
        home.path(),
        &[
            "create",
            "base-writer",
            "--image",
            "default/jammy-server-cloudimg-amd64.qcow2",
            "--start",
        ],
    );
    assert!(err.contains("web2.qcow2"), "{err}");
}
