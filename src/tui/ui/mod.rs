//! `draw`: renders the [`App`] into a ratatui frame. Pure: it reads the app and writes
//! cells, nothing else (no host calls, no I/O, no state changes), so it can run at any rate
//! and be tested with `TestBackend`.
//!
//! One file per pane or dialog; `layout` holds the geometry shared with `update`.

mod details;
mod footer;
mod list;
mod overlays;
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
        Pane::List | Pane::Details => {
            let main = layout::main(area);
            header(app, main.header, frame.buffer_mut());
            if app.welcome() {
                welcome::draw(app, main.body, frame.buffer_mut());
            } else if app.pane == Pane::List {
                list::draw(app, main.body, frame.buffer_mut());
            } else {
                details::draw(app, main.body, frame.buffer_mut());
            }
            status_line(app, main.status, frame);
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
    let running = app.vms.iter().filter(|vm| vm.is_live()).count();
    let mut spans = vec![
        Span::styled(
            " vmux ",
            theme.accent.add_modifier(ratatui::style::Modifier::BOLD),
        ),
        Span::styled(
            format!(" {} VMs, {} running", app.vms.len(), running),
            theme.base,
        ),
    ];
    if let Some(memory) = app.host_memory {
        spans.push(Span::styled(
            format!(
                "  ·  host memory {} free of {}",
                format_size(memory.available),
                format_size(memory.total)
            ),
            theme.muted,
        ));
    }
    Line::from(spans).render(area, buf);
    let right = Line::from(vec![Span::styled(
        format!("theme {}  ", theme.name),
        theme.muted,
    )])
    .right_aligned();
    right.render(area, buf);
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
    let line = match &app.status {
        Some(status) => Line::from(Span::styled(
            format!(" {}", status.text),
            status_style(app, status.kind),
        )),
        None => Line::from(Span::styled(format!(" {}", idle_hint(app)), theme.status)),
    };
    line.render(area, buf);
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
