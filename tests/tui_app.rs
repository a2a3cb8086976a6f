//! Headless tests of the TUI's behaviour: `update` driven with keys, mouse and host events
//! against a `FakeHost`, asserting what a user would see or what the host ends up doing.

mod common;

use common::tui::{Harness, fleet, fleet_app, status_text};
use crossterm::event::{KeyCode, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use vmux::client::Host;
use vmux::client::fake::FakeHost;
use vmux::config::{BootConfig, VmConfig};
use vmux::protocol::RunState;
use vmux::tui::action::{Action, HostOp};
use vmux::tui::app::{Overlay, Pane, StatusKind};
use vmux::tui::console::Link;
use vmux::tui::keymap::Context;

fn state(harness: &Harness, name: &str) -> RunState {
    harness.host.status(name).expect("defined").state
}

fn select(harness: &mut Harness, name: &str) {
    harness.app.list.selected = Some(name.to_string());
}

fn mouse(kind: MouseEventKind, column: u16, row: u16) -> Action {
    Action::Mouse(MouseEvent {
        kind,
        column,
        row,
        modifiers: KeyModifiers::NONE,
    })
}

#[test]
fn first_run_enter_creates_starts_and_attaches_the_demo() {
    let mut harness = Harness::new(FakeHost::new());
    assert_eq!(harness.app.context(), Context::Welcome);
    assert!(harness.screen().contains("Welcome to vmux"));
    harness.key(KeyCode::Enter);
    assert_eq!(state(&harness, "demo"), RunState::Running);
    assert_eq!(harness.app.pane, Pane::Console);
    assert!(harness.wait_console("vmux demo guest"));
}

#[test]
fn pressing_enter_twice_on_the_welcome_screen_makes_one_demo() {
    let mut harness = Harness::new(FakeHost::new());
    let enter = || {
        Action::Key(crossterm::event::KeyEvent::new(
            KeyCode::Enter,
            KeyModifiers::NONE,
        ))
    };
    // The second Enter comes while the first creation is still in flight.
    vmux::tui::update(&mut harness.app, enter());
    vmux::tui::update(&mut harness.app, enter());
    let creates = harness
        .app
        .take_effects()
        .into_iter()
        .filter(|e| matches!(e, vmux::tui::action::Effect::Host(HostOp::Create { .. })))
        .count();
    assert_eq!(creates, 1);
}

#[test]
fn start_key_starts_the_selected_vm() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "build");
    harness.char('s');
    assert_eq!(state(&harness, "build"), RunState::Running);
    assert_eq!(
        harness.app.status.as_ref().map(|s| s.kind),
        Some(StatusKind::Ok)
    );
    assert!(status_text(&harness).contains("build started"));
}

#[test]
fn shutting_down_a_stopped_vm_says_why_nothing_happened() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "build");
    harness.char('d');
    assert!(
        status_text(&harness).contains("build is shut off"),
        "{}",
        status_text(&harness)
    );
}

#[test]
fn force_off_asks_first_and_no_keeps_the_vm_running() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "web1");
    harness.char('D');
    assert!(matches!(harness.app.overlay, Some(Overlay::Confirm(_))));
    assert!(harness.screen().contains("Force off web1?"));
    harness.char('n');
    assert!(harness.app.overlay.is_none());
    assert_eq!(state(&harness, "web1"), RunState::Running);
}

#[test]
fn force_off_confirmed_stops_the_vm() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "web1");
    harness.char('D');
    harness.char('y');
    assert_eq!(state(&harness, "web1"), RunState::ShutOff);
}

#[test]
fn marked_vms_are_started_together_after_confirmation() {
    let mut harness = Harness::new(fleet());
    harness.host.destroy("web1").expect("destroy");
    harness.refresh();
    select(&mut harness, "build");
    harness.key(KeyCode::Char(' '));
    select(&mut harness, "web1");
    harness.key(KeyCode::Char(' '));
    harness.char('s');
    match &harness.app.overlay {
        Some(Overlay::Confirm(confirm)) => {
            assert!(confirm.message.contains("build") && confirm.message.contains("web1"));
        }
        other => panic!("expected a confirmation, got {other:?}"),
    }
    harness.char('y');
    assert_eq!(state(&harness, "build"), RunState::Running);
    assert_eq!(state(&harness, "web1"), RunState::Running);
}

#[test]
fn filter_narrows_the_list_and_escape_clears_it() {
    let mut harness = Harness::new(fleet());
    harness.char('/');
    harness.type_text("we");
    assert_eq!(harness.app.visible().len(), 1);
    assert_eq!(harness.app.list.selected.as_deref(), Some("web1"));
    harness.key(KeyCode::Esc);
    // Five VMs and the one whose definition is broken.
    assert_eq!(harness.app.visible().len(), 6);
}

