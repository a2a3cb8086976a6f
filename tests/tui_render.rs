//! Rendering tests: every pane and dialog drawn with ratatui's `TestBackend` at 80×24 and
//! 200×50 and compared with committed snapshots (tests/snapshots/), plus degenerate sizes
//! (1×1, zero width or height) that must not panic, and colour checks for the 16-colour
//! theme and `NO_COLOR`.

mod common;

use common::tui::{Harness, fleet_app, render, render_buffer};
use crossterm::event::KeyCode;
use ratatui::style::Color;
use std::path::PathBuf;
use std::time::Duration;
use vmux::client::fake::FakeHost;
use vmux::progress::ProgressSnapshot;
use vmux::tui::App;
use vmux::tui::action::{Action, DirEntry};
use vmux::tui::keymap::Keymap;
use vmux::tui::tasks::TaskProgress;
use vmux::tui::theme::Theme;
use vmux::tui::update;

/// Every screen worth a snapshot, built at `width`×`height`.
fn fixtures(width: u16, height: u16) -> Vec<(&'static str, Harness)> {
    let fleet = || {
        let mut h = fleet_app(width, height, 12);
        h.app.list.selected = Some("web1".into());
        h.app.list.marked.insert("db".into());
        h
    };
    let attached = |name: &str| {
        let mut h = fleet();
        h.app.list.marked.clear();
        h.app.list.selected = Some(name.to_string());
        h.key(KeyCode::Enter);
        assert!(h.wait_console("type help"));
        h
    };
    let mut out = Vec::new();

    out.push(("list", fleet()));

    let mut h = fleet();
    h.char('/');
    h.type_text("e");
    out.push(("list_filtering", h));

    let mut h = fleet();
    h.app.list.selected = Some("db".into());
    h.key(KeyCode::Tab);
    out.push(("details", h));

    let mut h = attached("web1");
    h.type_text("help");
    h.key(KeyCode::Enter);
    assert!(h.wait_console("commands:"));
    out.push(("console", h));

    let mut h = fleet();
    h.app.list.marked.insert("web1".into());
    h.key(KeyCode::Enter);
    assert!(h.wait_console("type help"));
    h.key(KeyCode::F(2));
    assert!(h.wait_console("type help"));
    out.push(("console_split", h));

    let mut h = fleet();
    h.host.emit("web1", b"kernel: needle found here\r\n");
    for i in 0..80 {
        h.host
            .emit("web1", format!("boot message {i}\r\n").as_bytes());
    }
    h.app.list.marked.clear();
    h.key(KeyCode::Enter);
    assert!(h.wait_console("boot message 79"));
    h.key(KeyCode::PageUp);
    h.char('/');
    h.type_text("needle");
    h.key(KeyCode::Enter);
    out.push(("console_search", h));

    out.push(("welcome", Harness::sized(FakeHost::new(), width, height)));

    let mut h = fleet();
    h.char('?');
    out.push(("help", h));

    let mut h = attached("web1");
    h.key(KeyCode::F(1));
    out.push(("console_help", h));

    let mut h = fleet();
    h.char(':');
    h.type_text("start bu");
    out.push(("palette", h));

    let mut h = fleet();
    h.char('D');
    out.push(("confirm_force_off", h));

    let mut h = fleet();
    h.char('n');
    out.push(("wizard_name", h));

    let mut h = fleet();
    h.char('n');
    h.key(KeyCode::Enter);
    h.key(KeyCode::Char(' '));
    h.key(KeyCode::Down);
    h.type_text("/nonexistent/vmlinuz");
    out.push(("wizard_boot_kernel", h));

    let mut h = fleet();
    h.char('n');
    h.key(KeyCode::Enter);
    h.key(KeyCode::Char(' '));
    h.key(KeyCode::Down);
    h.dirs.insert(
        PathBuf::from("/"),
        ["boot", "srv", "vmlinuz", "initrd.img"]
            .iter()
            .map(|name| DirEntry {
                name: name.to_string(),
                is_dir: !name.contains('.') && *name != "vmlinuz",
            })
            .collect(),
    );
    h.ctrl('o');
    h.key(KeyCode::Down);
    out.push(("wizard_picker", h));

    let mut h = fleet();
    h.char('n');
    h.key(KeyCode::Enter);
    h.key(KeyCode::Enter);
    h.ctrl('u');
    h.type_text("9");
    out.push(("wizard_resources", h));

    let mut h = fleet();
    h.char('n');
    for _ in 0..5 {
        h.key(KeyCode::Enter);
    }
    out.push(("wizard_review", h));

    let mut h = fleet();
    h.app.list.selected = Some("db".into());
    h.char('e');
    out.push(("edit_form", h));

    out.extend(wizard_image_fixtures(&fleet));

    out.extend(storage_fixtures(&fleet));
    out.extend(network_fixtures(&fleet));
    out.extend(wizard_device_fixtures(&fleet));
    out.extend(hotplug_fixtures(&fleet));
    out
}

