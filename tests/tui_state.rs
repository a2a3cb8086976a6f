//! Headless tests of saving and memory from the TUI: `S` saves a running VM (after asking) so
//! it lists as saved and `s` resumes it; `[` and `]` move its memory a step through the
//! balloon; the palette's `save`, `restore`, `setmem` and `dommemstat`.

mod common;

use common::tui::{Harness, fleet_app, status_text};
use crossterm::event::KeyCode;
use vmux::client::Host;
use vmux::protocol::RunState;
use vmux::tui::app::{Overlay, StatusKind};

/// The fleet with `vm` selected and nothing marked.
fn on(vm: &str) -> Harness {
    let mut harness = fleet_app(100, 30, 1);
    harness.app.list.marked.clear();
    harness.app.list.selected = Some(vm.to_string());
    harness
}

fn state(harness: &Harness, vm: &str) -> RunState {
    harness.host.status(vm).expect("defined").state
}

#[test]
fn capital_s_asks_then_saves_and_the_vm_lists_as_saved() {
    let mut harness = on("web1");
    harness.char('S');
    assert!(
        matches!(harness.app.overlay, Some(Overlay::Confirm(_))),
        "asks first"
    );
    harness.char('y');
    harness.refresh();

    assert_eq!(state(&harness, "web1"), RunState::Saved);
    assert!(
        status_text(&harness).contains("start it to resume"),
        "{}",
        status_text(&harness)
    );
    assert!(harness.screen().contains("saved"), "{}", harness.screen());
}

#[test]
fn starting_a_saved_vm_resumes_it() {
    let mut harness = on("web1");
    harness.char('S');
    harness.char('y');
    harness.refresh();

    harness.char('s');
    harness.refresh();

    assert_eq!(state(&harness, "web1"), RunState::Running);
}

#[test]
fn left_bracket_takes_a_step_of_memory_through_the_balloon() {
    let mut harness = on("web1");
    let memory = harness.host.status("web1").expect("defined").config.memory;

    harness.char('[');

    let stats = harness.host.memory_stats("web1").expect("running");
    assert_eq!(stats.current_bytes, memory - memory / 8);
    assert!(
        status_text(&harness).contains("balloon"),
        "{}",
        status_text(&harness)
    );
}

#[test]
fn right_bracket_at_the_defined_memory_says_so() {
    let mut harness = on("web1");
    harness.char(']');
    assert_eq!(
        harness.app.status.as_ref().map(|s| s.kind),
        Some(StatusKind::Error)
    );
    assert!(
        status_text(&harness).contains("defined memory"),
        "{}",
        status_text(&harness)
    );
}

#[test]
fn palette_setmem_above_the_defined_memory_is_refused() {
    let mut harness = on("web1");
    harness.char(':');
    harness.type_text("setmem web1 64G");
    harness.key(KeyCode::Enter);
    assert!(
        status_text(&harness).contains("setmem cannot give it"),
        "{}",
        status_text(&harness)
    );
}

#[test]
fn palette_save_to_a_file_then_restore_brings_it_back() {
    let mut harness = on("web1");
    harness.char(':');
    harness.type_text("save web1 /srv/web1.save");
    harness.key(KeyCode::Enter);
    harness.refresh();
    assert_eq!(state(&harness, "web1"), RunState::ShutOff);

    harness.char(':');
    harness.type_text("restore /srv/web1.save");
    harness.key(KeyCode::Enter);
    harness.refresh();

    assert_eq!(state(&harness, "web1"), RunState::Running);
    assert!(
        status_text(&harness).contains("restored from /srv/web1.save"),
        "{}",
        status_text(&harness)
    );
}

#[test]
fn palette_dommemstat_shows_the_balloon_and_guest_memory() {
    let mut harness = on("web1");
    harness.char(':');
    harness.type_text("dommemstat web1");
    harness.key(KeyCode::Enter);
    assert!(
        status_text(&harness).contains("for the guest"),
        "{}",
        status_text(&harness)
    );
}

#[test]
fn the_help_overlay_lists_the_save_and_memory_keys() {
    let mut harness = on("web1");
    harness.char('?');
    let screen = harness.screen();
    assert!(screen.contains("save to disk and stop"), "{screen}");
    assert!(screen.contains("less memory"), "{screen}");
}
