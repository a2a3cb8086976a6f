//! `draw`: renders the [`App`] into a ratatui frame. Pure: it reads the app and writes
//! cells, nothing else (no host calls, no I/O, no state changes), so it can run at any rate
//! and be tested with `TestBackend`.
//!
//! One file per pane or dialog; `layout` holds the geometry shared with `update`. The header
//! names the panes (`1` VMs, `2` Storage, `3` Networks); the status line shows messages, or the
//! progress of a running storage or network task.

mod details;
mod dialog_view;
mod footer;
mod form_view;
mod hosts;
mod list;
mod networks;
mod overlays;
mod storage;
mod tasks_view;
mod terminal;
mod welcome;
mod widgets;
mod wizard_view;

pub mod layout;

pub use terminal::TerminalView;

use super::app::{App, Pane, StatusKind};
use crate::config::format_size;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

/// Draws the whole screen for `app`.
pub fn draw(app: &App, frame: &mut Frame) {
    let area = frame.area();
    if area.is_empty() {
        return;
    }
    let buf = frame.buffer_mut();
    buf.set_style(area, app.theme.base);
    if layout::too_small(area) {
        too_small(app, area, buf);
        return;
    }
    match app.pane {
        Pane::Console => terminal::draw_consoles(app, frame, area),
        Pane::List | Pane::Details | Pane::Storage | Pane::Networks | Pane::Hosts => {
            let main = layout::main(area);
            header(app, main.header, frame.buffer_mut());
            let buf = frame.buffer_mut();
            match app.pane {
                _ if app.welcome() => welcome::draw(app, main.body, buf),
                Pane::List => list::draw(app, main.body, buf),
                Pane::Storage => storage::draw(app, main.body, buf),
                Pane::Networks => networks::draw(app, main.body, buf),
                Pane::Hosts => hosts::draw(app, main.body, buf),
                _ => details::draw(app, main.body, buf),
            }
            status_line(app, main.status, frame);
            long_error(app, main.status, frame.buffer_mut());
            footer::draw(app, main.footer, frame.buffer_mut());
        }
    }
    if let Some(overlay) = &app.overlay {
        overlays::draw(app, overlay, area, frame);
    }
}

fn too_small(app: &App, area: Rect, buf: &mut Buffer) {
    let text = format!(
        "make the window larger (need {}×{}, have {}×{})",
        layout::MIN_WIDTH,
        layout::MIN_HEIGHT,
        area.width,
        area.height
    );
    let lines = (text.chars().count() as u16).div_ceil(area.width.max(1));
    let y = area.y + area.height.saturating_sub(lines) / 2;
    let rect = Rect::new(area.x, y, area.width, area.bottom().saturating_sub(y));
    Paragraph::new(text)
        .style(app.theme.warning)
        .centered()
        .wrap(Wrap { trim: true })
        .render(rect, buf);
}