/// The hot-add dialogs and what details show after live changes.
fn hotplug_fixtures(fleet: &dyn Fn() -> Harness) -> Vec<(&'static str, Harness)> {
    let on = |vm: &str| {
        let mut h = fleet();
        h.app.list.marked.clear();
        h.app.list.selected = Some(vm.to_string());
        h
    };
    let mut out = Vec::new();
    let mut h = on("web1");
    h.char('A');
    out.push(("add_disk", h));

    let mut h = on("web1");
    h.char('A');
    h.key(KeyCode::Char(' '));
    out.push(("add_disk_new_volume", h));

    let mut h = on("web1");
    h.char(':');
    h.type_text("attach-disk web1 default/base.qcow2 --readonly --live");
    h.key(KeyCode::Enter);
    h.char('+');
    h.act(Action::Info {
        vm: "web1".into(),
        info: vmux::client::Host::info(h.host.as_ref(), "web1").expect("running"),
    });
    h.key(KeyCode::Tab);
    out.push(("details_after_hot_add", h));

    let mut h = on("web1");
    h.char('X');
    out.push(("remove_disk", h));
    out
}

/// The storage pane and its dialogs.
fn storage_fixtures(fleet: &dyn Fn() -> Harness) -> Vec<(&'static str, Harness)> {
    let storage = || {
        let mut h = fleet();
        h.char('2');
        h
    };
    let volume = |name: &str| {
        let mut h = storage();
        h.key(KeyCode::Tab);
        h.app.storage.volume = Some(name.to_string());
        h
    };
    let mut out = Vec::new();
    out.push(("storage", storage()));
    out.push(("storage_volumes", volume("build.qcow2")));

    let mut h = storage();
    h.char('n');
    out.push(("storage_new_volume", h));

    let mut h = storage();
    h.char('n');
    h.ctrl('u');
    h.type_text("web1.qcow2");
    h.key(KeyCode::Down);
    h.ctrl('u');
    h.type_text("10X");
    out.push(("storage_new_volume_errors", h));

    let mut h = volume("web1.qcow2");
    h.char('r');
    out.push(("storage_resize_running", h));

    let mut h = volume("base.qcow2");
    h.char('c');
    h.key(KeyCode::Down);
    h.key(KeyCode::Char(' '));
    out.push(("storage_clone_linked", h));

    let mut h = volume("base.qcow2");
    h.char('v');
    out.push(("storage_convert", h));

    let mut h = volume("base.qcow2");
    h.char('u');
    h.type_text("relative.img");
    out.push(("storage_upload", h));

    let mut h = volume("base.qcow2");
    h.char('W');
    out.push(("storage_confirm_wipe", h));

    let mut h = volume("web1.qcow2");
    h.key(KeyCode::Delete);
    out.push(("storage_delete_refused", h));

    let mut h = volume("base.qcow2");
    h.hold_tasks = true;
    h.char('c');
    h.key(KeyCode::Enter);
    let id = *h.app.tasks.keys().next().expect("clone running");
    for _ in 0..7 {
        h.act(Action::Tick);
    }
    let progress = TaskProgress {
        snapshot: ProgressSnapshot {
            done: 640 << 20,
            total: 1536 << 20,
            finished: false,
            cancelled: false,
        },
        rate: Some((85u64 << 20) as f64),
        eta: Some(Duration::from_secs(11)),
    };
    h.act(Action::TaskProgress { id, progress });
    out.push(("storage_clone_progress", h));

    let mut h = volume("base.qcow2");
    h.hold_tasks = true;
    h.char('c');
    h.key(KeyCode::Enter);
    h.char('v');
    h.key(KeyCode::Enter);
    let id = *h.app.tasks.keys().next().expect("clone running");
    h.act(Action::TaskProgress { id, progress });
    h.char('T');
    h.key(KeyCode::Down);
    h.char('x');
    out.push(("storage_tasks", h));
    out
}

