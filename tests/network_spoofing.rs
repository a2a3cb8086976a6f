//! Anti-spoofing and dnsmasq's privileges on real vmux networks (docs/security.md,
//! "Networks"), inside a network namespace each test creates: a guest-kit `net` guest gets its
//! lease from a dnsmasq that serves as an unprivileged user, its own traffic passes, and the
//! frames it sends with a forged source address (IP, MAC, ARP) never reach the host; with the
//! anti-spoofing table removed by hand the same frames do arrive, which shows that the guest
//! sent them and that the table is what stopped them. The table follows the TAP: entered when
//! the VM starts, taken out by the next network command once it has stopped.
//!
//! Needs root, /dev/kvm, `ip`, `nft`, `dnsmasq` and `bash`; without them each test skips,
//! saying what is missing, or fails under CI (tests/common/prereq.rs).

mod common;

use common::netns::{Env, NEEDS, lease_line};
use common::prereq::met;
use std::time::Duration;

/// Packets counted by the test's own table (`table bridge watch`, input hook: what the host
/// receives on the bridge), by rule comment.
fn counters(env: &Env) -> Vec<(String, u64)> {
    env.sh("nft list table bridge watch")
        .lines()
        .filter_map(|line| {
            let packets = line
                .split_whitespace()
                .skip_while(|w| *w != "packets")
                .nth(1)?
                .parse()
                .ok()?;
            let name = line.split('"').nth(1)?.to_string();
            Some((name, packets))
        })
        .collect()
}

fn count(counters: &[(String, u64)], name: &str) -> u64 {
    counters
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| panic!("no counter {name} in {counters:?}"))
}

/// Asks the guest for the spoof test and waits for its `n`th report; returns the counters.
fn spoof(env: &Env, vm: &str, ip: &str, n: usize) -> Vec<(String, u64)> {
    env.sh(&format!("bash -c 'echo spoof > /dev/udp/{ip}/5004'"));
    let pattern = format!("(?s)(net: spoof test sent.*){{{n}}}");
    env.console_until(vm, &pattern);
    // The frames are on their way once the guest has queued them; give the bridge a moment.
    std::thread::sleep(Duration::from_millis(500));
    counters(env)
}

