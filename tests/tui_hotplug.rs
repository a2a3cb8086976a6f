//! Headless tests of hot-add from the TUI: `+`/`-` on vCPUs, the add-disk and remove-disk
//! dialogs, the palette's `setvcpus`/`attach-disk`/`detach-disk`, each saying where the
//! change applies and then what the guest did.

mod common;

use common::tui::{Harness, fleet_app, status_text};
use crossterm::event::KeyCode;
use vmux::client::Host;
use vmux::protocol::RunState;
use vmux::tui::action::Action;
use vmux::tui::app::{Overlay, StatusKind};

/// The fleet with `vm` selected and nothing marked.
fn on(vm: &str) -> Harness {
    let mut harness = fleet_app(80, 24, 1);
    harness.app.list.marked.clear();
    harness.app.list.selected = Some(vm.to_string());
    harness
}

fn live_vcpus(harness: &Harness, vm: &str) -> u32 {
    harness.host.info(vm).expect("running").vcpus
}

#[test]
fn plus_hot_adds_a_vcpu_now_and_for_the_next_boot_and_reports_the_guest() {
    let mut harness = on("web1");
    harness.char('+');
    assert_eq!(live_vcpus(&harness, "web1"), 3);
    assert_eq!(
        harness.host.status("web1").expect("defined").config.vcpus,
        3
    );
    // The fake guest onlines at once: the re-read info says so.
    assert!(
        status_text(&harness).contains("the guest brought its new vCPUs online (3 online)"),
        "{}",
        status_text(&harness)
    );
    assert!(harness.app.watches.is_empty());
}

#[test]
fn the_change_message_says_where_it_applies() {
    let mut harness = on("web1");
    harness.hold_tasks = true;
    // Run the op but keep the info re-read from answering, to see the first message.
    vmux::tui::update(
        &mut harness.app,
        Action::Key(crossterm::event::KeyEvent::new(
            KeyCode::Char('+'),
            crossterm::event::KeyModifiers::NONE,
        )),
    );
    let effects = harness.app.take_effects();
    let op = effects
        .into_iter()
        .find_map(|e| match e {
            vmux::tui::action::Effect::Host(op) => Some(op),
            _ => None,
        })
        .expect("an op");
    let result = op.run(&harness.backends());
    vmux::tui::update(&mut harness.app, Action::OpDone { op, result });
    assert!(
        status_text(&harness).contains("vCPUs 2 → 3, now and at the next boot"),
        "{}",
        status_text(&harness)
    );
    assert_eq!(harness.app.watches.len(), 1);
}

#[test]
fn a_guest_that_does_not_online_is_reported_after_a_while() {
    let mut harness = on("web1");
    harness.char('+');
    // Pretend the guest ignored it: a watch for 5 vCPUs never satisfied.
    harness.app.watches.push(vmux::tui::watch::Watch {
        host: vmux::tui::hosts::id::HostId::Local,
        vm: "web1".into(),
        expect: vmux::tui::watch::Expect::Vcpus { from: 3, count: 5 },
        until: harness.app.ticks + 2,
    });
    for _ in 0..4 {
        harness.act(Action::Tick);
    }
    assert!(
        status_text(&harness).contains("has 3 vCPUs online, not 5"),
        "{}",
        status_text(&harness)
    );
    assert!(harness.app.watches.is_empty());
}

#[test]
fn minus_removes_a_vcpu_and_stops_at_one() {
    let mut harness = on("mail");
    harness.char('p');
    assert_eq!(
        harness.host.status("mail").expect("defined").state,
        RunState::Running
    );
    harness.char('-');
    assert!(status_text(&harness).contains("the least a VM can have"));
    let mut harness = on("web1");
    harness.char('-');
    assert_eq!(live_vcpus(&harness, "web1"), 1);
    assert!(status_text(&harness).contains("ejected the removed vCPUs (1 online)"));
}

#[test]
fn plus_beyond_max_vcpus_says_how_to_raise_it() {
    let mut harness = on("web1");
    harness.char(':');
    harness.type_text("setvcpus web1 8");
    harness.key(KeyCode::Enter);
    harness.char('+');
    assert!(
        status_text(&harness).contains("raise it with e (edit)"),
        "{}",
        status_text(&harness)
    );
}

#[test]
fn plus_on_a_stopped_vm_changes_the_next_boot_only() {
    let mut harness = on("build");
    harness.char('+');
    let config = harness.host.status("build").expect("defined").config;
    assert_eq!(config.vcpus, 9);
    assert!(status_text(&harness).contains("saved for the next boot"));
}