fn header(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let current = match app.pane {
        Pane::Details | Pane::Console => Pane::List,
        other => other,
    };
    let mut spans = vec![Span::styled(
        " vmux ",
        theme.accent.add_modifier(ratatui::style::Modifier::BOLD),
    )];
    let panes = [Pane::List, Pane::Storage, Pane::Networks, Pane::Hosts];
    // The hosts tab takes room only once there are hosts (or its pane is open): 80 columns
    // keep the memory figures otherwise.
    let hosts_tab = app.show_hosts() || app.pane == Pane::Hosts;
    let tabs = panes
        .into_iter()
        .zip(layout::TABS)
        .filter(|(pane, _)| hosts_tab || *pane != Pane::Hosts);
    for (pane, (key, name)) in tabs {
        let style = if pane == current {
            theme.selected
        } else {
            theme.muted
        };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(format!("{key} {name}"), style));
    }
    let mut used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    let width = usize::from(area.width);
    let mut optional = vec![Span::styled(format!("  {}", vm_counts(app)), theme.base)];
    if let Some(memory) = app.host_memory {
        let (free, total) = (format_size(memory.available), format_size(memory.total));
        // The longest form that fits: 80 columns keep the counts and the figures.
        let forms = [
            format!("  ·  host memory {free} free of {total}"),
            format!("  ·  host {free} free of {total}"),
            format!(" · {free}/{total} free"),
        ];
        let base: usize = used + optional[0].content.chars().count();
        let text = forms
            .iter()
            .find(|form| base + form.chars().count() <= width)
            .unwrap_or(&forms[2])
            .clone();
        optional.push(Span::styled(text, theme.muted));
    }
    let theme_name = format!("theme {}  ", theme.name);
    // Facts are shown in order while they fit; the theme name only when room is left.
    for span in optional {
        let w = span.content.chars().count();
        if used + w > width {
            break;
        }
        used += w;
        spans.push(span);
    }
    Line::from(spans).render(area, buf);
    if used + theme_name.chars().count() + 2 <= width {
        Line::from(vec![Span::styled(theme_name, theme.muted)])
            .right_aligned()
            .render(area, buf);
    }
}

/// "3 VMs: 1 running, 1 paused" (each state only when some VM is in it; "1 VM", "no VMs").
pub fn vm_counts(app: &App) -> String {
    use crate::protocol::RunState;
    let count = |state| app.vms.iter().filter(|vm| vm.state() == state).count();
    let total = match app.vms.len() {
        0 => "no VMs".to_string(),
        1 => "1 VM".to_string(),
        n => format!("{n} VMs"),
    };
    let states: Vec<String> = [(RunState::Running, "running"), (RunState::Paused, "paused")]
        .into_iter()
        .map(|(state, word)| (count(state), word))
        .filter(|(n, _)| *n > 0)
        .map(|(n, word)| format!("{n} {word}"))
        .collect();
    if states.is_empty() {
        total
    } else {
        format!("{total}: {}", states.join(", "))
    }
}

fn status_line(app: &App, area: Rect, frame: &mut Frame) {
    let theme = &app.theme;
    let buf = frame.buffer_mut();
    buf.set_style(area, theme.status);
    if app.list.filtering {
        let prompt = "filter: ";
        let width = usize::from(area.width).saturating_sub(prompt.len() + 1);
        let (visible, cursor) = app.list.filter.window(width);
        Line::from(vec![
            Span::styled(prompt, theme.status),
            Span::styled(visible, theme.input),
        ])
        .render(area, buf);
        if app.overlay.is_none() {
            frame.set_cursor_position((area.x + (prompt.len() + cursor) as u16, area.y));
        }
        return;
    }
    let quiet = app
        .status
        .as_ref()
        .is_none_or(|s| s.kind == StatusKind::Progress);
    if quiet && let Some((_, task)) = app.tasks.iter().next() {
        task_line(app, task, area, buf);
        return;
    }
    let line = match &app.status {
        Some(status) => Line::from(Span::styled(
            format!(" {}", status.text),
            status_style(app, status.kind),
        )),
        None => Line::from(Span::styled(format!(" {}", idle_hint(app)), theme.status)),
    };
    line.render(area, buf);
}

/// Width of a task's progress bar on the status line, cells (half on a narrow screen).
const BAR: usize = 16;