#[test]
fn a_guest_can_send_only_from_its_own_mac_and_leased_address() {
    if !met(&NEEDS) {
        return;
    }
    let env = Env::new("spoof");
    env.vmux_ok(&[
        "net-define-as",
        "lab",
        "--mode",
        "isolated",
        "--subnet",
        "10.79.0.0/24",
    ]);
    env.vmux_ok(&["net-start", "lab"]);
    let table = "vmux_guard_lab";

    // Own traffic passes: DHCP from 0.0.0.0, ARP and ping from the leased address.
    let console = env.start_net_guest("web1", "lab");
    let (ip, gateway) = lease_line(&console);
    assert!(
        console.contains(&format!("net: gateway {gateway} replied")),
        "{console}"
    );
    let mut forged_ip: Vec<u8> = ip.split('.').map(|o| o.parse().expect("octet")).collect();
    forged_ip[3] ^= 0x80;
    let forged_ip = format!(
        "{}.{}.{}.{}",
        forged_ip[0], forged_ip[1], forged_ip[2], forged_ip[3]
    );
    env.sh(&format!(
        "nft -f - <<'EOF'\n\
         table bridge watch {{\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority 0; policy accept;\n\
         \t\tudp dport 7001 counter comment \"own\"\n\
         \t\tudp dport 7002 counter comment \"forged-ip\"\n\
         \t\tudp dport 7003 counter comment \"forged-mac\"\n\
         \t\tarp saddr ip {forged_ip} counter comment \"forged-arp\"\n\
         \t}}\n\
         }}\n\
         EOF"
    ));

    // The TAP is in the table with its MAC, and dnsmasq's hook entered the lease.
    let ports = env.sh(&format!("nft list set bridge {table} ports"));
    assert!(ports.contains("\"vm-web1-0\" . 52:54:00:"), "{ports}");
    let leases = env.sh(&format!("nft list set bridge {table} leases"));
    assert!(leases.contains(&format!(". {ip}")), "{leases}");

    let counted = spoof(&env, "web1", &ip, 1);
    assert_eq!(count(&counted, "own"), 1, "{counted:?}");
    assert_eq!(count(&counted, "forged-ip"), 0, "{counted:?}");
    assert_eq!(count(&counted, "forged-mac"), 0, "{counted:?}");
    assert_eq!(count(&counted, "forged-arp"), 0, "{counted:?}");

    // Without the table the very same frames arrive: the guest did send them.
    env.sh(&format!("nft delete table bridge {table}"));
    let counted = spoof(&env, "web1", &ip, 2);
    assert_eq!(count(&counted, "own"), 2, "{counted:?}");
    assert_eq!(count(&counted, "forged-ip"), 1, "{counted:?}");
    assert_eq!(count(&counted, "forged-mac"), 1, "{counted:?}");
    assert!(count(&counted, "forged-arp") >= 1, "{counted:?}");

    // The next vmux command restores the table, with the running TAP and its lease.
    let out = env.vmux(&["net-list"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("restored"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counted = spoof(&env, "web1", &ip, 3);
    assert_eq!(count(&counted, "own"), 3, "{counted:?}");
    assert_eq!(count(&counted, "forged-ip"), 1, "{counted:?}");
    assert_eq!(count(&counted, "forged-mac"), 1, "{counted:?}");

    // The TAP leaves the table once the VM is gone (by the next network command; vmd itself
    // never runs nft).
    env.vmux_ok(&["destroy", "web1"]);
    env.vmux_ok(&["net-list"]);
    let ports = env.sh(&format!("nft list set bridge {table} ports"));
    assert!(!ports.contains("vm-web1-0"), "{ports}");
    let taps = env.sh(&format!("nft list set bridge {table} taps"));
    assert!(!taps.contains("vm-web1-0"), "{taps}");
    env.sh("nft delete table bridge watch");
    env.vmux_ok(&["net-destroy", "lab"]);
    assert!(
        !env.sh("nft list tables").contains(table),
        "the table goes with the network"
    );
}

#[test]
fn dnsmasq_serves_as_an_unprivileged_user_and_still_hands_out_leases() {
    if !met(&NEEDS) {
        return;
    }
    let env = Env::new("dnsuser");
    env.vmux_ok(&[
        "net-define-as",
        "lab",
        "--mode",
        "isolated",
        "--subnet",
        "10.80.0.0/24",
    ]);
    env.vmux_ok(&["net-start", "lab"]);
    let dir = env.network_dir("lab");
    let pid = std::fs::read_to_string(dir.join("dnsmasq.pid")).expect("pid file");
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).expect("status");
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("effective uid");
    assert_ne!(uid, 0, "dnsmasq runs as root: {status}");
    let leases = dir.join("leases");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&leases).expect("leases"));
    assert_eq!(owner, uid, "the lease file belongs to dnsmasq's user");

    let console = env.start_net_guest("db1", "lab");
    let (ip, _) = lease_line(&console);
    let text = std::fs::read_to_string(&leases).expect("lease file");
    assert!(
        text.contains(&ip),
        "the unprivileged dnsmasq wrote the lease: {text}"
    );
    env.vmux_ok(&["destroy", "db1"]);
    env.vmux_ok(&["net-destroy", "lab"]);
}

#[test]
fn a_network_started_before_anti_spoofing_gets_its_table_and_a_dnsmasq_with_the_hook() {
    if !met(&NEEDS) {
        return;
    }
    let env = Env::new("upgrade");
    env.vmux_ok(&[
        "net-define-as",
        "lab",
        "--mode",
        "isolated",
        "--subnet",
        "10.81.0.0/24",
    ]);
    env.vmux_ok(&["net-start", "lab"]);
    // What an older vmux left: no table, no record of one, a dnsmasq without the hook.
    let dir = env.network_dir("lab");
    let active = dir.join("active.json");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&active).expect("record")).expect("json");
    record
        .as_object_mut()
        .expect("an object")
        .remove("guard_table");
    std::fs::write(&active, record.to_string()).expect("write record");
    env.sh("nft delete table bridge vmux_guard_lab");
    let old_pid = std::fs::read_to_string(dir.join("dnsmasq.pid")).expect("pid");

    let out = env.vmux(&["net-list"]);

    let notes = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(notes.contains("added the anti-spoofing table"), "{notes}");
    assert!(notes.contains("restarted dnsmasq"), "{notes}");
    assert!(env.sh("nft list tables bridge").contains("vmux_guard_lab"));
    let new_pid = std::fs::read_to_string(dir.join("dnsmasq.pid")).expect("pid");
    assert_ne!(old_pid, new_pid);
    let cmdline =
        std::fs::read(format!("/proc/{}/cmdline", new_pid.trim())).expect("dnsmasq cmdline");
    assert!(
        String::from_utf8_lossy(&cmdline).contains("--dhcp-script="),
        "the new dnsmasq has the lease hook"
    );
    env.vmux_ok(&["net-destroy", "lab"]);
}
