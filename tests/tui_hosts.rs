//! Many hosts in the TUI, headless: a second host served by its own fakes (what the SSH
//! connector hands over) beside the local one. The VM list with its HOST column, actions and
//! consoles routed to the selected VM's host, host states in the list, and the hosts pane
//! saving to vmux.toml.

#![allow(dead_code)]

mod common;

use common::tui::{Harness, status_text};
use crossterm::event::KeyCode;
use std::sync::Arc;
use vmux::client::Host;
use vmux::client::HostApi;
use vmux::client::fake::FakeHost;
use vmux::client::{FakeNetworks, FakeStorage};
use vmux::config::{BootConfig, VmConfig};
use vmux::protocol::RunState;
use vmux::tui::action::Action;
use vmux::tui::hosts::config::HostEntry;
use vmux::tui::hosts::id::HostId;
use vmux::tui::hosts::state::HostState;
use vmux::tui::settings::Settings;

fn remote_id() -> HostId {
    HostId::Remote("host2".into())
}

fn entry(name: &str) -> HostEntry {
    HostEntry {
        name: name.into(),
        uri: format!("ssh://admin@{name}"),
        autoconnect: true,
    }
}

/// A local host with VM `web` and a remote `host2` with its own `web` and `db`, connected.
fn two_hosts() -> (Harness, Arc<FakeHost>) {
    let local = FakeHost::with_vms([VmConfig::new("web", BootConfig::Demo)]);
    let mut harness = Harness::new(local);
    harness.app.hosts = vec![vmux::tui::hosts::state::RemoteHost {
        entry: entry("host2"),
        state: HostState::Connecting,
    }];
    let remote = Arc::new(FakeHost::with_vms([
        VmConfig::new("web", BootConfig::Demo),
        VmConfig::new("db", BootConfig::Demo),
    ]));
    let backends = HostApi {
        vms: remote.clone(),
        storage: Arc::new(FakeStorage::new()),
        networks: Arc::new(FakeNetworks::new()),
    };
    harness.connect_remote("host2", backends);
    (harness, remote)
}

/// Selects the row of VM `name` on `host`.
fn select(harness: &mut Harness, host: &HostId, name: &str) {
    harness.key(KeyCode::Home);
    for _ in 0..harness.app.vms.len() {
        let selected = harness.app.selected().expect("a selection");
        if selected.name() == name && selected.host == *host {
            return;
        }
        harness.key(KeyCode::Down);
    }
    panic!("no VM {name} on {host}");
}

fn line_with<'a>(screen: &'a str, needle: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.contains(needle))
}

#[test]
fn both_hosts_vms_are_listed_with_a_host_column() {
    let (harness, _) = two_hosts();
    let screen = harness.screen();
    assert!(line_with(&screen, "HOST").is_some(), "{screen}");
    let rows: Vec<&str> = screen.lines().filter(|l| l.contains("shut off")).collect();
    assert_eq!(rows.len(), 3, "{screen}");
    assert!(
        rows.iter().any(|r| r.contains("db") && r.contains("host2")),
        "{screen}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("web") && r.contains("local")),
        "{screen}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("web") && r.contains("host2")),
        "{screen}"
    );
}

#[test]
fn a_local_only_list_has_no_host_column() {
    let harness = Harness::new(FakeHost::with_vms([VmConfig::new("web", BootConfig::Demo)]));
    let screen = harness.screen();
    assert!(line_with(&screen, "NAME").is_some(), "{screen}");
    assert!(line_with(&screen, "HOST").is_none(), "{screen}");
}

#[test]
fn starting_a_remote_vm_reaches_that_host_and_not_the_local_one() {
    let (mut harness, remote) = two_hosts();
    select(&mut harness, &remote_id(), "web");
    harness.char('s');
    assert_eq!(
        remote.status("web").expect("remote web").state,
        RunState::Running
    );
    assert_eq!(
        harness.host.status("web").expect("local web").state,
        RunState::ShutOff
    );
    assert!(
        status_text(&harness).contains("web started"),
        "{}",
        status_text(&harness)
    );
}

