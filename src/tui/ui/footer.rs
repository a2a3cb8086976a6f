//! The key footer: the most used keys of the current pane, read from the keymap so a
//! rebound key shows as rebound. `?` lists all of them.

use crate::tui::app::App;
use crate::tui::keymap::{Command, Context};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

/// Footer entries per context: command and its short label, most important first.
const FOOTER: &[(Context, &[(Command, &str)])] = &[
    (
        Context::List,
        &[
            (Command::Attach, "console"),
            (Command::Start, "start"),
            (Command::Shutdown, "shutdown"),
            (Command::ForceOff, "off"),
            (Command::Pause, "pause"),
            (Command::Reboot, "reboot"),
            (Command::New, "new"),
            (Command::Edit, "edit"),
            (Command::Details, "details"),
            (Command::Mark, "mark"),
            (Command::Filter, "filter"),
            (Command::Palette, "cmd"),
            (Command::Help, "help"),
            (Command::Quit, "quit"),
        ],
    ),
    (
        Context::Details,
        &[
            (Command::Details, "list"),
            (Command::Attach, "console"),
            (Command::Start, "start"),
            (Command::Shutdown, "shutdown"),
            (Command::ForceOff, "off"),
            (Command::Pause, "pause"),
            (Command::Edit, "edit"),
            (Command::Palette, "cmd"),
            (Command::Help, "help"),
            (Command::Quit, "quit"),
        ],
    ),
    (
        Context::Welcome,
        &[
            (Command::Demo, "create + start the demo VM"),
            (Command::New, "wizard"),
            (Command::Help, "help"),
            (Command::Quit, "quit"),
        ],
    ),
];

/// Draws the footer for the app's context.
pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    buf.set_style(area, theme.footer);
    let context = app.context();
    let Some((_, entries)) = FOOTER.iter().find(|(c, _)| *c == context) else {
        return;
    };
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1usize;
    for (command, label) in *entries {
        let Some(key) = app.keymap.label(context, *command) else {
            continue;
        };
        let width = key.chars().count() + label.chars().count() + 3;
        // Stop before a hint would be cut; `?` shows the rest.
        if used + width > usize::from(area.width) {
            break;
        }
        used += width;
        spans.push(Span::styled(key, theme.key));
        spans.push(Span::styled(format!(" {label}  "), theme.footer));
    }
    Line::from(spans).render(area, buf);
}