#[test]
fn filter_matches_states_too() {
    let mut harness = Harness::new(fleet());
    harness.char('/');
    harness.type_text("running");
    let names: Vec<&str> = harness
        .app
        .visible()
        .into_iter()
        .map(|i| harness.app.vms[i].name())
        .collect();
    assert_eq!(names, ["db", "web1"]);
}

#[test]
fn sort_key_orders_by_memory_then_reverses() {
    let mut harness = Harness::new(fleet());
    harness.char('o');
    harness.char('o');
    harness.char('o');
    let first = |h: &Harness| h.app.vms[h.app.visible()[0]].name().to_string();
    // The broken definition "old" has no known memory, so it sorts first.
    assert_eq!(first(&harness), "old");
    assert_eq!(harness.app.vms[harness.app.visible()[1]].name(), "mail");
    harness.char('O');
    assert_eq!(first(&harness), "build");
}

#[test]
fn clicking_a_column_title_sorts_and_clicking_a_row_selects() {
    let mut harness = Harness::new(fleet());
    // Header row is y=2 (header line, border); the STATE column starts after mark and name.
    let state_x = 1 + 1 + 1 + 20 + 1;
    harness.act(mouse(MouseEventKind::Down(MouseButton::Left), state_x, 2));
    assert_eq!(harness.app.list.sort, vmux::tui::app::SortColumn::State);
    harness.act(mouse(MouseEventKind::Down(MouseButton::Left), 5, 4));
    let second = harness.app.visible()[1];
    assert_eq!(
        harness.app.list.selected.as_deref(),
        Some(harness.app.vms[second].name())
    );
}

#[test]
fn console_shows_the_guests_answer_and_detach_leaves_it_running() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "web1");
    harness.key(KeyCode::Enter);
    assert_eq!(harness.app.pane, Pane::Console);
    assert!(harness.wait_console("type help"));
    harness.type_text("help");
    harness.key(KeyCode::Enter);
    assert!(harness.wait_console("commands: help"));
    harness.ctrl(']');
    assert_eq!(harness.app.pane, Pane::List);
    assert!(harness.app.consoles.is_empty());
    assert_eq!(state(&harness, "web1"), RunState::Running);
}

#[test]
fn q_in_a_console_goes_to_the_guest_not_quit() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "web1");
    harness.key(KeyCode::Enter);
    harness.char('q');
    assert!(!harness.app.should_quit());
    assert!(harness.wait_console("demo$ q"));
}

#[test]
fn late_attach_shows_earlier_output() {
    let mut harness = Harness::new(fleet());
    harness.host.emit("web1", b"booted long ago\r\n");
    select(&mut harness, "web1");
    harness.key(KeyCode::Enter);
    assert!(harness.wait_console("booted long ago"));
}

#[test]
fn attaching_a_stopped_vm_explains_how_to_start_it() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "build");
    harness.key(KeyCode::Enter);
    assert_eq!(harness.app.pane, Pane::List);
    assert!(status_text(&harness).contains("press s to start it"));
}

#[test]
fn two_marked_vms_attach_side_by_side() {
    let mut harness = fleet_app(120, 40, 1);
    select(&mut harness, "db");
    harness.key(KeyCode::Char(' '));
    select(&mut harness, "web1");
    harness.key(KeyCode::Char(' '));
    harness.key(KeyCode::Enter);
    assert_eq!(harness.app.consoles.len(), 2);
    let (rows, cols) = harness.app.consoles[0].size();
    assert_eq!((rows, cols), (38, 59));
    harness.key(KeyCode::F(2));
    assert_eq!(harness.app.focus, 1);
}

#[test]
fn scrollback_mode_keeps_keys_from_the_guest_and_search_finds_old_lines() {
    let mut harness = Harness::new(fleet());
    harness.host.emit("web1", b"needle in the log\r\n");
    for i in 0..100 {
        harness.host.emit("web1", format!("hay {i}\r\n").as_bytes());
    }
    select(&mut harness, "web1");
    harness.key(KeyCode::Enter);
    assert!(harness.wait_console("hay 99"));
    harness.key(KeyCode::PageUp);
    assert_eq!(harness.app.context(), Context::Scroll);
    harness.char('/');
    harness.type_text("needle");
    harness.key(KeyCode::Enter);
    let console = harness.app.focused_console().expect("console");
    assert!(console.visible_text().contains("needle in the log"));
    assert!(console.offset() > 0);
    harness.key(KeyCode::Esc);
    assert_eq!(harness.app.context(), Context::Console);
    assert_eq!(harness.app.focused_console().map(|c| c.offset()), Some(0));
}