#[test]
fn the_console_attaches_to_the_selected_hosts_vm() {
    let (mut harness, remote) = two_hosts();
    remote.start("db").expect("start");
    harness.refresh_host(&remote_id());
    select(&mut harness, &remote_id(), "db");
    harness.key(KeyCode::Enter);
    remote.emit("db", b"hello from host2\r\n");
    assert!(
        harness.wait_console("hello from host2"),
        "{}",
        harness.screen()
    );
}

#[test]
fn a_dropped_host_shows_reconnecting_and_comes_back() {
    let (mut harness, remote) = two_hosts();
    harness.act(Action::HostState {
        name: "host2".into(),
        state: HostState::Reconnecting {
            reason: "ssh: connection reset".into(),
            retry_in: std::time::Duration::from_secs(2),
        },
    });
    let screen = harness.screen();
    let row = line_with(&screen, "host2").expect("a row for host2");
    assert!(
        row.contains("reconnecting in 2 s: ssh: connection reset"),
        "{screen}"
    );
    assert!(line_with(&screen, "db").is_none(), "{screen}");
    // The local host is not held up.
    assert!(
        line_with(&screen, "local").is_some_and(|l| l.contains("web")),
        "{screen}"
    );

    let backends = harness.remotes["host2"].clone();
    harness.connect_remote("host2", backends);
    let screen = harness.screen();
    assert!(
        line_with(&screen, "db").is_some_and(|l| l.contains("host2")),
        "{screen}"
    );
    assert!(status_text(&harness).contains("host2 is connected again"));
    drop(remote);
}

#[test]
fn an_unreachable_host_shows_its_message() {
    let mut harness = Harness::new(FakeHost::with_vms([VmConfig::new("web", BootConfig::Demo)]));
    harness.app.hosts = vec![vmux::tui::hosts::state::RemoteHost {
        entry: entry("host3"),
        state: HostState::Connecting,
    }];
    harness.act(Action::HostState {
        name: "host3".into(),
        state: HostState::Unreachable(
            "ssh: connect to host host3 port 22: Connection refused".into(),
        ),
    });
    let screen = harness.screen();
    let row = line_with(&screen, "host3").expect("a row for host3");
    assert!(
        row.contains("unreachable: ssh: connect to host host3"),
        "{screen}"
    );
}

#[test]
fn hosts_added_and_removed_in_the_pane_are_saved_to_vmux_toml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vmux.toml");
    std::fs::write(&path, "theme = \"light\"\n").expect("write");
    let mut harness = Harness::new(FakeHost::new());
    harness.settings_path = Some(path.clone());
    harness.char('H');
    harness.char('a');
    // The form: name (host2 offered), address, autoconnect.
    harness.key(KeyCode::Down);
    harness.type_text("admin@h2.example:2222");
    harness.key(KeyCode::Enter);
    let settings = Settings::load(&path).expect("loads");
    assert_eq!(settings.theme.as_deref(), Some("light"));
    assert_eq!(
        settings.hosts,
        [HostEntry {
            name: "host2".into(),
            uri: "ssh://admin@h2.example:2222".into(),
            autoconnect: true,
        }]
    );
    assert!(harness.screen().contains("ssh://admin@h2.example:2222"));

    harness.key(KeyCode::Delete);
    harness.char('y');
    let settings = Settings::load(&path).expect("loads");
    assert!(settings.hosts.is_empty());
    assert!(harness.app.hosts.is_empty());
}

#[test]
fn a_bad_address_in_the_form_is_refused_beside_the_field() {
    let mut harness = Harness::new(FakeHost::new());
    harness.char('H');
    harness.char('a');
    harness.key(KeyCode::Down);
    for _ in 0..6 {
        harness.key(KeyCode::Backspace);
    }
    harness.type_text("h2:22");
    harness.key(KeyCode::Enter);
    assert!(harness.app.hosts.is_empty());
    let screen = harness.screen();
    assert!(
        screen.contains("SSH only; write ssh://[user@]host[:port]"),
        "{screen}"
    );
}

#[test]
fn a_vm_made_from_the_hosts_pane_is_made_on_that_host() {
    let (mut harness, remote) = two_hosts();
    harness.char('H');
    harness.char('n');
    assert!(
        harness.screen().contains("new VM on host2"),
        "{}",
        harness.screen()
    );
    for _ in 0..5 {
        harness.key(KeyCode::Enter);
    }
    assert_eq!(remote.list().len(), 3, "{}", harness.screen());
    assert_eq!(harness.host.list().len(), 1);
    let selected = harness.app.selected().expect("the new VM is selected");
    assert_eq!(selected.host, remote_id());
}

