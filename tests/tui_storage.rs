//! Headless tests of the storage and networks panes, their dialogs, the wizard's disk and
//! network steps and guest addresses in the VM list: `update` driven with keys against the
//! fake host, storage and networks, asserting what a user would see or what the fakes end up
//! holding.

mod common;

use common::tui::{Harness, fleet, fleet_app, fleet_networks, fleet_storage, status_text};
use crossterm::event::KeyCode;
use std::time::Duration;
use vmux::client::Host;
use vmux::client::{FakeNetworks, FakeStorage};
use vmux::progress::ProgressSnapshot;
use vmux::tui::action::Action;
use vmux::tui::app::{Overlay, Pane, StatusKind};
use vmux::tui::keymap::Context;
use vmux::tui::storage::state::StorageFocus;
use vmux::tui::tasks::TaskProgress;

fn status_kind(harness: &Harness) -> Option<StatusKind> {
    harness.app.status.as_ref().map(|s| s.kind)
}

/// The fleet at 80×24 in the storage pane.
fn storage() -> Harness {
    let mut harness = fleet_app(80, 24, 1);
    harness.char('2');
    harness
}

/// The storage pane with `volume` of the default pool selected.
fn on_volume(volume: &str) -> Harness {
    let mut harness = storage();
    harness.key(KeyCode::Tab);
    harness.app.storage.volume = Some(volume.to_string());
    harness
}

fn networks() -> Harness {
    let mut harness = fleet_app(80, 24, 1);
    harness.char('3');
    harness
}

#[test]
fn number_keys_switch_panes_and_keep_the_old_keys() {
    let mut harness = fleet_app(80, 24, 1);
    harness.char('2');
    assert_eq!(harness.app.pane, Pane::Storage);
    assert_eq!(harness.app.context(), Context::Storage);
    assert!(harness.screen().contains("storage pools (2)"));
    harness.char('3');
    assert_eq!(harness.app.pane, Pane::Networks);
    assert!(harness.screen().contains("networks (3)"));
    harness.char('1');
    assert_eq!(harness.app.pane, Pane::List);
    // Tab still opens the details of the selected VM in the list.
    harness.key(KeyCode::Tab);
    assert_eq!(harness.app.pane, Pane::Details);
}

#[test]
fn the_storage_pane_lists_pools_and_the_selected_pools_volumes() {
    let harness = storage();
    let screen = harness.screen();
    for text in [
        "default",
        "scratch",
        "inactive",
        "web1.qcow2",
        "web1 (running)",
        "base.qcow2",
    ] {
        assert!(screen.contains(text), "{text} missing:\n{screen}");
    }
    assert!(screen.contains("old.toml: missing field"), "{screen}");
}

#[test]
fn an_inactive_pool_says_how_to_start_it_and_s_starts_it() {
    let mut harness = storage();
    harness.key(KeyCode::Down);
    assert_eq!(harness.app.storage.pool.as_deref(), Some("scratch"));
    assert!(harness.screen().contains("s starts it"));
    harness.char('s');
    assert!(status_text(&harness).contains("pool scratch started"));
    assert!(
        harness
            .app
            .storage
            .selected_pool()
            .is_some_and(|p| p.active())
    );
}

#[test]
fn stopping_a_pool_asks_first() {
    let mut harness = storage();
    harness.char('d');
    assert!(matches!(harness.app.overlay, Some(Overlay::Confirm(_))));
    assert!(harness.screen().contains("Stop pool default?"));
    harness.char('n');
    assert!(
        harness
            .app
            .storage
            .selected_pool()
            .is_some_and(|p| p.active())
    );
}

#[test]
fn a_volume_created_in_the_dialog_appears_in_the_list() {
    let mut harness = storage();
    harness.char('n');
    harness.ctrl('u');
    harness.type_text("data.raw");
    harness.key(KeyCode::Down);
    harness.ctrl('u');
    harness.type_text("2G");
    // The name says raw, so the format must be switched from qcow2 before Enter works;
    // Enter puts the focus on the format.
    harness.key(KeyCode::Enter);
    assert!(harness.app.overlay.is_some());
    assert!(harness.screen().contains("the name says raw"));
    harness.key(KeyCode::Char(' '));
    harness.key(KeyCode::Enter);
    assert!(harness.app.overlay.is_none());
    let volume = harness
        .storage
        .volume("default", "data.raw")
        .expect("created");
    assert_eq!(volume.capacity, 2 << 30);
    assert!(status_text(&harness).contains("created default/data.raw"));
    assert!(harness.screen().contains("data.raw"));
}