#[test]
fn mouse_wheel_scrolls_back_and_down_to_live() {
    let mut harness = Harness::new(fleet());
    for i in 0..60 {
        harness
            .host
            .emit("web1", format!("line {i}\r\n").as_bytes());
    }
    select(&mut harness, "web1");
    harness.key(KeyCode::Enter);
    assert!(harness.wait_console("line 59"));
    harness.act(mouse(MouseEventKind::ScrollUp, 10, 10));
    assert_eq!(harness.app.focused_console().map(|c| c.offset()), Some(3));
    harness.act(mouse(MouseEventKind::ScrollDown, 10, 10));
    assert_eq!(harness.app.context(), Context::Console);
}

#[test]
fn dragging_in_the_console_copies_the_selection() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "web1");
    harness.key(KeyCode::Enter);
    assert!(harness.wait_console("type help"));
    // Row 1 of the screen is console row 0 (the title bar is row 0).
    harness.act(mouse(MouseEventKind::Down(MouseButton::Left), 0, 1));
    harness.act(mouse(MouseEventKind::Drag(MouseButton::Left), 3, 1));
    harness.act(mouse(MouseEventKind::Up(MouseButton::Left), 3, 1));
    assert_eq!(harness.clipboard, ["vmux"]);
    assert!(status_text(&harness).contains("copied 4 characters"));
}

#[test]
fn console_closes_when_the_vm_stops() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "web1");
    harness.key(KeyCode::Enter);
    let id = harness.app.consoles[0].id;
    harness.act(Action::ConsoleClosed {
        id,
        reason: "the console stream ended".into(),
    });
    assert!(matches!(harness.app.consoles[0].link, Link::Closed(_)));
    assert!(harness.screen().contains("console closed"));
}

#[test]
fn resizing_to_one_cell_while_attached_does_not_panic() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "web1");
    harness.key(KeyCode::Enter);
    harness.act(Action::Resize {
        width: 1,
        height: 1,
    });
    assert_eq!(harness.app.consoles[0].size(), (2, 2));
    assert_eq!(harness.screen(), "m\n");
}

#[test]
fn palette_runs_cli_verbs() {
    let mut harness = Harness::new(fleet());
    harness.char(':');
    harness.type_text("start build");
    harness.key(KeyCode::Enter);
    assert_eq!(state(&harness, "build"), RunState::Running);
}

#[test]
fn palette_says_setmaxmem_is_not_supported_yet() {
    let mut harness = Harness::new(fleet());
    harness.char(':');
    harness.type_text("setmaxmem web1 2G");
    harness.key(KeyCode::Enter);
    assert_eq!(
        harness.app.status.as_ref().map(|s| s.kind),
        Some(StatusKind::Error)
    );
    assert!(status_text(&harness).contains("not supported yet"));
}

#[test]
fn palette_tab_completes_vm_names() {
    let mut harness = Harness::new(fleet());
    harness.char(':');
    harness.type_text("console bu");
    harness.key(KeyCode::Tab);
    match &harness.app.overlay {
        Some(Overlay::Palette(input)) => assert_eq!(input.text(), "console build "),
        other => panic!("palette closed: {other:?}"),
    }
}

#[test]
fn wizard_creates_starts_and_attaches_a_vm() {
    let mut harness = Harness::new(fleet());
    harness.char('n');
    harness.ctrl('u');
    harness.type_text("fresh");
    // Name, boot, resources, disks, review (no networks defined: no network step).
    for _ in 0..5 {
        harness.key(KeyCode::Enter);
    }
    assert!(harness.app.overlay.is_none());
    assert_eq!(state(&harness, "fresh"), RunState::Running);
    assert_eq!(harness.app.pane, Pane::Console);
    assert!(harness.wait_console("on fresh"));
}

#[test]
fn wizard_refuses_an_existing_name_with_the_reason() {
    let mut harness = Harness::new(fleet());
    harness.char('n');
    harness.ctrl('u');
    harness.type_text("web1");
    harness.key(KeyCode::Enter);
    assert!(harness.screen().contains("already exists"));
}

#[test]
fn edit_form_saves_new_vcpus() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "build");
    harness.char('e');
    harness.key(KeyCode::Down);
    harness.ctrl('u');
    harness.type_text("3");
    harness.key(KeyCode::Enter);
    assert_eq!(
        harness.host.status("build").expect("defined").config.vcpus,
        3
    );
    assert!(status_text(&harness).contains("changes apply at its next start"));
}

