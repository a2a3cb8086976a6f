//! What a new user stumbled on in the console, each as the behaviour they should have met:
//! refusals that say why and what to do, VMs whose definitions are broken staying visible and
//! controllable, marked VMs never turning keys into unconfirmed bulk actions, and the storage
//! pane's keys acting on the table that looks focused. Headless, over the fakes.

mod common;

use common::tui::{Harness, fleet_app};
use crossterm::event::KeyCode;
use vmux::client::Host;
use vmux::client::fake::FakeHost;
use vmux::client::{FakeNetworks, FakeStorage};
use vmux::protocol::RunState;
use vmux::tui::action::Action;
use vmux::tui::app::Overlay;

/// A fresh home (no VMs) whose only network, `default`, is defined but not started, at the
/// wizard's review with that network ticked.
fn review_with_inactive_network() -> Harness {
    let mut h = Harness::with_backends(
        FakeHost::new(),
        FakeStorage::new(),
        FakeNetworks::with_default(),
        80,
        24,
    );
    h.char('n');
    for _ in 0..4 {
        h.key(KeyCode::Enter);
    }
    h.key(KeyCode::Char(' '));
    h.key(KeyCode::Enter);
    h
}

fn in_wizard(h: &Harness) -> bool {
    matches!(h.app.overlay, Some(Overlay::Wizard(_)))
}

#[test]
fn the_review_says_an_inactive_network_stops_the_start_and_what_to_do() {
    let mut h = review_with_inactive_network();
    h.key(KeyCode::Enter);
    assert!(
        in_wizard(&h),
        "Enter must not create a VM that cannot start"
    );
    // The reason stays on screen while storage and networks are refreshed underneath.
    for _ in 0..3 {
        h.act(Action::Tick);
        h.refresh();
    }
    let screen = h.screen();
    assert!(
        screen.contains("network default is not started"),
        "{screen}"
    );
    assert!(screen.contains("untick Start now"), "{screen}");
    assert!(h.host.list().is_empty(), "nothing was defined");
}

#[test]
fn the_review_offers_to_start_the_network_then_creates_and_starts_the_vm() {
    let mut h = review_with_inactive_network();
    h.key(KeyCode::Enter);
    // Enter moved the focus to the offer; Space takes it.
    h.key(KeyCode::Char(' '));
    assert!(
        h.screen().contains("vmux net-start default &&"),
        "{}",
        h.screen()
    );
    h.key(KeyCode::Enter);
    assert!(!in_wizard(&h));
    let network = h.networks.network("default").expect("defined");
    assert!(network.active.is_some(), "the network was started");
    let vm = h.host.status("vm1").expect("created");
    assert_eq!(vm.state, RunState::Running);
    assert_eq!(vm.config.nics.len(), 1);
}

#[test]
fn the_review_creates_without_starting_when_start_now_is_unticked() {
    let mut h = review_with_inactive_network();
    h.key(KeyCode::Down);
    h.key(KeyCode::Char(' '));
    assert!(!h.screen().contains("is not started"), "{}", h.screen());
    h.key(KeyCode::Enter);
    assert!(!in_wizard(&h));
    assert_eq!(
        h.host.status("vm1").expect("created").state,
        RunState::ShutOff
    );
    assert!(
        h.networks
            .network("default")
            .expect("defined")
            .active
            .is_none()
    );
}

#[test]
fn a_running_vm_with_a_broken_definition_is_listed_counted_and_can_be_forced_off() {
    let mut h = fleet_app(80, 24, 1);
    h.host
        .break_definition("web1", "vcpus = \"two\"", "invalid type: string \"two\"");
    h.refresh();
    let screen = h.screen();
    let row = screen
        .lines()
        .find(|l| l.contains(" web1 "))
        .expect("web1 is still listed");
    assert!(row.contains("running") && row.contains('!'), "{row}");
    assert!(screen.contains("6 VMs: 2 running, 1 paused"), "{screen}");

    h.app.list.selected = Some("web1".into());
    h.app.list.marked.clear();
    h.act(Action::Resize {
        width: 80,
        height: 24,
    });
    let screen = h.screen();
    assert!(
        screen.contains("vmux edit web1"),
        "the fix is shown: {screen}"
    );
    h.char('D');
    h.char('y');
    assert_eq!(
        h.host.state("web1").expect("state").state,
        RunState::ShutOff
    );
}