#[test]
fn a_storage_error_goes_to_the_status_line() {
    let mut harness = storage();
    harness.storage.fail_next(
        "create",
        "no space left on device; free some space in /var/lib/vmux/images",
    );
    harness.char('n');
    harness.key(KeyCode::Enter);
    assert_eq!(status_kind(&harness), Some(StatusKind::Error));
    assert!(status_text(&harness).contains("no space left"));
    assert!(harness.app.tasks.is_empty());
}

#[test]
fn growing_a_volume_by_a_relative_size() {
    let mut harness = on_volume("base.qcow2");
    harness.char('r');
    harness.ctrl('u');
    harness.type_text("+5G");
    harness.key(KeyCode::Enter);
    let volume = harness
        .storage
        .volume("default", "base.qcow2")
        .expect("exists");
    assert_eq!(volume.capacity, 15 << 30);
}

#[test]
fn a_linked_clone_is_made_on_its_source() {
    let mut harness = on_volume("base.qcow2");
    harness.char('c');
    harness.key(KeyCode::Down);
    harness.key(KeyCode::Char(' '));
    harness.key(KeyCode::Enter);
    let clone = harness
        .storage
        .volume("default", "base-clone.qcow2")
        .expect("cloned");
    assert_eq!(clone.backing.map(|b| b.name).as_deref(), Some("base.qcow2"));
}

/// Where a task stands: `done` of `total` bytes, at 85 MiB/s with 12 s left.
fn progress(done: u64, total: u64) -> TaskProgress {
    TaskProgress {
        snapshot: ProgressSnapshot {
            done,
            total,
            finished: false,
            cancelled: false,
        },
        rate: Some((85u64 << 20) as f64),
        eta: Some(Duration::from_secs(12)),
    }
}

/// A full clone of base.qcow2 held in flight, and its id.
fn clone_in_flight() -> (Harness, u64) {
    let mut harness = on_volume("base.qcow2");
    harness.hold_tasks = true;
    harness.char('c');
    harness.key(KeyCode::Enter);
    let id = *harness.app.tasks.keys().next().expect("running");
    (harness, id)
}

#[test]
fn a_full_clone_shows_its_real_progress_with_rate_and_time_left_until_done() {
    let (mut harness, id) = clone_in_flight();
    harness.act(Action::TaskProgress {
        id,
        progress: progress(768 << 20, 1536 << 20),
    });
    let screen = harness.screen();
    assert!(screen.contains(" 50% "), "{screen}");
    assert!(!screen.contains("est."), "{screen}");
    assert!(screen.contains("cloning default/base.qcow2"), "{screen}");
    assert!(
        screen.contains(" 50% 85M/s · 12s left · cloning"),
        "{screen}"
    );
    harness.char('T');
    let list = harness.screen();
    assert!(list.contains("768M of 1.5G · 85M/s · 12s left"), "{list}");
    harness.key(KeyCode::Esc);
    harness.release_tasks();
    assert!(harness.app.tasks.is_empty());
    assert!(status_text(&harness).contains("cloned default/base.qcow2 to base-clone.qcow2"));
    assert!(harness.screen().contains("base-clone.qcow2"));
    assert_eq!(
        harness.app.storage.volume.as_deref(),
        Some("base-clone.qcow2")
    );
}

#[test]
fn the_footer_offers_the_task_list_while_a_task_runs() {
    let (harness, _) = clone_in_flight();
    let footer = harness
        .screen()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(footer.contains("T tasks/cancel"), "{footer}");
    let mut idle = on_volume("base.qcow2");
    idle.char('T');
    assert!(idle.app.overlay.is_none());
    assert!(status_text(&idle).contains("no tasks are running"));
}