/// The networks pane and its dialog.
fn network_fixtures(fleet: &dyn Fn() -> Harness) -> Vec<(&'static str, Harness)> {
    let networks = || {
        let mut h = fleet();
        h.char('3');
        h
    };
    let mut out = Vec::new();
    out.push(("networks", networks()));

    let mut h = networks();
    h.key(KeyCode::Down);
    out.push(("networks_inactive", h));

    let mut h = networks();
    h.char('n');
    out.push(("network_define", h));

    let mut h = networks();
    h.char('n');
    h.key(KeyCode::Down);
    h.key(KeyCode::Left);
    out.push(("network_define_bridge", h));

    let mut h = networks();
    h.networks.set_capability(false);
    h.key(KeyCode::Down);
    h.char('s');
    out.push(("network_start_no_capability", h));

    let mut h = networks();
    h.char('?');
    out.push(("networks_help", h));
    out
}

/// The wizard's disk and network steps and the review that reflects them.
fn wizard_device_fixtures(fleet: &dyn Fn() -> Harness) -> Vec<(&'static str, Harness)> {
    let at_disks = || {
        let mut h = fleet();
        h.char('n');
        for _ in 0..3 {
            h.key(KeyCode::Enter);
        }
        h
    };
    let mut out = Vec::new();
    let mut h = at_disks();
    h.key(KeyCode::Down);
    h.key(KeyCode::Char(' '));
    out.push(("wizard_disks", h));

    let mut h = at_disks();
    h.key(KeyCode::Tab);
    h.key(KeyCode::Char(' '));
    h.key(KeyCode::Tab);
    h.key(KeyCode::Char(' '));
    out.push(("wizard_disks_new", h));

    let mut h = at_disks();
    h.key(KeyCode::Enter);
    h.key(KeyCode::Char(' '));
    out.push(("wizard_network", h));

    let mut h = at_disks();
    h.key(KeyCode::Down);
    h.key(KeyCode::Char(' '));
    h.key(KeyCode::Tab);
    h.key(KeyCode::Char(' '));
    h.key(KeyCode::Enter);
    h.key(KeyCode::Char(' '));
    h.key(KeyCode::Enter);
    out.push(("wizard_review_devices", h));
    out
}

