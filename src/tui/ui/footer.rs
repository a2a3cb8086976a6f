//! The key footer: the most used keys of the current pane, read from the keymap so a
//! rebound key shows as rebound. `?` lists all of them. While storage or network tasks run,
//! the task list's key comes first (it shows their progress and cancels them).

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
            (Command::New, "new"),
            (Command::Pause, "pause"),
            (Command::Details, "details"),
            (Command::Edit, "edit"),
            (Command::Reboot, "reboot"),
            (Command::Mark, "mark"),
            (Command::Filter, "filter"),
            (Command::Palette, "cmd"),
            (Command::ShowStorage, "storage"),
            (Command::ShowNetworks, "networks"),
            (Command::Help, "help"),
            (Command::Quit, "quit"),
        ],
    ),
    (
        Context::Details,
        &[
            (Command::Details, "list"),
            (Command::Attach, "console"),
            (Command::VcpuAdd, "vCPU"),
            (Command::VcpuRemove, "vCPU"),
            (Command::DiskAdd, "add disk"),
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
        Context::Storage,
        &[
            (Command::VolNew, "new"),
            (Command::VolResize, "resize"),
            (Command::VolClone, "clone"),
            (Command::VolDelete, "delete"),
            (Command::VolWipe, "wipe"),
            (Command::FocusNext, "pools/volumes"),
            (Command::PoolStart, "start pool"),
            (Command::VolConvert, "convert"),
            (Command::VolUpload, "upload"),
            (Command::ShowVms, "VMs"),
            (Command::ShowNetworks, "networks"),
            (Command::Help, "help"),
            (Command::Quit, "quit"),
        ],
    ),
    (
        Context::Networks,
        &[
            (Command::NetNew, "new"),
            (Command::NetStart, "start"),
            (Command::NetStop, "stop"),
            (Command::NetDelete, "delete"),
            (Command::NetAutostart, "autostart"),
            (Command::ShowVms, "VMs"),
            (Command::ShowStorage, "storage"),
            (Command::Palette, "cmd"),
            (Command::Help, "help"),
            (Command::Quit, "quit"),
        ],
    ),
    (
        Context::Hosts,
        &[
            (Command::HostAdd, "add"),
            (Command::HostConnect, "connect"),
            (Command::HostDisconnect, "disconnect"),
            (Command::HostRemove, "remove"),
            (Command::ShowVms, "VMs"),
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

/// Draws the footer for the app's context. The help key is always shown, at the right, so
/// whatever does not fit is one key away.
pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    buf.set_style(area, theme.footer);
    let context = app.context();
    let Some((_, entries)) = FOOTER.iter().find(|(c, _)| *c == context) else {
        return;
    };
    let help = app
        .keymap
        .label(context, Command::Help)
        .map(|key| (key, "all keys"));
    let help_width = help
        .as_ref()
        .map_or(0, |(k, l)| k.chars().count() + l.chars().count() + 2);
    let room = usize::from(area.width).saturating_sub(help_width);
    let mut spans = vec![Span::raw(" ")];
    let mut used = 1usize;
    let tasks = (!app.tasks.is_empty()).then_some((Command::Tasks, "tasks/cancel"));
    for (command, label) in tasks.iter().chain(entries.iter()) {
        if *command == Command::Help {
            continue;
        }
        let Some(key) = app.keymap.label(context, *command) else {
            continue;
        };
        let width = key.chars().count() + label.chars().count() + 3;
        // Stop before a hint would be cut.
        if used + width > room {
            break;
        }
        used += width;
        spans.push(Span::styled(key, theme.key));
        spans.push(Span::styled(format!(" {label}  "), theme.footer));
    }
    Line::from(spans).render(area, buf);
    if let Some((key, label)) = help.filter(|_| help_width <= usize::from(area.width)) {
        Line::from(vec![
            Span::styled(key, theme.key),
            Span::styled(format!(" {label} "), theme.footer),
        ])
        .right_aligned()
        .render(area, buf);
    }
}