#[test]
fn a_clone_cancelled_from_the_task_list_leaves_nothing_behind() {
    let (mut harness, id) = clone_in_flight();
    harness.act(Action::TaskProgress {
        id,
        progress: progress(768 << 20, 1536 << 20),
    });
    harness.char('T');
    assert!(matches!(harness.app.overlay, Some(Overlay::Tasks { .. })));
    let screen = harness.screen();
    assert!(
        screen.contains("tasks (↑↓ select, x cancels, Esc closes)"),
        "{screen}"
    );
    assert!(screen.contains("x cancels it"), "{screen}");
    harness.char('x');
    assert!(harness.app.tasks[&id].cancelling);
    assert!(harness.screen().contains("cancelling cloning"));

    harness.release_tasks();

    assert!(harness.app.tasks.is_empty());
    assert!(
        harness.app.overlay.is_none(),
        "the list closes when nothing runs"
    );
    assert_eq!(status_kind(&harness), Some(StatusKind::Info));
    assert_eq!(
        status_text(&harness),
        "cancelled: default/base-clone.qcow2 was not created; default/base.qcow2 is unchanged"
    );
    assert!(
        harness
            .storage
            .volume("default", "base-clone.qcow2")
            .is_none()
    );
}

#[test]
fn a_short_task_cannot_be_cancelled_and_says_so() {
    let mut harness = storage();
    harness.hold_tasks = true;
    harness.key(KeyCode::Down);
    harness.char('s');
    assert_eq!(harness.app.tasks.len(), 1, "{}", status_text(&harness));
    harness.char('T');
    harness.char('x');
    assert!(
        status_text(&harness).contains("cannot be cancelled"),
        "{}",
        status_text(&harness)
    );
    assert!(harness.screen().contains("it ends within moments"));
}

#[test]
fn convert_makes_a_raw_copy() {
    let mut harness = on_volume("base.qcow2");
    harness.char('v');
    harness.key(KeyCode::Enter);
    let copy = harness
        .storage
        .volume("default", "base.raw")
        .expect("converted");
    assert_eq!(copy.format.as_str(), "raw");
}

#[test]
fn upload_asks_before_replacing_the_volume() {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    let mut harness = on_volume("base.qcow2");
    harness.char('u');
    harness.act(Action::Paste(file.path().display().to_string()));
    harness.key(KeyCode::Enter);
    assert!(
        harness
            .screen()
            .contains("What the volume holds now is lost")
    );
    harness.char('y');
    assert!(
        status_text(&harness).contains("uploaded"),
        "{}",
        status_text(&harness)
    );
}

#[test]
fn deleting_asks_then_removes_the_volume() {
    let mut harness = on_volume("build.qcow2");
    harness
        .storage
        .set_users("default", "build.qcow2", &[], &[]);
    harness.char('2');
    harness.key(KeyCode::Delete);
    assert!(harness.screen().contains("Delete default/build.qcow2"));
    harness.char('y');
    assert!(harness.storage.volume("default", "build.qcow2").is_none());
    let pool = harness.app.storage.selected_pool().expect("default pool");
    assert!(!pool.has("build.qcow2"));
}

#[test]
fn deleting_a_volume_a_vm_uses_is_refused_before_asking() {
    let mut harness = on_volume("web1.qcow2");
    harness.key(KeyCode::Delete);
    assert!(harness.app.overlay.is_none());
    assert!(status_text(&harness).contains("running VM web1 uses it"));
    assert!(harness.storage.volume("default", "web1.qcow2").is_some());
}

#[test]
fn deleting_a_backing_file_is_refused_before_asking() {
    let mut harness = on_volume("base.qcow2");
    harness.key(KeyCode::Delete);
    assert!(harness.app.overlay.is_none());
    assert!(status_text(&harness).contains("backing file of build.qcow2"));
}

#[test]
fn wipe_asks_and_leaves_the_volume_empty() {
    let mut harness = on_volume("base.qcow2");
    harness.char('W');
    assert!(harness.screen().contains("overwritten with zeroes"));
    harness.char('y');
    let volume = harness
        .storage
        .volume("default", "base.qcow2")
        .expect("kept");
    assert!(volume.allocation < 1 << 20, "{}", volume.allocation);
}

#[test]
fn esc_leaves_the_volumes_then_the_pane() {
    let mut harness = on_volume("base.qcow2");
    assert_eq!(harness.app.storage.focus, StorageFocus::Volumes);
    harness.key(KeyCode::Esc);
    assert_eq!(harness.app.storage.focus, StorageFocus::Pools);
    harness.key(KeyCode::Esc);
    assert_eq!(harness.app.pane, Pane::List);
}