#[test]
fn palette_setvcpus_works_and_defaults_to_live() {
    let mut harness = on("db");
    harness.char(':');
    harness.type_text("setvcpus db 6");
    harness.key(KeyCode::Enter);
    assert_eq!(live_vcpus(&harness, "db"), 6);
    assert_eq!(harness.host.status("db").expect("defined").config.vcpus, 4);
    assert!(
        status_text(&harness).contains("6 online"),
        "{}",
        status_text(&harness)
    );
}

#[test]
fn the_add_disk_dialog_hot_adds_a_new_volume() {
    let mut harness = on("web1");
    harness.char('A');
    assert!(matches!(harness.app.overlay, Some(Overlay::Dialog(_))));
    assert!(harness.screen().contains("add a disk to web1"));
    // The default choice is a volume that can be attached: not the backing file base.qcow2.
    assert!(
        harness.screen().contains("◀ default/build.qcow2 ▶"),
        "{}",
        harness.screen()
    );
    // Tick "New volume"; the name, size and format fields appear with defaults.
    harness.key(KeyCode::Char(' '));
    assert!(harness.screen().contains("web1-data.qcow2"));
    harness.key(KeyCode::Enter);
    assert!(harness.app.overlay.is_none(), "{}", harness.screen());
    assert!(
        harness
            .storage
            .volume("default", "web1-data.qcow2")
            .is_some()
    );
    let info = harness.host.info("web1").expect("running");
    assert!(info.disks.iter().any(|d| d.target == "vdb"), "{info:?}");
    let config = harness.host.status("web1").expect("defined").config;
    assert_eq!(config.disks.len(), 2);
    let status = status_text(&harness);
    assert!(
        status.contains("attached as vdb, now and at the next boot"),
        "{status}"
    );
}

#[test]
fn the_add_disk_dialog_refuses_a_disk_the_vm_has() {
    let mut harness = on("web1");
    harness.char('A');
    // The first usable volume is offered; pick web1.qcow2, the VM's own disk.
    harness.key(KeyCode::Down);
    for _ in 0..4 {
        if harness.screen().contains("◀ default/web1.qcow2 ▶") {
            break;
        }
        harness.key(KeyCode::Right);
    }
    assert!(
        harness.screen().contains("already a disk of web1"),
        "{}",
        harness.screen()
    );
    harness.key(KeyCode::Enter);
    assert!(harness.app.overlay.is_some());
}

#[test]
fn the_remove_disk_dialog_asks_then_the_guest_ejects_it() {
    let mut harness = on("web1");
    harness.char(':');
    harness.type_text("attach-disk web1 default/base.qcow2 --readonly --live");
    harness.key(KeyCode::Enter);
    assert!(
        status_text(&harness).contains("attached as vdb, now only"),
        "{}",
        status_text(&harness)
    );
    harness.act(Action::Info {
        vm: "web1".into(),
        info: harness.host.info("web1").expect("running"),
    });
    harness.char('X');
    assert!(harness.screen().contains("remove a disk from web1"));
    // vdb (live only): pick it, and leave the definition alone.
    harness.key(KeyCode::Right);
    harness.key(KeyCode::Down);
    harness.key(KeyCode::Down);
    harness.key(KeyCode::Char(' '));
    harness.key(KeyCode::Enter);
    assert!(
        harness.screen().contains("Remove vdb"),
        "{}",
        harness.screen()
    );
    harness.char('y');
    let info = harness.host.info("web1").expect("running");
    assert!(!info.disks.iter().any(|d| d.target == "vdb"));
    assert!(
        status_text(&harness).contains("the guest ejected vdb"),
        "{}",
        status_text(&harness)
    );
}

#[test]
fn palette_detach_disk_of_the_definition() {
    let mut harness = on("build");
    harness.char(':');
    harness.type_text("detach-disk build vda");
    harness.key(KeyCode::Enter);
    assert!(
        harness
            .host
            .status("build")
            .expect("defined")
            .config
            .disks
            .is_empty()
    );
    assert!(status_text(&harness).contains("vda detached, saved for the next boot"));
}

#[test]
fn a_refused_hot_add_shows_the_hosts_reason() {
    let mut harness = on("web1");
    harness.char(':');
    harness.type_text("attach-disk web1 default/db.raw --live");
    harness.key(KeyCode::Enter);
    let status = harness.app.status.clone().expect("status");
    assert_eq!(status.kind, StatusKind::Error);
    assert!(status.text.contains("db"), "{}", status.text);
}
