//! TUI frame times: `update` plus render plus diff (ratatui's `Terminal::draw` on a
//! `TestBackend`) at 200×50 for the list, the details charts and a busy console, and one
//! frame of scrolling a 50-VM list, all over `FakeHost`. Target: ≤ 2 ms each.
//!
//! `cargo bench --bench tui`

use criterion::{Criterion, criterion_group, criterion_main};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::hint::black_box;
use vmux::client::Host;
use vmux::client::fake::FakeHost;
use vmux::config::{BootConfig, VmConfig};
use vmux::tui::action::{Action, HostMemory};
use vmux::tui::keymap::Keymap;
use vmux::tui::theme::Theme;
use vmux::tui::{App, ui, update};

/// `count` VMs, every other one running, after a minute of stats.
fn app_with(count: usize, width: u16, height: u16) -> (App, FakeHost) {
    let host = FakeHost::with_vms((0..count).map(|i| {
        let mut config = VmConfig::new(&format!("vm{i:02}"), BootConfig::Demo);
        config.vcpus = 1 + (i as u32 % 4);
        config.max_vcpus = 8;
        config
    }));
    for i in (0..count).step_by(2) {
        host.start(&format!("vm{i:02}")).expect("start");
    }
    let mut app = App::new(Theme::default(), Keymap::default());
    update(&mut app, Action::Resize { width, height });
    update(
        &mut app,
        Action::HostMemory(HostMemory {
            total: 64 << 30,
            available: 40 << 30,
        }),
    );
    for _ in 0..60 {
        poll(&mut app, &host);
    }
    (app, host)
}

fn poll(app: &mut App, host: &FakeHost) {
    update(app, Action::Listed(host.list()));
    for status in host.list().into_iter().flatten() {
        if status.pid.is_some() {
            let stats = host.stats(&status.config.name).expect("stats");
            update(
                app,
                Action::Stats {
                    vm: status.config.name,
                    stats,
                },
            );
        }
    }
}

fn key(code: KeyCode) -> Action {
    Action::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn terminal(width: u16, height: u16) -> Terminal<TestBackend> {
    Terminal::new(TestBackend::new(width, height)).expect("test backend")
}

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_200x50");

    let (mut app, host) = app_with(12, 200, 50);
    let mut term = terminal(200, 50);
    group.bench_function("list_with_new_stats", |b| {
        b.iter(|| {
            poll(&mut app, &host);
            term.draw(|f| ui::draw(black_box(&app), f)).expect("draw");
        })
    });

    let (mut app, host) = app_with(12, 200, 50);
    update(&mut app, key(KeyCode::Tab));
    let mut term = terminal(200, 50);
    group.bench_function("details_charts_with_new_stats", |b| {
        b.iter(|| {
            poll(&mut app, &host);
            term.draw(|f| ui::draw(black_box(&app), f)).expect("draw");
        })
    });

    let (mut app, _host) = app_with(2, 200, 50);
    update(&mut app, key(KeyCode::Enter));
    update(&mut app, Action::ConsoleOpened(1));
    let mut line = 0u64;
    let mut term = terminal(200, 50);
    group.bench_function("console_scrolling_colour_text", |b| {
        b.iter(|| {
            line += 1;
            let text = format!(
                "\x1b[32m[{line:>8}]\x1b[0m \x1b[1mkernel:\x1b[0m {} \x1b[33mwarning\x1b[0m\r\n",
                "x".repeat(150)
            );
            update(
                &mut app,
                Action::ConsoleOutput {
                    id: 1,
                    bytes: text.into_bytes(),
                },
            );
            term.draw(|f| ui::draw(black_box(&app), f)).expect("draw");
        })
    });
    group.finish();
}

fn scrolling(c: &mut Criterion) {
    let (mut app, _host) = app_with(50, 200, 50);
    let mut term = terminal(200, 50);
    let mut down = true;
    let mut steps = 0;
    c.bench_function("list_50_vms_scroll_frame_200x50", |b| {
        b.iter(|| {
            // Walk to the bottom and back so the view really scrolls.
            steps += 1;
            if steps % 49 == 0 {
                down = !down;
            }
            update(
                &mut app,
                key(if down { KeyCode::Down } else { KeyCode::Up }),
            );
            term.draw(|f| ui::draw(black_box(&app), f)).expect("draw");
        })
    });
}

criterion_group!(benches, frames, scrolling);
criterion_main!(benches);