#[test]
fn the_pane_reloads_every_two_seconds_while_shown() {
    let mut harness = storage();
    harness
        .storage
        .add_volume("default", "new.qcow2", 1 << 30, 0);
    harness.act(Action::Tick);
    harness.act(Action::Tick);
    assert!(harness.screen().contains("new.qcow2"));
}

#[test]
fn the_networks_pane_shows_state_leases_and_attached_vms() {
    let harness = networks();
    let screen = harness.screen();
    for text in [
        "default",
        "lab",
        "lan",
        "192.168.123.45",
        "vmux-web1-0",
        "isolated",
    ] {
        assert!(screen.contains(text), "{text} missing:\n{screen}");
    }
}

#[test]
fn starting_a_network_without_cap_net_admin_shows_the_librarys_message() {
    let mut harness = networks();
    harness.networks.set_capability(false);
    harness.key(KeyCode::Down);
    harness.char('s');
    assert_eq!(status_kind(&harness), Some(StatusKind::Error));
    assert!(status_text(&harness).contains("CAP_NET_ADMIN"));
    assert!(harness.screen().contains("run the command as root"));
}

#[test]
fn starting_and_stopping_a_network() {
    let mut harness = networks();
    harness.key(KeyCode::Down);
    harness.char('s');
    assert!(
        harness
            .networks
            .network("lab")
            .is_some_and(|n| n.active.is_some())
    );
    harness.char('d');
    harness.char('y');
    assert!(
        harness
            .networks
            .network("lab")
            .is_some_and(|n| n.active.is_none())
    );
}

#[test]
fn stopping_a_network_running_vms_use_is_refused_before_asking() {
    let mut harness = networks();
    harness.char('d');
    assert!(harness.app.overlay.is_none());
    assert!(status_text(&harness).contains("running VM(s) web1, db"));
}

#[test]
fn a_network_defined_in_the_dialog_gets_a_bridge_and_is_listed() {
    let mut harness = networks();
    harness.char('n');
    harness.ctrl('u');
    harness.type_text("dev");
    harness.key(KeyCode::Enter);
    let network = harness.networks.network("dev").expect("defined");
    assert_eq!(network.config.bridge, "vmux-dev");
    assert_eq!(
        network.config.subnet.map(|s| s.to_string()).as_deref(),
        Some("192.168.124.0/24")
    );
    assert!(harness.screen().contains("dev"));
}

#[test]
fn deleting_an_active_network_is_refused_and_an_inactive_one_asks() {
    let mut harness = networks();
    harness.key(KeyCode::Delete);
    assert!(status_text(&harness).contains("stop it with d first"));
    harness.key(KeyCode::Down);
    harness.key(KeyCode::Delete);
    assert!(harness.screen().contains("build have a NIC on it"));
    harness.char('y');
    assert!(harness.networks.network("lab").is_none());
}

#[test]
fn the_vm_list_shows_guest_addresses_from_leases() {
    let mut harness = fleet_app(120, 30, 1);
    assert!(harness.screen().contains("192.168.123.45"));
    harness.app.list.selected = Some("db".into());
    let mut narrow = fleet_app(80, 24, 1);
    narrow.app.list.selected = Some("web1".into());
    narrow.app.list.marked.clear();
    assert!(narrow.screen().contains("web1: IP 192.168.123.45"));
}

