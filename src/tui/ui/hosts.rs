//! The hosts pane: this machine, then each remote host of the settings file with its address,
//! autoconnect flag and connection state (the connector's words when it is unreachable).

use super::widgets::{put, truncate};
use crate::tui::app::App;
use crate::tui::hosts::state::HostState;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::widgets::{Block, Borders, Widget};

/// Width of the NAME column.
const NAME: u16 = 14;
/// Width of the ADDRESS column.
const ADDRESS: u16 = 30;
/// Width of the AUTO column.
const AUTO: u16 = 5;

/// Draws the pane into `body`.
pub fn draw(app: &App, body: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(format!(" Hosts ({}) ", app.hosts.len() + 1))
        .title_style(theme.title)
        .render(body, buf);
    let inner = Rect::new(
        body.x + 1,
        body.y + 1,
        body.width.saturating_sub(2),
        body.height.saturating_sub(2),
    );
    if inner.height < 2 {
        return;
    }
    let state_width = inner.width.saturating_sub(NAME + ADDRESS + AUTO + 3);
    row(
        buf,
        inner.x,
        inner.y,
        ["NAME", "ADDRESS", "AUTO", "STATE"],
        state_width,
        theme.header,
    );
    let mut y = inner.y + 1;
    row(
        buf,
        inner.x,
        y,
        ["local", "this machine", "-", "connected"],
        state_width,
        theme.muted,
    );
    for (i, host) in app.hosts.iter().enumerate() {
        y += 1;
        if y >= inner.bottom() {
            break;
        }
        let selected = i == app.hosts_selected;
        let style = match &host.state {
            _ if selected => theme.selected,
            HostState::Connected => theme.running,
            HostState::Unreachable(_) | HostState::Reconnecting { .. } => theme.error,
            HostState::Connecting | HostState::Disconnected => theme.base,
        };
        buf.set_style(Rect::new(inner.x, y, inner.width, 1), style);
        let auto = if host.entry.autoconnect { "yes" } else { "no" };
        row(
            buf,
            inner.x,
            y,
            [
                &host.entry.name,
                &host.entry.uri,
                auto,
                &host.state.describe(),
            ],
            state_width,
            style,
        );
    }
    if app.hosts.is_empty() && y + 2 < inner.bottom() {
        put(
            buf,
            inner.x,
            y + 2,
            "no remote hosts yet: a adds one (ssh://[user@]host[:port]); vmux must be installed there",
            inner.width,
            theme.muted,
        );
    }
}

fn row(buf: &mut Buffer, x: u16, y: u16, cells: [&str; 4], last: u16, style: Style) {
    let widths = [NAME, ADDRESS, AUTO, last];
    let mut left = x;
    for (text, width) in cells.into_iter().zip(widths) {
        put(
            buf,
            left,
            y,
            &truncate(text, usize::from(width)),
            width,
            style,
        );
        left += width + 1;
    }
}
