//! Network end-to-end tests: the real `vmux` binary, `ip`, `nft`, `dnsmasq` and busybox
//! `udhcpc`, all inside network namespaces each test creates (`ip netns add`) and deletes
//! again, even when it fails. Nothing runs in the host's namespace and no packet leaves the
//! test namespaces.
//!
//! They need root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns`) and those programs; where
//! anything is missing each test skips, saying what, or fails under CI
//! (tests/common/prereq.rs).
//!
//! TAPs are created by this test binary re-run inside the namespace as a "holder" (the
//! ignored `tap_holder` test), standing in for vmd: it attaches a VM's NICs, prints the TAP
//! names and keeps them open until its stdin closes or it is killed.

mod common;

use common::prereq::{NETWORK, met};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use vmux::config::{Paths, Store};
use vmux::network::NetworkManager;

const VMUX: &str = env!("CARGO_BIN_EXE_vmux");

/// A network namespace that is deleted (with every process still in it) on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "vmuxt-{}-{}-{tag}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.sh("ip link set lo up");
        ns
    }

    /// A command that runs `program` inside the namespace.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs a shell line in the namespace and returns its stdout; panics on failure.
    fn sh(&self, line: &str) -> String {
        let output = run_ok(self.command("sh").args(["-c", line]));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// What the namespace looks like: links, addresses, nftables ruleset.
    fn snapshot(&self) -> String {
        self.sh("ip -br link; ip -br addr; nft list ruleset")
    }

    /// The `ip -j -d link` entry of `name`, if it exists.
    fn link(&self, name: &str) -> Option<Value> {
        let links: Value = serde_json::from_str(&self.sh("ip -j -d link show")).expect("json");
        links
            .as_array()
            .expect("array")
            .iter()
            .find(|l| l["ifname"] == name)
            .cloned()
    }

    fn nft_tables(&self) -> String {
        self.sh("nft list tables")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // dnsmasq and holders would keep the namespace alive after `ip netns del`.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A namespace plus a `VMUX_HOME` to run vmux in.
struct Env {
    ns: Netns,
    home: tempfile::TempDir,
}

impl Env {
    fn new(tag: &str) -> Env {
        Env {
            ns: Netns::new(tag),
            home: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn vmux_command(&self, args: &[&str]) -> Command {
        let mut command = self.ns.command(VMUX);
        command.args(args).env("VMUX_HOME", self.home.path());
        command
    }

    /// Runs vmux in the namespace.
    fn vmux(&self, args: &[&str]) -> Output {
        self.vmux_command(args).output().expect("run vmux")
    }

    /// Runs vmux and expects success; returns stdout.
    fn vmux_ok(&self, args: &[&str]) -> String {
        let output = self.vmux(args);
        assert!(
            output.status.success(),
            "vmux {args:?} failed: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// Runs vmux and expects failure; returns stderr.
    fn vmux_err(&self, args: &[&str]) -> String {
        let output = self.vmux(args);
        assert!(
            !output.status.success(),
            "vmux {args:?} unexpectedly succeeded: {}",
            text(&output.stdout)
        );
        text(&output.stderr)
    }

    fn info(&self, network: &str) -> Value {
        serde_json::from_str(&self.vmux_ok(&["net-info", network, "--json"])).expect("json")
    }

    fn paths(&self) -> Paths {
        Paths::under(self.home.path())
    }

    /// Writes a VM definition with one NIC, as `vmux create --network` would.
    fn define_vm(&self, name: &str, network: &str, mac: &str) {
        let text = format!(
            "name = \"{name}\"\nvcpus = 1\nmax_vcpus = 4\nmemory = \"256M\"\n\n[boot]\nsource = \"demo\"\n\n[[nics]]\nnetwork = \"{network}\"\nmac = \"{mac}\"\n"
        );
        let path = self.paths().vm_file(name);
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(path, text).expect("write definition");
    }

    fn tap_records(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.paths().state.join("taps"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }

    /// Attaches a client namespace to `bridge` through a veth pair whose client end has
    /// `mac`, and runs busybox udhcpc there; returns what its script saw
    /// (`bound ip=... router=...`).
    fn dhcp_client(&self, bridge: &str, mac: &str, script_dir: &Path) -> (Netns, String) {
        let client = Netns::new("client");
        self.ns.sh(&format!(
            "ip link add vmxc0 type veth peer name eth0 netns {client} && ip link set vmxc0 master {bridge} up",
            client = client.name
        ));
        client.sh(&format!("ip link set eth0 address {mac} up"));
        let script = script_dir.join("udhcpc.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = bound ] && echo \"bound ip=$ip router=$router\"\nexit 0\n",
        )
        .expect("script");
        run_ok(Command::new("chmod").arg("+x").arg(&script));
        let seen = client.sh(&format!(
            "busybox udhcpc -i eth0 -n -q -f -t 10 -T 1 -s {}",
            script.display()
        ));
        (client, seen)
    }
}

/// A vmd stand-in holding a VM's TAPs inside a namespace.
struct Holder {
    child: Child,
    /// Kept open (and drained at the end) so the holder's last words do not hit EPIPE.
    output: BufReader<ChildStdout>,
    taps: Vec<String>,
}

impl Holder {
    fn start(env: &Env, vm: &str) -> Holder {
        let exe = std::env::current_exe().expect("test binary");
        let mut child = env
            .ns
            .command(exe.to_str().expect("utf-8 path"))
            .args(["tap_holder", "--exact", "--ignored", "--nocapture"])
            .env("VMUX_HOME", env.home.path())
            .env("VMUX_TEST_TAP_HOLDER", vm)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn holder");
        let mut output = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let taps = loop {
            line.clear();
            if output.read_line(&mut line).expect("read holder output") == 0 {
                let status = child.wait().expect("wait");
                panic!("the TAP holder exited ({status}) without attaching");
            }
            if let Some(names) = line.trim_end().strip_prefix("TAPS ") {
                break names.split(',').map(str::to_string).collect();
            }
        };
        Holder {
            child,
            output,
            taps,
        }
    }

    /// Closes stdin: the holder drops its TAPs and exits.
    fn release(mut self) {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        let _ = self.output.read_to_string(&mut rest);
        let status = self.child.wait().expect("wait holder");
        assert!(status.success(), "holder failed: {status}");
    }

    /// Kills the holder like a crashed vmd.
    fn kill(mut self) {
        self.child.kill().expect("kill holder");
        self.child.wait().expect("wait holder");
    }
}

/// Not a test on its own: the TAP holder run by [`Holder::start`] inside a namespace.
#[test]
#[ignore = "helper process for the TAP tests; does nothing unless VMUX_TEST_TAP_HOLDER is set"]
fn tap_holder() {
    let Ok(vm) = std::env::var("VMUX_TEST_TAP_HOLDER") else {
        return;
    };
    let paths = Paths::from_env().expect("paths");
    let manager = NetworkManager::open(&paths).expect("open networks");
    let vm = Store::new(paths).load(&vm).expect("VM definition");
    let taps = manager.attach_vm(&vm).expect("attach NICs");
    let names: Vec<&str> = taps.iter().map(|t| t.name()).collect();
    println!("TAPS {}", names.join(","));
    std::io::stdout().flush().expect("flush");
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(taps);
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

fn process_cmdline(pid: u64) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(text(&raw).replace('\0', " "))
}

fn process_running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim().to_string()))
        .is_some_and(|rest| !rest.starts_with('Z'))
}

#[test]
fn nat_network_serves_dhcp_and_stopping_it_restores_the_namespace() {
    if !met(&NETWORK) {
        return;
    }
    let env = Env::new("nat");
    let before = env.ns.snapshot();

    let listed = env.vmux_ok(&["net-list", "--all"]);
    assert!(
        listed.contains("default") && listed.contains("inactive"),
        "{listed}"
    );
    env.vmux_ok(&["net-start", "default"]);

    let bridge = env.ns.link("vmux-default").expect("bridge exists");
    assert_eq!(bridge["linkinfo"]["info_kind"], "bridge");
    let addr = env.ns.sh("ip -br addr show dev vmux-default");
    assert!(addr.contains("192.168.123.1/24"), "{addr}");
    assert!(env.ns.nft_tables().contains("table ip vmux_default"));
    let info = env.info("default");
    assert_eq!(info["state"], "active");
    let pid = info["dnsmasq_pid"].as_u64().expect("dnsmasq pid");
    let cmdline = process_cmdline(pid).expect("dnsmasq runs");
    assert!(
        cmdline.contains("--interface=vmux-default") && cmdline.contains("--bind-interfaces"),
        "{cmdline}"
    );

    env.define_vm("web1", "default", "52:54:00:12:34:56");
    let (client, seen) = env.dhcp_client("vmux-default", "52:54:00:12:34:56", env.home.path());
    assert!(seen.contains("bound ip=192.168.123."), "{seen}");
    assert!(seen.contains("router=192.168.123.1"), "{seen}");
    let leased = seen
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ip="))
        .expect("leased address")
        .to_string();
    let domifaddr = env.vmux_ok(&["domifaddr", "web1"]);
    assert!(domifaddr.contains(&format!("{leased}/24")), "{domifaddr}");
    let info = env.info("default");
    assert_eq!(info["leases"][0]["mac"], "52:54:00:12:34:56");
    assert_eq!(info["vms"][0]["vm"], "web1");
    assert_eq!(info["vms"][0]["ip"], leased.as_str());
    drop(client);

    env.vmux_ok(&["net-destroy", "default"]);
    assert!(env.ns.link("vmux-default").is_none());
    assert!(!env.ns.nft_tables().contains("vmux_default"));
    assert!(!process_running(pid), "dnsmasq {pid} still runs");
    // ip_forward stays on by design (see network::host::enable_ip_forward); links,
    // addresses and rules are back to what they were.
    assert_eq!(env.ns.snapshot(), before);
}

#[test]
fn isolated_network_gives_leases_without_router_or_nat() {
    if !met(&NETWORK) {
        return;
    }
    let env = Env::new("iso");
    env.vmux_ok(&[
        "net-define-as",
        "lab",
        "--mode",
        "isolated",
        "--subnet",
        "10.77.0.0/24",
        "--dhcp-range",
        "10.77.0.100-10.77.0.200",
    ]);
    env.vmux_ok(&["net-start", "lab"]);
    assert!(env.ns.link("vmux-lab").is_some());
    assert!(!env.ns.nft_tables().contains("vmux_lab"), "no NAT table");

    let (_client, seen) = env.dhcp_client("vmux-lab", "52:54:00:00:00:07", env.home.path());
    let ip = seen
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ip="))
        .expect("leased");
    let last: u8 = ip
        .rsplit('.')
        .next()
        .and_then(|o| o.parse().ok())
        .expect("octet");
    assert!(
        ip.starts_with("10.77.0.") && (100..=200).contains(&last),
        "{seen}"
    );
    let router = seen
        .split_whitespace()
        .find_map(|w| w.strip_prefix("router="));
    assert_eq!(router, Some(""), "no default route offered: {seen}");

    env.vmux_ok(&["net-destroy", "lab"]);
    assert!(env.ns.link("vmux-lab").is_none());
}

#[test]
fn bridge_mode_joins_an_existing_bridge_and_leaves_it_in_place() {
    if !met(&NETWORK) {
        return;
    }
    let env = Env::new("br");
    env.ns
        .sh("ip link add br0 type bridge && ip link set br0 up");
    env.vmux_ok(&[
        "net-define-as",
        "lan",
        "--mode",
        "bridge",
        "--bridge",
        "br0",
    ]);
    env.vmux_ok(&["net-start", "lan"]);
    env.define_vm("web1", "lan", "52:54:00:00:01:01");

    let holder = Holder::start(&env, "web1");
    let tap = env.ns.link(&holder.taps[0]).expect("TAP exists");
    assert_eq!(tap["master"], "br0");
    holder.release();

    env.vmux_ok(&["net-destroy", "lan"]);
    assert!(env.ns.link("br0").is_some(), "the host's bridge stays");

    env.vmux_ok(&[
        "net-define-as",
        "ghost",
        "--mode",
        "bridge",
        "--bridge",
        "nosuch0",
    ]);
    let err = env.vmux_err(&["net-start", "ghost"]);
    assert!(err.contains("'nosuch0', which does not exist"), "{err}");
}

#[test]
fn tap_is_enslaved_and_up_and_blocks_destroy_until_its_vm_is_gone() {
    if !met(&NETWORK) {
        return;
    }
    let env = Env::new("tap");
    env.vmux_ok(&["net-start", "default"]);
    env.define_vm("web1", "default", "52:54:00:00:02:02");

    let holder = Holder::start(&env, "web1");
    assert_eq!(holder.taps, ["vm-web1-0"]);
    let tap = env.ns.link("vm-web1-0").expect("TAP exists");
    assert_eq!(tap["linkinfo"]["info_kind"], "tun");
    assert_eq!(tap["master"], "vmux-default");
    assert!(
        tap["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .any(|f| f == "UP"),
        "{tap}"
    );
    assert_eq!(env.info("default")["vms"][0]["tap"], "vm-web1-0");

    for verb in ["net-destroy", "net-undefine"] {
        let err = env.vmux_err(&[verb, "default"]);
        assert!(
            err.contains("in use by running VM(s) web1"),
            "{verb}: {err}"
        );
    }

    // A crashed vmd: the kernel drops the TAP, the next command drops the record.
    holder.kill();
    assert!(env.ns.link("vm-web1-0").is_none());
    assert_eq!(env.tap_records().len(), 1);
    env.vmux_ok(&["net-list"]);
    assert!(env.tap_records().is_empty());
    env.vmux_ok(&["net-destroy", "default"]);
}

#[test]
fn a_leftover_tap_of_a_dead_vmd_is_removed_on_the_next_command() {
    if !met(&NETWORK) {
        return;
    }
    let env = Env::new("stale");
    env.vmux_ok(&["net-list"]);
    // A persistent TAP with a record whose owner is gone (a pid above any pid_max).
    env.ns.sh("ip tuntap add dev vm-old-0 mode tap");
    let record = r#"{"tap":"vm-old-0","vm":"old","network":"default","mac":"52:54:00:00:03:03","owner":{"pid":999999999,"start_time":1}}"#;
    let taps = env.paths().state.join("taps");
    std::fs::create_dir_all(&taps).expect("mkdir");
    std::fs::write(taps.join("vm-old-0.json"), record).expect("record");

    let output = env.vmux(&["net-list"]);
    assert!(output.status.success());
    assert!(
        text(&output.stderr).contains("removed TAP vm-old-0 left behind by VM 'old'"),
        "{}",
        text(&output.stderr)
    );
    assert!(env.ns.link("vm-old-0").is_none());
    assert!(env.tap_records().is_empty());
}

#[test]
fn dead_dnsmasq_and_flushed_nft_table_are_restored_on_the_next_command() {
    if !met(&NETWORK) {
        return;
    }
    let env = Env::new("heal");
    env.vmux_ok(&["net-start", "default"]);
    let old = env.info("default")["dnsmasq_pid"].as_u64().expect("pid");
    run_ok(Command::new("kill").args(["-9", &old.to_string()]));
    env.ns.sh("nft delete table ip vmux_default");

    let output = env.vmux(&["net-list"]);
    let warnings = text(&output.stderr);
    assert!(warnings.contains("restarted it"), "{warnings}");
    assert!(warnings.contains("restored it"), "{warnings}");
    let new = env.info("default")["dnsmasq_pid"].as_u64().expect("pid");
    assert_ne!(new, old);
    assert!(process_running(new));
    assert!(env.ns.nft_tables().contains("vmux_default"));
    env.vmux_ok(&["net-destroy", "default"]);
}

#[test]
fn overlapping_subnets_are_refused_naming_the_conflict() {
    if !met(&NETWORK) {
        return;
    }
    let env = Env::new("overlap");
    // At definition: another vmux network's subnet, then a network the host routes.
    let err = env.vmux_err(&["net-define-as", "wide", "--subnet", "192.168.0.0/16"]);
    assert!(
        err.contains("overlaps network 'default' (192.168.123.0/24)"),
        "{err}"
    );
    env.ns.sh(
        "ip link add up0 type bridge && ip addr add 10.88.5.1/16 dev up0 && ip link set up0 up",
    );
    let err = env.vmux_err(&["net-define-as", "lan2", "--subnet", "10.88.7.0/24"]);
    assert!(err.contains("the host route 10.88.0.0/16 on up0"), "{err}");

    // A route that appears after the definition is caught when the network starts.
    env.vmux_ok(&["net-define-as", "lab", "--subnet", "10.77.0.0/24"]);
    env.ns.sh(
        "ip link add up1 type bridge && ip addr add 10.77.5.1/16 dev up1 && ip link set up1 up",
    );
    let err = env.vmux_err(&["net-start", "lab"]);
    assert!(err.contains("the host route 10.77.0.0/16 on up1"), "{err}");
    assert!(env.ns.link("vmux-lab").is_none(), "nothing created");
}

#[test]
fn a_failed_start_removes_everything_it_created() {
    if !met(&NETWORK) {
        return;
    }
    let env = Env::new("fail");
    let before = env.ns.snapshot();
    // A dnsmasq that refuses to start, found first on PATH.
    let bin = env.home.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::write(
        bin.join("dnsmasq"),
        "#!/bin/sh\necho 'dnsmasq: failed to create listening socket: Address in use' >&2\nexit 2\n",
    )
    .expect("fake dnsmasq");
    run_ok(Command::new("chmod").arg("+x").arg(bin.join("dnsmasq")));
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = env
        .vmux_command(&["net-start", "default"])
        .env("PATH", path)
        .output()
        .expect("run vmux");
    assert!(!output.status.success());
    let err = text(&output.stderr);
    assert!(
        err.contains("dnsmasq for network 'default' did not start")
            && err.contains("Address in use"),
        "{err}"
    );
    assert_eq!(
        env.ns.snapshot(),
        before,
        "bridge and nft table removed again"
    );
    assert!(env.vmux_ok(&["net-list", "--all"]).contains("inactive"));
}

#[test]
fn without_cap_net_admin_every_verb_says_which_capability_is_missing() {
    if !met(&NETWORK) {
        return;
    }
    let env = Env::new("cap");
    let capsh = Command::new("capsh").arg("--help").output().is_ok();
    for verb in [
        vec!["net-list", "--all"],
        vec!["net-start", "default"],
        vec!["net-info", "default"],
        vec!["domifaddr", "web1"],
    ] {
        let line = format!(
            "VMUX_HOME={} {VMUX} {}",
            env.home.path().display(),
            verb.join(" ")
        );
        let output = if capsh {
            env.ns
                .command("capsh")
                .args(["--drop=cap_net_admin", "--", "-c", &line])
                .output()
        } else {
            env.ns
                .command("setpriv")
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "sh",
                    "-c",
                    &line,
                ])
                .output()
        }
        .expect("run without CAP_NET_ADMIN");
        assert!(!output.status.success(), "{verb:?} succeeded");
        let err = text(&output.stderr);
        assert!(
            err.contains("need the CAP_NET_ADMIN capability")
                && err.contains("run the command as root"),
            "{verb:?}: {err}"
        );
    }
    assert!(env.ns.link("vmux-default").is_none());
}