#[test]
fn the_wizard_creates_a_volume_and_a_nic_with_the_vm() {
    let storage = fleet_storage();
    storage.add_volume("default", "spare.raw", 1 << 30, 0);
    let mut harness = Harness::with_backends(fleet(), storage, fleet_networks(), 80, 24);
    harness.char('n');
    harness.ctrl('u');
    harness.type_text("fresh");
    for _ in 0..3 {
        harness.key(KeyCode::Enter);
    }
    // Disk step: tick spare.raw (after base, build and db) and ask for a new 4G volume.
    for _ in 0..3 {
        harness.key(KeyCode::Down);
    }
    harness.key(KeyCode::Char(' '));
    harness.key(KeyCode::Tab);
    harness.key(KeyCode::Char(' '));
    harness.key(KeyCode::Tab);
    harness.key(KeyCode::Tab);
    harness.key(KeyCode::Tab);
    harness.ctrl('u');
    harness.type_text("4G");
    harness.key(KeyCode::Enter);
    // Network step: tick default.
    harness.key(KeyCode::Char(' '));
    harness.key(KeyCode::Enter);
    let review = harness.screen();
    assert!(
        review.contains("vmux vol-create-as default fresh.qcow2 4G"),
        "{review}"
    );
    assert!(
        review.contains("--disk default/fresh.qcow2 --disk"),
        "{review}"
    );
    assert!(review.contains("--network default"), "{review}");
    harness.key(KeyCode::Enter);
    let volume = harness
        .storage
        .volume("default", "fresh.qcow2")
        .expect("created");
    assert_eq!(volume.capacity, 4 << 30);
    let config = harness.host.status("fresh").expect("defined").config;
    let disks: Vec<String> = config.disks.iter().map(ToString::to_string).collect();
    assert_eq!(disks, ["default/fresh.qcow2", "default/spare.raw"]);
    assert_eq!(config.nics.len(), 1);
    assert_eq!(config.nics[0].network, "default");
}

#[test]
fn the_wizard_refuses_a_backing_file_as_a_writable_disk() {
    let mut harness = Harness::with_backends(fleet(), fleet_storage(), fleet_networks(), 80, 24);
    harness.char('n');
    for _ in 0..3 {
        harness.key(KeyCode::Enter);
    }
    harness.key(KeyCode::Char(' '));
    harness.key(KeyCode::Enter);
    assert!(
        harness
            .screen()
            .contains("other images use it as their backing")
    );
}

#[test]
fn the_wizard_refuses_a_volume_a_running_vm_has_open() {
    let mut harness = Harness::with_backends(fleet(), fleet_storage(), fleet_networks(), 80, 24);
    harness.char('n');
    harness.ctrl('u');
    harness.type_text("fresh");
    for _ in 0..3 {
        harness.key(KeyCode::Enter);
    }
    // default/web1.qcow2 is the fourth volume listed.
    for _ in 0..3 {
        harness.key(KeyCode::Down);
    }
    harness.key(KeyCode::Char(' '));
    harness.key(KeyCode::Enter);
    assert!(harness.screen().contains("running VM web1 has it open"));
    assert!(
        matches!(&harness.app.overlay, Some(Overlay::Wizard(w)) if w.step == vmux::tui::wizard::Step::Disks)
    );
}

#[test]
fn without_networks_the_wizard_has_no_network_step() {
    let mut harness =
        Harness::with_backends(fleet(), FakeStorage::new(), FakeNetworks::new(), 80, 24);
    harness.char('n');
    let steps = match &harness.app.overlay {
        Some(Overlay::Wizard(w)) => w.steps(),
        _ => panic!("wizard not open"),
    };
    assert!(!steps.contains(&vmux::tui::wizard::Step::Network));
    assert!(harness.screen().contains("4 Disks › 5 Review"));
}

#[test]
fn palette_verbs_open_the_storage_and_network_dialogs() {
    let mut harness = fleet_app(80, 24, 1);
    harness.char(':');
    harness.type_text("vol-create");
    harness.key(KeyCode::Enter);
    assert_eq!(harness.app.pane, Pane::Storage);
    assert!(matches!(harness.app.overlay, Some(Overlay::Dialog(_))));
    harness.key(KeyCode::Esc);
    harness.char(':');
    harness.type_text("net-start lab");
    harness.key(KeyCode::Enter);
    assert!(
        harness
            .networks
            .network("lab")
            .is_some_and(|n| n.active.is_some())
    );
}

#[test]
fn help_lists_the_storage_keys() {
    let mut harness = storage();
    harness.char('?');
    let screen = harness.screen();
    assert!(screen.contains("keys: storage"), "{screen}");
    assert!(screen.contains("clone volume (full or linked)"), "{screen}");
}

#[test]
fn help_names_the_task_list_key_and_its_cancel_key() {
    let mut harness = storage();
    harness.app.width = 200;
    harness.app.height = 50;
    harness.char('?');
    let screen = harness.screen();
    let row = screen
        .lines()
        .find(|l| l.contains("running tasks"))
        .unwrap_or_else(|| panic!("no task list row: {screen}"));
    assert!(row.contains(" T "), "{row}");
    assert!(row.contains("x cancels one"), "{row}");
}