#[test]
fn delete_asks_then_removes_the_definition() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "build");
    harness.key(KeyCode::Delete);
    harness.char('y');
    assert!(harness.host.status("build").is_err());
    assert!(harness.app.entry("build").is_none());
}

#[test]
fn deleting_a_running_vm_is_refused_before_asking() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "web1");
    harness.key(KeyCode::Delete);
    assert!(harness.app.overlay.is_none());
    assert!(status_text(&harness).contains("stop it before deleting it"));
}

#[test]
fn pause_toggles_between_paused_and_running() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "web1");
    harness.char('p');
    assert_eq!(state(&harness, "web1"), RunState::Paused);
    harness.char('p');
    assert_eq!(state(&harness, "web1"), RunState::Running);
}

#[test]
fn autostart_key_flips_the_flag() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "mail");
    harness.char('a');
    assert!(
        harness
            .host
            .status("mail")
            .expect("defined")
            .config
            .autostart
    );
}

#[test]
fn host_refusal_is_shown_as_an_error() {
    let mut harness = Harness::new(fleet());
    harness
        .host
        .fail_next("start", "KVM is not available: /dev/kvm is missing");
    select(&mut harness, "build");
    harness.char('s');
    assert_eq!(
        harness.app.status.as_ref().map(|s| s.kind),
        Some(StatusKind::Error)
    );
    assert!(status_text(&harness).contains("/dev/kvm is missing"));
    assert!(harness.app.busy.is_empty());
}

#[test]
fn stats_samples_fill_the_sparkline_history() {
    let harness = fleet_app(80, 24, 5);
    let web1 = harness.app.entry("web1").expect("listed");
    assert_eq!(web1.history.cpu.len(), 5);
    assert_eq!(web1.history.vcpus.len(), 2);
}

#[test]
fn a_crashed_vm_shows_its_reason_when_selected() {
    let mut harness = Harness::new(fleet());
    select(&mut harness, "cache");
    harness.act(Action::Tick);
    assert!(harness.screen().contains("cache crashed: guest fault"));
}

#[test]
fn a_restarted_vm_starts_a_fresh_chart() {
    let mut harness = fleet_app(80, 24, 4);
    harness.host.destroy("web1").expect("destroy");
    harness.host.start("web1").expect("start");
    harness.refresh();
    assert_eq!(
        harness.app.entry("web1").map(|e| e.history.cpu.len()),
        Some(1)
    );
}

#[test]
fn info_messages_expire_but_the_screen_stays_quiet_otherwise() {
    let mut harness = Harness::new(fleet());
    harness.char('o');
    assert!(harness.app.status.is_some());
    harness.app.take_dirty();
    for _ in 0..10 {
        harness.act(Action::Tick);
    }
    assert!(harness.app.status.is_none());
    assert!(harness.app.take_dirty(), "expiry redraws once");
    harness.act(Action::Tick);
    assert!(
        !harness.app.take_dirty(),
        "a plain tick changes nothing visible"
    );
}

#[test]
fn q_quits_and_leaves_vms_running() {
    let mut harness = Harness::new(fleet());
    harness.char('q');
    assert!(harness.app.should_quit());
    assert_eq!(state(&harness, "web1"), RunState::Running);
}

#[test]
fn unchanged_poll_does_not_redraw() {
    let mut harness = Harness::new(FakeHost::with_vms([VmConfig::new("a", BootConfig::Demo)]));
    harness.app.take_dirty();
    harness.act(Action::Listed(harness.host.list()));
    assert!(!harness.app.take_dirty());
}

#[test]
fn a_poll_between_the_wizards_define_and_start_does_not_keep_the_console_shut() {
    // The wizard's create defines the VM, then starts it; a poll in between (the TUI polls
    // every second, and a start can take longer on a busy host) lists it as shut off.
    let mut harness = Harness::new(FakeHost::new());
    let config = VmConfig::new("e2e", BootConfig::Demo);
    harness.host.define(&config).expect("define");
    harness.refresh();
    harness.host.start("e2e").expect("start");

    harness.act(Action::OpDone {
        op: HostOp::Create {
            config: Box::new(config),
            start: true,
            attach: true,
            new_volume: None,
            networks: Vec::new(),
            start_networks: Vec::new(),
            image: None,
        },
        result: Ok("e2e created and started".into()),
    });

    assert_eq!(harness.app.pane, Pane::Console, "{}", status_text(&harness));
    assert!(harness.wait_console("demo$"));
}
