//! VMs on networks, end to end: the real `vmux` binary starts the guest kit's `net` program
//! (tests/guests/net.rs) on /dev/kvm with a virtio-net NIC on a TAP, inside network
//! namespaces each test creates and deletes again, even when it fails. The guest gets a lease
//! from dnsmasq, vmux reports its address, the namespace pings it and the guest pings its
//! gateway. No packet leaves the test namespaces.
//!
//! They need root (CAP_NET_ADMIN, and CAP_SYS_ADMIN for `ip netns`), /dev/kvm, `ip`, `nft`,
//! `dnsmasq` and busybox (`ping`); where anything is missing each test skips, saying what,
//! or fails under CI (tests/common/prereq.rs).

mod common;

use common::prereq::{BUSYBOX, DNSMASQ, IP, NFT, Need, met};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const VMUX: &str = env!("CARGO_BIN_EXE_vmux");
/// How long the guest may take from `vmux start` to pinging its gateway.
const GUEST_TIMEOUT_S: &str = "90";

fn net_guest() -> PathBuf {
    Path::new(env!("VMUX_GUEST_DIR")).join("net.elf")
}

/// A network namespace with its own `VMUX_HOME`; on drop every process in it (vmd,
/// dnsmasq) is killed and the namespace deleted.
struct Env {
    ns: String,
    home: tempfile::TempDir,
}