fn click(column: u16, row: u16) -> Action {
    Action::Mouse(crossterm::event::MouseEvent {
        kind: crossterm::event::MouseEventKind::Down(crossterm::event::MouseButton::Left),
        column,
        row,
        modifiers: crossterm::event::KeyModifiers::NONE,
    })
}

/// The screen row showing `text`.
fn row_of(harness: &Harness, text: &str) -> u16 {
    harness
        .screen()
        .lines()
        .position(|l| l.contains(text))
        .unwrap_or_else(|| panic!("{text} not on screen")) as u16
}

#[test]
fn clicking_the_header_switches_panes() {
    let mut harness = fleet_app(80, 24, 1);
    // " vmux  1 VMs 2 Storage 3 Networks": "2 Storage" starts at column 13.
    harness.act(click(15, 0));
    assert_eq!(harness.app.pane, Pane::Storage);
    harness.act(click(25, 0));
    assert_eq!(harness.app.pane, Pane::Networks);
    harness.act(click(8, 0));
    assert_eq!(harness.app.pane, Pane::List);
}

#[test]
fn clicking_rows_selects_pools_volumes_and_networks() {
    let mut harness = storage();
    let row = row_of(&harness, "db.raw");
    harness.act(click(5, row));
    assert_eq!(harness.app.storage.focus, StorageFocus::Volumes);
    assert_eq!(harness.app.storage.volume.as_deref(), Some("db.raw"));
    let row = row_of(&harness, "/srv/scratch");
    harness.act(click(5, row));
    assert_eq!(harness.app.storage.pool.as_deref(), Some("scratch"));
    assert_eq!(harness.app.storage.focus, StorageFocus::Pools);

    harness.char('3');
    let row = row_of(&harness, "(host LAN)");
    harness.act(click(3, row));
    assert_eq!(harness.app.networks.selected.as_deref(), Some("lan"));
}

#[test]
fn details_show_each_nics_receive_and_transmit_rates() {
    let mut harness = fleet_app(80, 24, 1);
    let mut stats = harness.host.stats("web1").expect("running");
    stats.nics = vec![vmux::protocol::NicStats {
        index: 0,
        tap: "vmux-web1-0".into(),
        mac: "52:54:00:00:10:01".into(),
        rx_bytes: 1 << 30,
        rx_packets: 1000,
        rx_dropped: 0,
        tx_bytes: 1 << 20,
        tx_packets: 100,
        tx_dropped: 0,
        rx_bytes_per_sec: 1536.0 * 1024.0,
        tx_bytes_per_sec: 2048.0,
        rx_packets_per_sec: 1000.0,
        tx_packets_per_sec: 10.0,
    }];
    harness.host.set_stats("web1", stats);
    harness.refresh();
    harness.app.list.marked.clear();
    harness.app.list.selected = Some("web1".into());
    harness.key(KeyCode::Tab);
    let screen = harness.screen();
    let row = screen
        .lines()
        .find(|l| l.contains("net0"))
        .unwrap_or_else(|| panic!("no NIC row:\n{screen}"));
    assert!(
        row.contains("rx   1.5M/s") && row.contains("tx     2K/s"),
        "{row}"
    );
}

#[test]
fn the_wizard_will_not_start_a_vm_on_a_stopped_network() {
    let mut harness = Harness::with_backends(fleet(), fleet_storage(), fleet_networks(), 80, 24);
    harness.char('n');
    for _ in 0..4 {
        harness.key(KeyCode::Enter);
    }
    // Networks: default (active), lab (inactive); tick lab.
    harness.key(KeyCode::Down);
    harness.key(KeyCode::Char(' '));
    harness.key(KeyCode::Enter);
    harness.key(KeyCode::Enter);
    assert!(harness.app.overlay.is_some(), "created anyway");
    assert!(
        harness.screen().contains("network lab is not started"),
        "{}",
        harness.screen()
    );
    // Unticking "Start now" creates it stopped.
    harness.key(KeyCode::Char(' '));
    harness.key(KeyCode::Enter);
    assert!(harness.app.overlay.is_none());
    let config = harness.host.status("vm1").expect("defined").config;
    assert_eq!(config.nics[0].network, "lab");
}
