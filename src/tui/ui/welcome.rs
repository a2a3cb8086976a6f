//! The first-run screen, shown while no VM is defined: one key creates, starts and attaches
//! the built-in demo VM; another opens the wizard.

use super::layout;
use crate::tui::app::App;
use crate::tui::keymap::{Command, Context};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget, Wrap};

/// Draws the welcome box centred in `body`.
pub fn draw(app: &App, body: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let key = |command| {
        app.keymap
            .label(Context::Welcome, command)
            .unwrap_or_else(|| "?".into())
    };
    let area = layout::centered(body, 74, 13);
    let lines = vec![
        Line::from(Span::styled("Welcome to vmux", theme.title)),
        Line::raw(""),
        Line::raw("No virtual machines are defined yet."),
        Line::raw(""),
        Line::from(vec![
            Span::styled(format!(" {} ", key(Command::Demo)), theme.key),
            Span::raw(" create and start the built-in demo VM, then open its console"),
        ]),
        Line::from(vec![
            Span::styled(format!(" {} ", key(Command::New)), theme.key),
            Span::raw(" create a VM step by step (kernel, CPUs, memory)"),
        ]),
        Line::from(vec![
            Span::styled(format!(" {} ", key(Command::Quit)), theme.key),
            Span::raw(" quit"),
        ]),
        Line::raw(""),
        Line::from(Span::styled(
            "VMs keep running when you quit; run vmux again to come back to them.",
            theme.muted,
        )),
    ];
    Paragraph::new(lines)
        .style(theme.dialog)
        .wrap(Wrap { trim: false })
        .block(
            Block::new()
                .borders(Borders::ALL)
                .border_style(theme.border_focus)
                .padding(ratatui::widgets::Padding::horizontal(1))
                .style(theme.dialog),
        )
        .render(area, buf);
}
