//! A network namespace per test, with its own `VMUX_HOME`, for tests that run real networks and
//! VMs through the `vmux` binary: names carry the test process's pid and a counter, so no two
//! runs (or a user's own vmux) share a bridge, TAP, nft table or namespace; on drop every
//! process in the namespace (vmd, dnsmasq) is killed and the namespace deleted, even when the
//! test failed. What these tests need from the machine is [`NEEDS`] (tests/common/prereq.rs).

use super::prereq::Need;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the namespace tests need: root (CAP_NET_ADMIN, and CAP_SYS_ADMIN for `ip netns`),
/// /dev/kvm, and `ip`, `nft`, `dnsmasq` and `bash`.
pub const NEEDS: [Need; 6] = [
    Need::NetAdmin,
    Need::Kvm,
    super::prereq::IP,
    super::prereq::NFT,
    super::prereq::DNSMASQ,
    Need::program("bash", "bash"),
];

const VMUX: &str = env!("CARGO_BIN_EXE_vmux");
/// How long a guest may take from `vmux start` to a console line.
const GUEST_TIMEOUT_S: &str = "90";

/// A network namespace with its own `VMUX_HOME`.
pub struct Env {
    /// The namespace's name.
    pub ns: String,
    /// The vmux home (removed on drop).
    pub home: tempfile::TempDir,
}

impl Env {
    /// A fresh namespace (loopback up) named after `tag`.
    pub fn new(tag: &str) -> Env {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let ns = format!(
            "vmuxs-{}-{}-{tag}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        run_ok(Command::new("ip").args(["netns", "add", &ns]));
        let env = Env {
            ns,
            home: tempfile::tempdir().expect("tempdir"),
        };
        env.sh("ip link set lo up");
        env
    }

    /// `program` run inside the namespace with this home.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns, program]);
        command.env("VMUX_HOME", self.home.path());
        command
    }

    /// Runs a shell line in the namespace; panics on failure; returns stdout.
    pub fn sh(&self, line: &str) -> String {
        text(&run_ok(self.command("sh").args(["-c", line])).stdout)
    }

    /// Runs `vmux args...` in the namespace.
    pub fn vmux(&self, args: &[&str]) -> Output {
        self.command(VMUX).args(args).output().expect("run vmux")
    }

    /// Runs `vmux args...`, failing the test unless it succeeds; returns stdout.
    pub fn vmux_ok(&self, args: &[&str]) -> String {
        let output = self.vmux(args);
        assert!(
            output.status.success(),
            "vmux {args:?} failed: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// Where vmux keeps a network's state files.
    pub fn network_dir(&self, network: &str) -> PathBuf {
        self.home.path().join("state/networks").join(network)
    }

    /// Creates VM `vm` running the guest-kit `net` program with one NIC on `network`, starts
    /// it and returns its console once the guest has pinged its gateway.
    pub fn start_net_guest(&self, vm: &str, network: &str) -> String {
        let guest = Path::new(env!("VMUX_GUEST_DIR")).join("net.elf");
        self.vmux_ok(&[
            "create",
            vm,
            "--kernel",
            guest.to_str().expect("utf-8 path"),
            "--memory",
            "64M",
            "--network",
            network,
        ]);
        self.vmux_ok(&["start", vm]);
        self.console_until(vm, r"net: gateway \S+ (replied|did not reply)")
    }

    /// The VM's console (history included) once it matches `pattern`.
    pub fn console_until(&self, vm: &str, pattern: &str) -> String {
        let console = self.vmux(&[
            "console",
            vm,
            "--until",
            pattern,
            "--timeout",
            GUEST_TIMEOUT_S,
        ]);
        let out = text(&console.stdout).replace('\r', "");
        assert!(
            console.status.success(),
            "the console never showed {pattern:?}: {out}{}",
            text(&console.stderr)
        );
        out
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
        {
            for pid in text(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Runs `command`, failing the test unless it succeeds.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command.output().expect("spawn");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        text(&output.stderr)
    );
    output
}

/// Bytes as (lossy) text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `(lease, gateway)` from the `net` guest's `net: lease <ip> gateway <gw>` line.
pub fn lease_line(console: &str) -> (String, String) {
    let line = console
        .lines()
        .find_map(|l| l.strip_prefix("net: lease "))
        .unwrap_or_else(|| panic!("no lease line in {console}"));
    let mut words = line.split_whitespace();
    let ip = words.next().expect("ip").to_string();
    assert_eq!(words.next(), Some("gateway"), "{line}");
    (ip, words.next().expect("gateway").to_string())
}