#[test]
fn actions_that_need_a_broken_definition_say_how_to_repair_it() {
    let mut h = fleet_app(80, 24, 1);
    h.host
        .break_definition("build", "x", "missing field `name`");
    h.refresh();
    h.app.list.selected = Some("build".into());
    h.app.list.marked.clear();
    for key in ['e', 's', '+'] {
        h.char(key);
        let status = h
            .app
            .status
            .as_ref()
            .map(|s| s.text.clone())
            .unwrap_or_default();
        assert!(status.contains("vmux edit build"), "{key}: {status}");
        assert!(h.app.overlay.is_none(), "{key} opened something");
    }
}

/// The fleet with `web1` (running) and `build` (shut off) marked, `web1` selected.
fn two_marked() -> Harness {
    let mut h = fleet_app(80, 24, 1);
    h.app.list.marked.clear();
    h.app.list.marked.insert("web1".into());
    h.app.list.marked.insert("build".into());
    h.app.list.selected = Some("web1".into());
    h
}

fn states(h: &Harness) -> Vec<(String, RunState)> {
    ["web1", "build"]
        .iter()
        .map(|n| (n.to_string(), h.host.state(n).expect("state").state))
        .collect()
}

#[test]
fn typing_at_the_list_with_vms_marked_changes_nothing_unasked() {
    let mut h = two_marked();
    let before = states(&h);
    h.type_text("cpus");
    h.key(KeyCode::Enter);
    assert_eq!(states(&h), before, "no VM changed state");
    assert!(h.app.consoles.is_empty(), "no console opened");
}

#[test]
fn a_state_change_on_marked_vms_asks_once_naming_them() {
    let mut h = two_marked();
    h.char('s');
    let Some(Overlay::Confirm(confirm)) = &h.app.overlay else {
        panic!("start on marked VMs must ask: {:?}", h.app.overlay);
    };
    assert!(confirm.message.contains("build"), "{}", confirm.message);
    assert!(
        confirm.message.contains("web1 is already running"),
        "the skipped one is named: {}",
        confirm.message
    );
    h.key(KeyCode::Enter);
    assert!(
        matches!(h.app.overlay, Some(Overlay::Confirm(_))),
        "Enter does not confirm a change to marked VMs"
    );
    h.char('y');
    assert_eq!(
        h.host.state("build").expect("state").state,
        RunState::Running
    );
}