/// The oldest running task: a bar and its percentage, rate and time left (long tasks, from
/// the storage layer's own count), its words and elapsed time, then bytes done of bytes to do,
/// and how many more run (the task list, `T`, shows them all and cancels them). What matters
/// most comes first, so a narrow screen cuts the least useful part.
fn task_line(app: &App, task: &crate::tui::app::RunningTask, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let elapsed = widgets::duration(app.ticks.saturating_sub(task.started));
    let mut spans = vec![Span::styled(" ", theme.status)];
    let progress = task.progress.filter(|p| p.snapshot.measured());
    if let Some(progress) = progress {
        let width = if area.width >= 120 { BAR } else { BAR / 2 };
        spans.extend(bar_spans(app, progress.fraction(), width, theme.status));
        spans.push(Span::styled(
            format!(" {:>3}% ", percent(progress.fraction())),
            theme.status,
        ));
        if let Some(rate) = progress.rate_words() {
            spans.push(Span::styled(format!("{rate} · "), theme.status));
        }
    }
    let doing = if task.cancelling {
        format!("cancelling {}… {elapsed}", task.words())
    } else {
        format!("{}… {elapsed}", task.words())
    };
    spans.push(Span::styled(doing, theme.status));
    if let Some(progress) = progress {
        spans.push(Span::styled(
            format!(" · {}", progress.bytes_words()),
            theme.status,
        ));
    }
    let others = app.tasks.len() - 1;
    if others > 0 {
        spans.insert(1, Span::styled(format!("(+{others} more) "), theme.status));
    }
    Line::from(spans).render(area, buf);
}

/// A bar `width` cells wide on `base`, `fraction` of it filled.
pub(super) fn bar_spans(app: &App, fraction: f64, width: usize, base: Style) -> Vec<Span<'static>> {
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).floor() as usize).min(width);
    vec![
        Span::styled("█".repeat(filled), base.patch(only_fg(app.theme.ok))),
        Span::styled("░".repeat(width - filled), base),
    ]
}

/// Whole percent, rounded down: 100 only when done (the handle says 100 % only then).
pub(super) fn percent(fraction: f64) -> u32 {
    (fraction.clamp(0.0, 1.0) * 100.0).floor() as u32
}

/// Most rows a long error message takes (the status line and the rows above it).
const ERROR_ROWS: u16 = 3;

/// An error too long for the status line is wrapped over up to [`ERROR_ROWS`] rows ending
/// at the status line, over the bottom of the pane: error messages name the fix, and the
/// fix is usually at the end.
fn long_error(app: &App, status: Rect, buf: &mut Buffer) {
    let Some(message) = app
        .status
        .as_ref()
        .filter(|s| s.kind == StatusKind::Error && app.overlay.is_none() && !app.list.filtering)
    else {
        return;
    };
    let width = status.width.saturating_sub(2).max(1);
    let text = format!(" {}", message.text);
    let rows = (text.chars().count() as u16).div_ceil(width);
    if rows <= 1 || status.width == 0 {
        return;
    }
    let rows = rows.min(ERROR_ROWS).min(status.y);
    let area = Rect::new(status.x, status.y + 1 - rows, status.width, rows);
    widgets::clear(buf, area, app.theme.status);
    Paragraph::new(text)
        .style(status_style(app, StatusKind::Error))
        .wrap(Wrap { trim: false })
        .render(
            Rect::new(area.x, area.y, area.width.saturating_sub(1), area.height),
            buf,
        );
}

/// The style for a status message of `kind`, on the status bar's background.
pub(super) fn status_style(app: &App, kind: StatusKind) -> Style {
    let theme = &app.theme;
    match kind {
        StatusKind::Info | StatusKind::Progress => theme.status,
        StatusKind::Ok => theme.status.patch(only_fg(theme.ok)),
        StatusKind::Error => theme.status.patch(only_fg(theme.error)),
    }
}

/// `style` without its background (to draw coloured text on a bar).
fn only_fg(style: Style) -> Style {
    Style { bg: None, ..style }
}

fn idle_hint(app: &App) -> String {
    if !matches!(app.pane, Pane::List | Pane::Details) {
        return String::new();
    }
    let filter = app.list.filter.text();
    if !app.list.marked.is_empty() {
        return format!(
            "{} marked: actions apply to all of them (Esc clears)",
            app.list.marked.len()
        );
    }
    if !filter.is_empty() {
        return format!("filter '{filter}' (Esc clears)");
    }
    String::new()
}