#[test]
fn the_storage_pane_of_a_remote_vm_shows_that_hosts_pools() {
    let (mut harness, _) = two_hosts();
    select(&mut harness, &remote_id(), "db");
    harness.char('2');
    assert!(
        harness.screen().contains("storage pools on host2"),
        "{}",
        harness.screen()
    );
    select_list_and(&mut harness, &HostId::Local, "web");
    harness.char('2');
    assert!(
        harness.screen().contains(" storage pools ("),
        "{}",
        harness.screen()
    );
}

/// Back to the list, then selects `name` on `host`.
fn select_list_and(harness: &mut Harness, host: &HostId, name: &str) {
    harness.char('1');
    select(harness, host, name);
}

#[test]
fn marks_stay_on_one_host() {
    let (mut harness, remote) = two_hosts();
    select(&mut harness, &remote_id(), "db");
    harness.char(' ');
    select(&mut harness, &HostId::Local, "web");
    harness.char(' ');
    // Marking a VM of another host started over: only the local web is marked.
    assert_eq!(harness.app.list.marked_host, HostId::Local);
    assert_eq!(harness.app.targets(), ["web"]);
    harness.char('s');
    harness.char('y');
    assert_eq!(
        harness.host.status("web").expect("local web").state,
        RunState::Running
    );
    assert_eq!(remote.status("db").expect("db").state, RunState::ShutOff);
}

#[test]
fn an_action_on_a_host_that_dropped_says_it_is_not_connected() {
    let (mut harness, remote) = two_hosts();
    select(&mut harness, &remote_id(), "db");
    // The link drops after the key was queued but before the worker ran it.
    harness.remotes.clear();
    harness.char('s');
    assert!(
        status_text(&harness).contains("host host2 is not connected"),
        "{}",
        status_text(&harness)
    );
    assert_eq!(remote.status("db").expect("db").state, RunState::ShutOff);
}

#[test]
fn hosts_are_not_rewritten_while_the_settings_file_is_broken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vmux.toml");
    let broken = "[[hosts]]\nname = \"h2\"\nuri = \"h2:22\"\n";
    std::fs::write(&path, broken).expect("write");
    let mut harness = Harness::new(FakeHost::new());
    harness.settings_path = Some(path.clone());
    harness.app.hosts_locked = Some("vmux.toml:1: bad address".into());
    harness.char('H');
    harness.char('a');
    assert!(harness.app.overlay.is_none());
    assert!(
        status_text(&harness).contains("until the settings file is fixed"),
        "{}",
        status_text(&harness)
    );
    assert_eq!(std::fs::read_to_string(&path).expect("read"), broken);
}

#[test]
fn a_remote_vm_does_not_show_a_same_named_local_vms_address() {
    use common::tui::{fleet, fleet_networks, fleet_storage};
    let mut harness = Harness::with_backends(fleet(), fleet_storage(), fleet_networks(), 120, 30);
    harness.app.hosts = vec![vmux::tui::hosts::state::RemoteHost {
        entry: entry("host2"),
        state: HostState::Connecting,
    }];
    let remote = Arc::new(FakeHost::with_vms([VmConfig::new(
        "web1",
        BootConfig::Demo,
    )]));
    remote.start("web1").expect("start");
    let backends = HostApi {
        vms: remote,
        storage: Arc::new(FakeStorage::new()),
        networks: Arc::new(FakeNetworks::new()),
    };
    harness.connect_remote("host2", backends);
    let screen = harness.screen();
    let rows: Vec<&str> = screen
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("web1") || l.contains(" web1 "))
        .collect();
    let local = rows
        .iter()
        .find(|r| r.contains("local"))
        .expect("local web1");
    let far = rows
        .iter()
        .find(|r| r.contains("host2"))
        .expect("host2's web1");
    assert!(local.contains("192.168.123.45"), "{screen}");
    assert!(!far.contains("192.168.123.45"), "{screen}");
}
