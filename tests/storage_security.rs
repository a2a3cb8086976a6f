//! Hostile images, end to end through the `vmux` binary (docs/security.md, "Image files"):
//!
//! - the format-probing attack (QEMU's CVE-2008-2004): the guest-kit `inject` program writes a
//!   qcow2 header into its own raw disk naming a host file as its raw backing file; the next
//!   start, `vol-info`, `vol-download` and `attach-disk` must not reveal that file, and no vmd
//!   may hold it open;
//! - definitions and volumes from before formats were recorded: migrated from the file name,
//!   refused with the fix when the name says nothing;
//! - symbolic links in a pool: every volume verb refuses them and leaves the file they point to
//!   untouched; `vol-list` shows them as links.
//!
//! The attack needs /dev/kvm; without it those tests skip, saying so, or fail under CI
//! (tests/common/prereq.rs).

mod common;

use common::binary::{guest, ok, vmux};
use common::prereq::{Need, met};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A temporary vmux home with a secret host file outside every pool.
struct Host {
    dir: tempfile::TempDir,
    secret: PathBuf,
    secret_text: String,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret_text = format!("TOP-SECRET-{}-host-file", std::process::id());
        let secret = dir.path().join("secret.txt");
        std::fs::write(&secret, secret_text.repeat(64)).expect("write secret");
        Host {
            dir,
            secret,
            secret_text,
        }
    }

    fn home(&self) -> &Path {
        self.dir.path()
    }

    fn pool(&self) -> PathBuf {
        self.home().join("data/images")
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(self.home(), args)
    }

    /// Runs a command that must fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = vmux(self.home(), args);
        assert!(
            !out.status.success(),
            "vmux {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).expect("JSON output")
    }

    /// The console of `vm` once it matches `pattern`.
    fn console_until(&self, vm: &str, pattern: &str) -> String {
        self.ok(&["console", vm, "--until", pattern, "--timeout", "60"])
            .replace('\r', "")
    }

    fn wait_for_state(&self, vm: &str, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.state(vm) != state {
            assert!(Instant::now() < deadline, "{vm} never reached {state}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn state(&self, vm: &str) -> String {
        let list = self.json(&["list", "--all", "--json"]);
        list["vms"]
            .as_array()
            .and_then(|vms| vms.iter().find(|v| v["name"] == vm))
            .and_then(|v| v["state"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    /// What vmd of running VM `vm` has open (the targets of `/proc/PID/fd/*`).
    fn open_files(&self, vm: &str) -> Vec<PathBuf> {
        let info = self.json(&["info", vm, "--json"]);
        let pid = info["pid"].as_u64().expect("a running VM has a pid");
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("vmd's fd directory")
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .collect()
    }

    fn assert_secret_not_open(&self, vm: &str) {
        let files = self.open_files(vm);
        assert!(
            files.contains(&self.pool().join("data")),
            "vmd of {vm} should hold its disk: {files:?}"
        );
        assert!(
            !files.contains(&self.secret),
            "vmd of {vm} holds the host file open: {files:?}"
        );
    }

    fn assert_no_secret(&self, what: &str, text: &str) {
        assert!(
            !text.contains(&self.secret_text),
            "{what} reveals the host file: {text}"
        );
    }
}

#[test]
fn a_guest_that_writes_a_qcow2_header_into_its_raw_disk_never_reads_the_host_file_it_names() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let host = Host::new();
    let inject = guest("inject");
    let backing = format!("backing={}", host.secret.display());
    host.ok(&["vol-create-as", "default", "data", "16M", "--format", "raw"]);
    host.ok(&[
        "create",
        "victim",
        "--kernel",
        inject.to_str().expect("utf-8 path"),
        "--cmdline",
        &backing,
        "--memory",
        "64M",
        "--disk",
        "default/data",
    ]);
    let definition = host.ok(&["dumpconfig", "victim"]);
    assert!(
        definition.contains("format = \"raw\""),
        "the disk's format is recorded at definition time: {definition}"
    );

    // The attack: the guest writes the header and powers off.
    host.ok(&["start", "victim"]);
    host.wait_for_state("victim", "shut_off");
    let log = std::fs::read_to_string(host.home().join("state/vms/victim/console.log"))
        .expect("console log");
    assert!(
        log.contains("inject: wrote a qcow2 header naming"),
        "the guest did not write its header: {log}"
    );

    // vol-info: still raw, no backing file.
    let info = host.json(&["vol-info", "default", "data", "--json"]);
    assert_eq!(info["format"], "raw", "{info}");
    assert!(info["backing"].is_null(), "{info}");
    host.assert_no_secret("vol-info", &info.to_string());

    // vol-download: the disk's own bytes (the header the guest wrote), not the host file.
    let out = host.home().join("download.img");
    host.ok(&[
        "vol-download",
        "default",
        "data",
        out.to_str().expect("utf-8 path"),
    ]);
    let bytes = std::fs::read(&out).expect("downloaded image");
    assert_eq!(
        &bytes[..4],
        b"QFI\xfb",
        "the download is the raw disk as written"
    );
    host.assert_no_secret("vol-download", &String::from_utf8_lossy(&bytes));

    // The next start: the guest reads its own header back, and vmd never opens the host file.
    host.ok(&["start", "victim"]);
    let console = host.console_until("victim", "inject: holding the disk");
    assert!(console.contains("sector 0: QFI"), "{console}");
    host.assert_no_secret("the guest's disk", &console);
    host.assert_secret_not_open("victim");
    host.ok(&["destroy", "victim"]);
    host.ok(&["undefine", "victim"]);

    // attach-disk to another running VM: the same.
    let hotplug = guest("hotplug");
    host.ok(&[
        "create",
        "other",
        "--kernel",
        hotplug.to_str().expect("utf-8 path"),
        "--memory",
        "64M",
    ]);
    host.ok(&["start", "other"]);
    host.console_until("other", "hotplug ready");
    host.ok(&["attach-disk", "other", "default/data"]);
    let console = host.console_until("other", r"disk \d+ (ready|FAILED)");
    assert!(console.contains("ready: QFI"), "{console}");
    host.assert_no_secret("the hot-added disk", &console);
    host.assert_secret_not_open("other");
    host.ok(&["destroy", "other"]);
}

#[test]
fn recording_qcow2_for_a_guest_written_header_still_does_not_follow_a_host_file() {
    let host = Host::new();
    host.ok(&["vol-create-as", "default", "data", "16M", "--format", "raw"]);
    write_guest_header(&host.pool().join("data"), &host.secret);

    // Even a user who records the wrong format gets no host file: it is outside every pool.
    host.ok(&["vol-set-format", "default", "data", "qcow2"]);
    let info = host.ok(&["vol-info", "default", "data"]);
    assert!(
        info.contains("not followed: it is outside every storage pool"),
        "{info}"
    );
    let out = host.home().join("out.raw");
    let err = host.fails(&[
        "vol-download",
        "default",
        "data",
        out.to_str().expect("utf-8 path"),
    ]);
    assert!(
        err.contains("outside every storage pool") && err.contains("--allow-backing"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn a_definition_from_before_formats_were_recorded_gets_its_format_from_the_file_name() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let host = Host::new();
    host.ok(&["pool-list"]);
    // A raw volume and a definition as older vmux versions left them: no records, no format.
    std::fs::write(host.pool().join("old.raw"), vec![0u8; 1 << 20]).expect("volume");
    let blk = guest("blk");
    write_definition(
        &host,
        "old",
        &blk,
        "[[disks]]\npool = \"default\"\nvolume = \"old.raw\"\n",
    );

    host.ok(&["start", "old"]);
    host.wait_for_state("old", "shut_off");

    let definition = host.ok(&["dumpconfig", "old"]);
    assert!(definition.contains("format = \"raw\""), "{definition}");
}

#[test]
fn a_volume_whose_format_nothing_records_is_refused_with_the_fix_until_recorded() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let host = Host::new();
    host.ok(&["pool-list"]);
    let volume = host.pool().join("legacy");
    std::fs::write(&volume, vec![0u8; 1 << 20]).expect("volume");
    write_guest_header(&volume, &host.secret);
    let blk = guest("blk");
    write_definition(
        &host,
        "legacy",
        &blk,
        "[[disks]]\npool = \"default\"\nvolume = \"legacy\"\n",
    );

    let err = host.fails(&["start", "legacy"]);
    assert!(
        err.contains("is not recorded") && err.contains("vmux vol-set-format"),
        "{err}"
    );
    let list = host.ok(&["vol-list", "default"]);
    assert!(list.contains("is not recorded"), "{list}");

    host.ok(&["vol-set-format", "default", "legacy", "raw"]);
    host.ok(&["start", "legacy"]);
    host.wait_for_state("legacy", "shut_off");
    let log = std::fs::read_to_string(host.home().join("state/vms/legacy/console.log"))
        .expect("console log");
    assert!(log.contains("blk: 1 disks, 0 failures"), "{log}");
    assert!(
        host.ok(&["dumpconfig", "legacy"])
            .contains("format = \"raw\"")
    );
}

/// Writes the start of the qcow2 image `inject` writes (header, backing name, refcounts)
/// into the raw file `path`, naming `secret`.
fn write_guest_header(path: &Path, secret: &Path) {
    use std::os::unix::fs::FileExt;
    let name = secret.to_str().expect("utf-8 path").as_bytes();
    let mut header = vec![0u8; 512];
    header[..4].copy_from_slice(b"QFI\xfb");
    header[4..8].copy_from_slice(&3u32.to_be_bytes());
    header[8..16].copy_from_slice(&128u64.to_be_bytes());
    header[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
    header[20..24].copy_from_slice(&16u32.to_be_bytes());
    header[24..32].copy_from_slice(&(16u64 << 20).to_be_bytes());
    header[36..40].copy_from_slice(&1u32.to_be_bytes());
    header[40..48].copy_from_slice(&(3u64 << 16).to_be_bytes());
    header[48..56].copy_from_slice(&(1u64 << 16).to_be_bytes());
    header[56..60].copy_from_slice(&1u32.to_be_bytes());
    header[96..100].copy_from_slice(&4u32.to_be_bytes());
    header[100..104].copy_from_slice(&104u32.to_be_bytes());
    header[104..108].copy_from_slice(&0xe279_2acau32.to_be_bytes());
    header[108..112].copy_from_slice(&3u32.to_be_bytes());
    header[112..115].copy_from_slice(b"raw");
    header[128..128 + name.len()].copy_from_slice(name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open volume");
    file.write_all_at(&header, 0).expect("header");
    file.write_all_at(&(2u64 << 16).to_be_bytes(), 1 << 16)
        .expect("refcount table");
    file.write_all_at(&[0, 1, 0, 1, 0, 1, 0, 1], 2 << 16)
        .expect("refcount block");
    file.set_len(16 << 20).expect("size");
}

/// Writes `vms/<name>.toml` by hand, as an older vmux would have, with `disks` appended.
fn write_definition(host: &Host, name: &str, kernel: &Path, disks: &str) {
    let dir = host.home().join("config/vms");
    std::fs::create_dir_all(&dir).expect("vms dir");
    let text = format!(
        "name = \"{name}\"\nvcpus = 1\nmax_vcpus = 4\nmemory = \"64M\"\n\n[boot]\nsource = \"kernel\"\nkernel = \"{}\"\n\n{disks}",
        kernel.display()
    );
    std::fs::write(dir.join(format!("{name}.toml")), text).expect("definition");
}

/// A pool holding `link.raw`, a symbolic link to a 1 MiB file outside the pool.
struct LinkedPool {
    host: Host,
    outside: PathBuf,
    before: (Vec<u8>, SystemTime),
}

impl LinkedPool {
    fn new() -> LinkedPool {
        let host = Host::new();
        host.ok(&["pool-list"]);
        let outside = host.home().join("outside.raw");
        std::fs::write(&outside, vec![0xab; 1 << 20]).expect("outside file");
        std::os::unix::fs::symlink(&outside, host.pool().join("link.raw")).expect("symlink");
        let before = LinkedPool::look(&outside);
        LinkedPool {
            host,
            outside,
            before,
        }
    }

    fn look(path: &Path) -> (Vec<u8>, SystemTime) {
        let meta = std::fs::metadata(path).expect("stat");
        (
            std::fs::read(path).expect("read"),
            meta.modified().expect("mtime"),
        )
    }

    /// Runs a verb that must be refused for the link, naming it, and checks the outside file.
    fn refused(&self, args: &[&str], why: &str) {
        let err = self.host.fails(args);
        assert!(err.contains(why), "vmux {args:?}: {err}");
        assert!(
            LinkedPool::look(&self.outside) == self.before,
            "vmux {args:?} changed the file outside the pool"
        );
        assert!(
            self.host
                .pool()
                .join("link.raw")
                .symlink_metadata()
                .expect("the link")
                .is_symlink()
        );
    }
}

#[test]
fn no_volume_verb_follows_a_symlink_out_of_the_pool() {
    let pool = LinkedPool::new();
    let home = pool.host.home();
    let file = home.join("upload.raw");
    std::fs::write(&file, vec![0x11; 4096]).expect("upload source");
    let file = file.to_str().expect("utf-8 path");
    let download = home.join("download.raw");
    let download = download.to_str().expect("utf-8 path");
    let link = "symbolic link";

    pool.refused(&["vol-wipe", "default", "link.raw"], link);
    pool.refused(&["vol-resize", "default", "link.raw", "2M"], link);
    pool.refused(&["vol-resize", "default", "link.raw", "+1M"], link);
    pool.refused(&["vol-delete", "default", "link.raw"], link);
    pool.refused(&["vol-upload", "default", "link.raw", file], link);
    pool.refused(&["vol-download", "default", "link.raw", download], link);
    pool.refused(&["vol-clone", "default", "link.raw", "copy.raw"], link);
    pool.refused(
        &["vol-clone", "default", "link.raw", "lc.qcow2", "--linked"],
        link,
    );
    pool.refused(&["vol-convert", "default", "link.raw", "conv.qcow2"], link);
    pool.refused(&["vol-info", "default", "link.raw"], link);
    pool.refused(&["vol-set-format", "default", "link.raw", "raw"], link);
    pool.refused(
        &["vol-create-as", "default", "link.raw", "1M"],
        "already exists",
    );
    assert!(!Path::new(download).exists());

    // Made as a new volume's name, the link is never written through either.
    pool.host
        .ok(&["vol-create-as", "default", "real.raw", "1M"]);
    pool.refused(
        &["vol-convert", "default", "real.raw", "link.raw"],
        "already exists",
    );
    pool.refused(
        &["vol-clone", "default", "real.raw", "link.raw"],
        "already exists",
    );
}

#[test]
fn vol_list_shows_a_symlink_as_a_link_that_is_not_used() {
    let pool = LinkedPool::new();

    let list = pool.host.ok(&["vol-list", "default"]);
    let json = pool.host.json(&["vol-list", "default", "--json"]);

    let line = list
        .lines()
        .find(|l| l.contains("link.raw"))
        .unwrap_or_else(|| panic!("link.raw is not listed: {list}"));
    assert!(line.contains("symlink"), "{line}");
    assert!(line.contains("not used"), "{line}");
    assert!(
        line.contains(pool.outside.to_str().expect("utf-8")),
        "{line}"
    );
    let entry = json
        .as_array()
        .and_then(|entries| entries.iter().find(|e| e["name"] == "link.raw"))
        .expect("the link in the JSON listing");
    assert_eq!(entry["symlink"], pool.outside.to_str().expect("utf-8"));
}

#[test]
fn a_vm_disk_that_is_a_symlink_is_refused_at_start() {
    if !met(&[Need::Kvm]) {
        return;
    }
    let pool = LinkedPool::new();
    let blk = guest("blk");
    write_definition(
        &pool.host,
        "web",
        &blk,
        "[[disks]]\npool = \"default\"\nvolume = \"link.raw\"\nformat = \"raw\"\n",
    );

    pool.refused(&["start", "web"], "symbolic link");
    let by_path = format!("{},format=raw", pool.host.pool().join("link.raw").display());
    pool.refused(
        &[
            "create",
            "web2",
            "--kernel",
            blk.to_str().expect("utf-8 path"),
            "--disk",
            &by_path,
        ],
        "symbolic link",
    );
}