impl Env {
    fn new(tag: &str) -> Env {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let ns = format!(
            "vmuxv-{}-{}-{tag}",
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

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns, program]);
        command.env("VMUX_HOME", self.home.path());
        command
    }

    /// Runs a shell line in the namespace; panics on failure; returns stdout.
    fn sh(&self, line: &str) -> String {
        text(&run_ok(self.command("sh").args(["-c", line])).stdout)
    }

    fn vmux(&self, args: &[&str]) -> Output {
        self.command(VMUX).args(args).output().expect("run vmux")
    }

    fn vmux_ok(&self, args: &[&str]) -> String {
        let output = self.vmux(args);
        assert!(
            output.status.success(),
            "vmux {args:?} failed: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.vmux_ok(args)).expect("JSON output")
    }

    /// Link names, addresses and the nftables ruleset: what a test must leave as it found.
    /// (Not link states: a bridge whose last port left reads NO-CARRIER where a fresh one
    /// read UNKNOWN.)
    fn snapshot(&self) -> String {
        self.sh(
            "ip -o link | awk '{print $2}'; ip -o addr | awk '{print $2, $4}'; nft list ruleset",
        )
    }

    fn has_link(&self, name: &str) -> bool {
        self.sh("ip -br link")
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name))
    }

    fn tap_records(&self) -> usize {
        std::fs::read_dir(self.home.path().join("state/taps"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Creates VM `vm` running the `net` guest with one NIC on `network` and starts it;
    /// returns its console up to the gateway ping, once the guest reports it.
    fn start_net_guest(&self, vm: &str, network: &str) -> String {
        let guest = net_guest();
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
    fn console_until(&self, vm: &str, pattern: &str) -> String {
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
            "the guest did not get through DHCP and the gateway ping: {out}{}",
            text(&console.stderr)
        );
        out
    }

    /// Polls `domifaddr` until it shows an address (ARP-learnt ones appear late).
    fn domifaddr(&self, vm: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let value = self.json(&["domifaddr", vm, "--json"]);
            if !value[0]["ip"].is_null() || Instant::now() > deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
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

fn run_ok(command: &mut Command) -> Output {
    let output = command.output().expect("spawn");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        text(&output.stderr)
    );
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `(lease, gateway)` from the guest's `net: lease <ip> gateway <gw>` line.
fn lease_line(console: &str) -> (String, String) {
    let line = console
        .lines()
        .find_map(|l| l.strip_prefix("net: lease "))
        .unwrap_or_else(|| panic!("no lease line in {console}"));
    let mut words = line.split_whitespace();
    let ip = words.next().expect("ip").to_string();
    assert_eq!(words.next(), Some("gateway"), "{line}");
    (ip, words.next().expect("gateway").to_string())
}

/// Everything a user checks once the guest is up: vmux reports the lease, the namespace
/// pings the guest, the guest pinged its gateway, the NIC counted frames; then destroying
/// the VM removes its TAP.
fn check_guest_on_network(env: &Env, vm: &str, console: &str, subnet_prefix: &str) -> String {
    let (ip, gateway) = lease_line(console);
    assert!(ip.starts_with(subnet_prefix), "lease {ip}: {console}");
    assert!(
        console.contains(&format!("net: gateway {gateway} replied")),
        "{console}"
    );

    let addresses = env.domifaddr(vm);
    assert_eq!(addresses[0]["ip"], ip.as_str(), "{addresses}");
    assert_eq!(addresses[0]["tap"], format!("vm-{vm}-0"), "{addresses}");
    let list = env.json(&["list", "--json"]);
    assert_eq!(list["vms"][0]["nics"][0]["ip"], ip.as_str(), "{list}");
    let info = env.vmux_ok(&["info", vm]);
    assert!(info.contains(&ip), "{info}");

    let ping = env
        .command("busybox")
        .args(["ping", "-c", "1", "-W", "2", &ip])
        .output()
        .expect("ping");
    assert!(ping.status.success(), "ping {ip}: {}", text(&ping.stdout));

    // The sampler runs once a second.
    std::thread::sleep(Duration::from_millis(1100));
    let stats = env.json(&["stats", vm, "--json"]);
    let nic = &stats["nics"][0];
    assert!(nic["rx_packets"].as_u64() >= Some(3), "{stats}");
    assert!(nic["tx_packets"].as_u64() >= Some(4), "{stats}");
    assert_eq!(nic["tx_dropped"], 0, "{stats}");

    assert!(env.has_link(&format!("vm-{vm}-0")));
    env.vmux_ok(&["destroy", vm]);
    assert!(!env.has_link(&format!("vm-{vm}-0")), "the TAP is gone");
    assert_eq!(env.tap_records(), 0, "its record is gone");
    ip
}

#[test]
fn a_guest_on_a_nat_network_gets_a_lease_and_answers_pings() {
    if !met(&[Need::NetAdmin, IP, NFT, DNSMASQ, BUSYBOX, Need::Kvm]) {
        return;
    }
    let env = Env::new("nat");
    let before = env.snapshot();
    env.vmux_ok(&["net-start", "default"]);

    env.start_net_guest("web1", "default");
    // A reset boots a new machine on the same TAP: the guest gets its lease again.
    env.vmux_ok(&["reset", "web1"]);
    let console = env.console_until(
        "web1",
        r"(?s)net: gateway \S+ replied.*net: gateway \S+ replied",
    );

    check_guest_on_network(&env, "web1", &console, "192.168.123.");
    env.vmux_ok(&["net-destroy", "default"]);
    assert_eq!(env.snapshot(), before, "the namespace is as it was");
}

#[test]
fn a_guest_on_an_isolated_network_pings_the_dhcp_server() {
    if !met(&[Need::NetAdmin, IP, NFT, DNSMASQ, BUSYBOX, Need::Kvm]) {
        return;
    }
    let env = Env::new("iso");
    let before = env.snapshot();
    env.vmux_ok(&[
        "net-define-as",
        "lab",
        "--mode",
        "isolated",
        "--subnet",
        "10.77.0.0/24",
    ]);
    env.vmux_ok(&["net-start", "lab"]);

    let console = env.start_net_guest("db1", "lab");

    // No router on an isolated network: the guest's gateway is the DHCP server.
    assert!(console.contains("gateway 10.77.0.1"), "{console}");
    check_guest_on_network(&env, "db1", &console, "10.77.0.");
    env.vmux_ok(&["net-destroy", "lab"]);
    assert_eq!(env.snapshot(), before, "the namespace is as it was");
}

#[test]
fn a_guest_on_a_bridge_network_is_found_through_arp() {
    if !met(&[Need::NetAdmin, IP, NFT, DNSMASQ, BUSYBOX, Need::Kvm]) {
        return;
    }
    let env = Env::new("br");
    // A "LAN": a bridge with an address and a DHCP server, as a host's br0 would have.
    env.sh(
        "ip link add br0 type bridge && ip address add 10.88.0.1/24 dev br0 && ip link set br0 up",
    );
    let home = env.home.path().display().to_string();
    env.sh(&format!(
        "dnsmasq --conf-file=/dev/null --port=0 --interface=br0 --bind-interfaces \
         --except-interface=lo --dhcp-range=10.88.0.50,10.88.0.99,255.255.255.0 \
         --dhcp-leasefile={home}/lan.leases --pid-file={home}/lan.pid"
    ));
    let before = env.snapshot();
    env.vmux_ok(&[
        "net-define-as",
        "lan",
        "--mode",
        "bridge",
        "--bridge",
        "br0",
    ]);
    env.vmux_ok(&["net-start", "lan"]);

    let console = env.start_net_guest("web2", "lan");

    let ip = check_guest_on_network(&env, "web2", &console, "10.88.0.");
    assert_eq!(lease_line(&console).1, "10.88.0.1");
    assert!(!ip.is_empty());
    env.vmux_ok(&["net-destroy", "lan"]);
    assert!(env.has_link("br0"), "the host's bridge stays");
    assert_eq!(env.snapshot(), before, "the namespace is as it was");
}

#[test]
fn starting_a_vm_whose_network_is_inactive_names_net_start_and_leaves_nothing() {
    if !met(&[Need::NetAdmin, IP, NFT, DNSMASQ, BUSYBOX, Need::Kvm]) {
        return;
    }
    let env = Env::new("inactive");
    let guest = net_guest();
    env.vmux_ok(&[
        "create",
        "web3",
        "--kernel",
        guest.to_str().expect("utf-8 path"),
        "--network",
        "default",
    ]);
    let before = env.snapshot();

    let output = env.vmux(&["start", "web3"]);

    assert!(!output.status.success());
    let err = text(&output.stderr);
    assert!(
        err.contains("network 'default' is not active") && err.contains("vmux net-start default"),
        "{err}"
    );
    assert_eq!(env.snapshot(), before, "no TAP or bridge was left behind");
    assert_eq!(env.tap_records(), 0);
    let list = env.json(&["list", "--all", "--json"]);
    assert_eq!(list["vms"][0]["state"], "shut_off", "{list}");
}

#[test]
fn a_forbidden_call_on_a_net_worker_ends_vmd_with_the_reason() {
    if !met(&[Need::NetAdmin, IP, NFT, DNSMASQ, BUSYBOX, Need::Kvm]) {
        return;
    }
    let env = Env::new("seccomp");
    let before = env.snapshot();
    env.vmux_ok(&["net-start", "default"]);
    let guest = net_guest();
    env.vmux_ok(&[
        "create",
        "web1",
        "--kernel",
        guest.to_str().expect("utf-8 path"),
        "--memory",
        "64M",
        "--network",
        "default",
    ]);
    // The test hook (docs/security.md): the first net worker calls `sysinfo`, which its
    // seccomp filter forbids, once the guest activates the NIC.
    let _ = env
        .command(VMUX)
        .args(["start", "web1"])
        .env("VMUX_TEST_SECCOMP_VIOLATION", "net")
        .output()
        .expect("run vmux");

    let deadline = Instant::now() + Duration::from_secs(60);
    let info = loop {
        let info = env.json(&["info", "web1", "--json"]);
        if info["state"] != "running" || Instant::now() > deadline {
            break info;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(info["state"], "crashed", "{info}");
    let reason = info["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("blocked system call 99 (sysinfo) on thread net0"),
        "{reason}"
    );
    env.vmux_ok(&["net-destroy", "default"]);
    assert_eq!(env.snapshot(), before, "the namespace is as it was");
}