/// The wizard's disk-image source, its cloud-init step and the review of an image VM. The
/// cloud-init fields are typed over (their defaults come from $USER and ~/.ssh).
fn wizard_image_fixtures(fleet: &dyn Fn() -> Harness) -> Vec<(&'static str, Harness)> {
    let at_image = || {
        let mut h = fleet();
        h.char('n');
        h.key(KeyCode::Enter);
        h.key(KeyCode::Left);
        h
    };
    let at_cloud_init = || {
        let mut h = at_image();
        h.key(KeyCode::Down);
        h.key(KeyCode::Right);
        h.key(KeyCode::Enter);
        h.ctrl('u');
        h.type_text("me");
        h.key(KeyCode::Tab);
        h.ctrl('u');
        h.key(KeyCode::Tab);
        h.key(KeyCode::Char(' '));
        h
    };
    let mut out = Vec::new();
    let mut h = at_image();
    h.key(KeyCode::Down);
    h.key(KeyCode::Down);
    h.type_text("/nonexistent/debian-12-genericcloud-amd64.qcow2");
    out.push(("wizard_boot_image_file", h));

    out.push(("wizard_cloud_init", at_cloud_init()));

    let mut h = at_cloud_init();
    for _ in 0..4 {
        h.key(KeyCode::Enter);
    }
    out.push(("wizard_review_image", h));
    out
}

fn snapshot_all(width: u16, height: u16) {
    for (name, harness) in fixtures(width, height) {
        insta::assert_snapshot!(
            format!("{name}_{width}x{height}"),
            render(&harness.app, width, height)
        );
    }
}

#[test]
fn every_screen_at_80x24_matches_its_snapshot() {
    snapshot_all(80, 24);
}

#[test]
fn every_screen_at_200x50_matches_its_snapshot() {
    snapshot_all(200, 50);
}

#[test]
fn loading_screen_before_the_first_poll() {
    let mut app = App::new(Theme::default(), Keymap::default());
    update(
        &mut app,
        Action::Resize {
            width: 80,
            height: 24,
        },
    );
    let text = render(&app, 80, 24);
    assert!(text.contains("asking the host for VMs"));
    assert!(!text.contains("Welcome"));
}

#[test]
fn a_window_below_80x24_asks_to_be_enlarged() {
    let harness = fleet_app(79, 23, 1);
    insta::assert_snapshot!("too_small_79x23", render(&harness.app, 79, 23));
}

#[test]
fn degenerate_sizes_never_panic() {
    for (name, harness) in fixtures(80, 24) {
        for (width, height) in [(1, 1), (0, 0), (0, 24), (80, 0), (2, 40), (300, 3), (80, 1)] {
            let text = render(&harness.app, width, height);
            assert_eq!(
                text.lines().count(),
                usize::from(height),
                "{name} at {width}×{height}"
            );
        }
    }
}

fn is_ansi(colour: Color) -> bool {
    !matches!(colour, Color::Rgb(..) | Color::Indexed(_))
}

#[test]
fn sixteen_colour_theme_draws_only_ansi_colours() {
    for (name, mut harness) in fixtures(80, 24) {
        harness.app.theme = Theme::builtin("16-colour").expect("built in");
        let buffer = render_buffer(&harness.app, 80, 24);
        for cell in buffer.content() {
            assert!(is_ansi(cell.fg) && is_ansi(cell.bg), "{name}: {cell:?}");
        }
    }
}

#[test]
fn no_color_draws_no_colours_at_all() {
    for (name, mut harness) in fixtures(80, 24) {
        harness.app.theme = Theme::monochrome();
        let buffer = render_buffer(&harness.app, 80, 24);
        for cell in buffer.content() {
            assert_eq!(
                (cell.fg, cell.bg),
                (Color::Reset, Color::Reset),
                "{name}: {cell:?}"
            );
        }
    }
}

#[test]
fn state_labels_use_the_theme_colours() {
    let mut harness = fleet_app(80, 24, 1);
    harness.app.theme = Theme::builtin("16-colour").expect("built in");
    harness.app.list.selected = Some("build".into());
    let buffer = render_buffer(&harness.app, 80, 24);
    let text = render(&harness.app, 80, 24);
    let (y, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(" cache "))
        .expect("cache listed");
    let x = line
        .find("crashed")
        .map(|byte| line[..byte].chars().count())
        .expect("state shown");
    assert_eq!(buffer[(x as u16, y as u16)].fg, Color::LightRed);
}