#[test]
fn enter_on_a_marked_set_with_a_stopped_vm_refuses_the_same_way_every_time() {
    let mut h = two_marked();
    let mut answers = Vec::new();
    for _ in 0..3 {
        h.key(KeyCode::Enter);
        answers.push(h.app.status.as_ref().map(|s| s.text.clone()));
        assert!(h.app.consoles.is_empty());
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    let first = answers[0].clone().unwrap_or_default();
    assert!(first.contains("build is shut off"), "{first}");
}

#[test]
fn storage_keys_act_only_on_the_table_that_has_the_focus() {
    let mut h = fleet_app(80, 24, 1);
    h.char('2');
    let screen = h.screen();
    assert!(
        screen.contains("▶ storage pools"),
        "pools have the keys: {screen}"
    );
    assert!(!screen.contains("▶ volumes"), "{screen}");
    // A volume key in the pools table does nothing to the volume, and says how to get there.
    h.key(KeyCode::Delete);
    assert!(
        h.app.overlay.is_none(),
        "no volume was offered for deletion"
    );
    let status = h
        .app
        .status
        .as_ref()
        .map(|s| s.text.clone())
        .unwrap_or_default();
    assert!(status.contains("pools table has the keys"), "{status}");
    h.key(KeyCode::Tab);
    assert!(
        h.screen().contains("▶ volumes in default"),
        "{}",
        h.screen()
    );
    h.app.storage.volume = Some("base.qcow2".into());
    h.key(KeyCode::Delete);
    // Now the key is about the volume (base.qcow2 backs build.qcow2, so it is refused).
    let status = h
        .app
        .status
        .as_ref()
        .map(|s| s.text.clone())
        .unwrap_or_default();
    assert!(status.contains("default/base.qcow2"), "{status}");
    // A pool key in the volumes table is refused the same way.
    h.char('d');
    assert!(h.app.overlay.is_none());
    let status = h
        .app
        .status
        .as_ref()
        .map(|s| s.text.clone())
        .unwrap_or_default();
    assert!(status.contains("volumes table has the keys"), "{status}");
}

#[test]
fn the_light_theme_paints_its_own_background() {
    let mut h = fleet_app(80, 24, 1);
    h.app.theme = vmux::tui::theme::Theme::builtin("light").expect("built in");
    let buffer = common::tui::render_buffer(&h.app, 80, 24);
    let unpainted = buffer
        .content()
        .iter()
        .filter(|c| c.bg == ratatui::style::Color::Reset)
        .count();
    assert_eq!(unpainted, 0, "cells left to the terminal's own background");
    h.char('n');
    let buffer = common::tui::render_buffer(&h.app, 80, 24);
    assert!(
        buffer
            .content()
            .iter()
            .all(|c| c.bg != ratatui::style::Color::Reset)
    );
}

#[test]
fn the_wizard_file_browser_opens_where_vmux_was_started() {
    let mut h = fleet_app(80, 24, 1);
    h.app.cwd = "/home/u/kernels".into();
    h.dirs.insert(
        "/home/u/kernels".into(),
        vec![vmux::tui::action::DirEntry {
            name: "vmlinuz-6.1".into(),
            is_dir: false,
        }],
    );
    h.char('n');
    h.key(KeyCode::Enter);
    h.key(KeyCode::Char(' '));
    h.key(KeyCode::Down);
    h.ctrl('o');
    let Some(Overlay::Wizard(wizard)) = &h.app.overlay else {
        panic!("the wizard is open");
    };
    let picker = wizard.picker.as_ref().expect("the browser is open");
    assert_eq!(picker.dir, std::path::Path::new("/home/u/kernels"));
    assert!(h.screen().contains("vmlinuz-6.1"), "{}", h.screen());
}

#[test]
fn palette_completion_never_doubles_a_space() {
    let mut h = fleet_app(80, 24, 1);
    h.char(':');
    h.type_text("sta");
    h.key(KeyCode::Tab);
    h.type_text(" web1");
    let Some(Overlay::Palette(input)) = &h.app.overlay else {
        panic!("the palette is open");
    };
    assert_eq!(input.text(), "start web1");
}

/// The column (in characters) where `needle` ends on `line`.
fn end_of(line: &str, needle: &str) -> usize {
    let byte = line
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in {line}"));
    line[..byte].chars().count() + needle.chars().count()
}

#[test]
fn numbers_sit_right_aligned_under_right_aligned_titles() {
    let h = fleet_app(80, 24, 2);
    let screen = h.screen();
    let lines: Vec<&str> = screen.lines().collect();
    let header = lines.iter().find(|l| l.contains("NAME")).expect("header");
    let db = lines.iter().find(|l| l.contains(" db ")).expect("db row");
    let cpu = format!(
        "{:.1}",
        h.app
            .entry("db")
            .and_then(|vm| vm.cpu_percent())
            .expect("cpu")
    );
    let used = vmux::config::format_size(
        h.app
            .entry("db")
            .and_then(|vm| vm.used_bytes())
            .expect("rss"),
    );
    assert_eq!(end_of(header, "MEM"), end_of(db, " 4G"), "\n{header}\n{db}");
    assert_eq!(end_of(header, "CPU%"), end_of(db, &cpu), "\n{header}\n{db}");
    assert_eq!(
        end_of(header, "USED"),
        end_of(db, &used),
        "\n{header}\n{db}"
    );

    let mut h = fleet_app(80, 24, 1);
    h.char('2');
    let screen = h.screen();
    let lines: Vec<&str> = screen.lines().collect();
    let header = lines
        .iter()
        .find(|l| l.contains("CAPACITY"))
        .expect("pools header");
    let default = lines
        .iter()
        .find(|l| l.contains("default "))
        .expect("default row");
    assert_eq!(end_of(header, "CAPACITY"), end_of(default, "100G"));
    assert_eq!(end_of(header, "FREE"), end_of(default, "60G"));
}

#[test]
fn wide_screens_bound_the_name_column_and_widen_dialogs() {
    let mut h = fleet_app(200, 50, 1);
    let screen = h.screen();
    let header = screen.lines().find(|l| l.contains("NAME")).expect("header");
    // Mark, a space, NAME (at most 32 wide), a space: STATE starts by column 36.
    let state = header.find("STATE").map(|b| header[..b].chars().count());
    assert!(state.is_some_and(|x| x <= 36), "{header}");
    h.char('n');
    let top = h
        .screen()
        .lines()
        .find(|l| l.contains("new VM"))
        .expect("the wizard")
        .to_string();
    let width = top.chars().filter(|c| *c != ' ').count();
    assert!(width > 100, "the wizard grows with the screen: {top}");
}

#[test]
fn removing_a_disk_waits_for_the_guest_in_words_and_offers_force_when_it_does_not_answer() {
    let mut h = fleet_app(80, 24, 1);
    h.host.ignore_ejects();
    h.app.list.marked.clear();
    h.app.list.selected = Some("web1".into());
    h.char('X');
    h.key(KeyCode::Enter);
    h.char('y');
    let status = h
        .app
        .status
        .as_ref()
        .map(|s| s.text.clone())
        .unwrap_or_default();
    assert!(
        status.contains("asked the guest to eject vda") && status.contains("waiting"),
        "not past tense while the guest has not answered: {status}"
    );
    for _ in 0..16 {
        h.act(Action::Tick);
    }
    let status = h
        .app
        .status
        .as_ref()
        .map(|s| s.text.clone())
        .unwrap_or_default();
    assert!(status.contains("has not ejected vda"), "{status}");
    assert!(status.contains("Force"), "the way out is named: {status}");

    // Details count the seconds; X offers Force for the disk the guest holds on to.
    h.key(KeyCode::Tab);
    assert!(h.screen().contains("ejecting for"), "{}", h.screen());
    h.key(KeyCode::Tab);
    h.char('X');
    let screen = h.screen();
    assert!(screen.contains("being removed for"), "{screen}");
    assert!(screen.contains("Force"), "{screen}");
    h.key(KeyCode::Down);
    h.key(KeyCode::Down);
    h.key(KeyCode::Char(' '));
    h.key(KeyCode::Enter);
    let Some(Overlay::Confirm(confirm)) = &h.app.overlay else {
        panic!("a forced removal asks first: {:?}", h.app.overlay);
    };
    assert!(confirm.message.contains("without the guest's consent"));
    h.char('y');
    let info = h.host.info("web1").expect("running");
    assert!(info.disks.iter().all(|d| d.target != "vda"), "{info:?}");
}

#[test]
fn keys_that_cannot_act_say_why() {
    // Typing into the console of a VM that stopped.
    let mut h = fleet_app(80, 24, 1);
    h.app.list.marked.clear();
    h.app.list.selected = Some("web1".into());
    h.key(KeyCode::Enter);
    assert!(h.wait_console("type help"));
    h.host.crash("web1", "triple fault");
    h.act(Action::ConsoleClosed {
        id: h.app.consoles[0].id,
        reason: "the VM stopped".into(),
    });
    h.char('x');
    let status = h
        .app
        .status
        .as_ref()
        .map(|s| s.text.clone())
        .unwrap_or_default();
    assert!(status.contains("console of web1 is closed"), "{status}");

    // Ctrl-O in a field the file browser cannot fill.
    let mut h = fleet_app(80, 24, 1);
    h.char('n');
    h.ctrl('o');
    assert!(
        h.screen().contains("Ctrl-O browses for a file"),
        "{}",
        h.screen()
    );
}
