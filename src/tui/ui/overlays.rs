//! Overlays drawn over the panes: the `?` help (every key of the pane underneath, from the
//! keymap), the `:` palette, confirmation dialogs, the wizard / edit form, and the task list
//! (`tasks_view`).

use super::dialog_view;
use super::layout;
use super::widgets::{dialog, put, truncate};
use super::wizard_view;
use crate::tui::app::{App, Overlay};
use crate::tui::confirm::Confirm;
use crate::tui::palette::VERBS;
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

/// Draws `overlay` over `area`.
pub fn draw(app: &App, overlay: &Overlay, area: Rect, frame: &mut Frame) {
    match overlay {
        Overlay::Help { scroll } => help(app, *scroll, area, frame.buffer_mut()),
        Overlay::Palette(input) => palette(app, input, area, frame),
        Overlay::Confirm(confirm) => confirm_dialog(app, confirm, area, frame.buffer_mut()),
        Overlay::Wizard(wizard) => wizard_view::draw(app, wizard, area, frame),
        Overlay::Dialog(dialog) => dialog_view::draw(app, dialog, area, frame),
        Overlay::Tasks { selected } => {
            super::tasks_view::draw(app, *selected, area, frame.buffer_mut())
        }
    }
}

fn help(app: &App, scroll: u16, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let context = app.context();
    let bindings = app.keymap.help(context);
    let key_width = bindings
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        .min(24);
    let mut lines: Vec<Line> = bindings
        .iter()
        .map(|(keys, description)| {
            Line::from(vec![
                Span::styled(format!(" {keys:<key_width$}  "), theme.key),
                Span::styled(*description, theme.dialog),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    let notes: &[&str] = match context {
        crate::tui::keymap::Context::Console => &[
            "Every other key goes to the guest.",
            "Mouse: drag to copy (OSC 52), wheel scrolls back;",
            "Shift-drag selects with the terminal's own selection instead.",
        ],
        crate::tui::keymap::Context::Scroll => &[
            "Keys do not reach the guest until you return to live.",
            "Mouse: drag to select and copy, wheel scrolls.",
        ],
        crate::tui::keymap::Context::Storage => &[
            "Tab switches between the pools and the volumes; the table marked ▶ has the keys:",
            "  volume keys work in the volumes table, s d a in the pools table, n in both.",
            "Clone, convert, upload and wipe run in the background; the status line shows",
            "  their progress (bytes done, rate, time left). T lists the tasks; x cancels one.",
            "Palette: pool-list, vol-list POOL, vol-create [POOL]",
        ],
        crate::tui::keymap::Context::Networks => &[
            "Starting and stopping networks needs CAP_NET_ADMIN (run vmux as root).",
            "The VM list shows each guest's address from these networks' DHCP leases.",
            "Palette: net-list, net-define, net-start NAME, net-destroy NAME",
        ],
        crate::tui::keymap::Context::Hosts => &[
            "Remote hosts are reached with the system ssh and run `vmux agent --stdio` there.",
            "Hosts are saved in the [[hosts]] entries of vmux.toml; autoconnect ones connect",
            "  at start-up. A dropped link reconnects after 1 s, 2 s, 4 s … at most 30 s.",
            "The VM list shows every connected host's VMs with a HOST column; each action,",
            "  console, dialog and pane works on the selected VM's host.",
            "n here makes a new VM on the selected (connected) host.",
            "Palette: hosts",
        ],
        _ => &[
            "Mouse: click a row to select it, a column title to sort, Ctrl-click to mark.",
            "Palette verbs: start shutdown destroy reboot reset suspend resume autostart",
            "  undefine console create edit theme filter list hosts help quit",
            "  pool-list vol-list vol-create net-list net-define net-start net-destroy",
            "  setvcpus attach-disk detach-disk setmem (--live, --config as in the CLI)",
            "  save [VM] [FILE] restore FILE managedsave managedsave-remove dommemstat",
            "A saved VM (S) lists as saved; starting it (s) resumes it where it was.",
            "Keys are configurable in the [keys] table of the settings file.",
        ],
    };
    lines.extend(
        notes
            .iter()
            .map(|n| Line::from(Span::styled(*n, theme.muted))),
    );
    // As wide as the longest line (so no key's description is cut), at least 78.
    let longest = lines.iter().map(Line::width).max().unwrap_or(0) as u16;
    let width = (longest + 2).max(78).min(area.width);
    let height = (lines.len() as u16 + 2).min(area.height);
    let rect = layout::centered(area, width, height);
    let inner = dialog(
        app,
        rect,
        &format!("keys: {} (↑↓ scroll, other keys close)", context.label()),
        buf,
    );
    let max_scroll = (lines.len() as u16).saturating_sub(inner.height);
    Paragraph::new(lines)
        .style(theme.dialog)
        .scroll((scroll.min(max_scroll), 0))
        .render(inner, buf);
}

fn palette(app: &App, input: &crate::tui::input::LineInput, area: Rect, frame: &mut Frame) {
    let theme = &app.theme;
    let width = area.width.saturating_sub(4).min(100);
    let rect = Rect::new(
        area.x + (area.width - width) / 2,
        area.bottom().saturating_sub(6).max(area.y),
        width,
        4.min(area.height),
    );
    let buf = frame.buffer_mut();
    let inner = dialog(
        app,
        rect,
        "command (Enter runs, Tab completes, Esc closes)",
        buf,
    );
    if inner.height == 0 {
        return;
    }
    let (visible, cursor) = input.window(usize::from(inner.width).saturating_sub(2));
    put(buf, inner.x, inner.y, ":", 1, theme.key);
    buf.set_style(
        Rect::new(inner.x + 1, inner.y, inner.width.saturating_sub(1), 1),
        theme.input,
    );
    put(
        buf,
        inner.x + 1,
        inner.y,
        &visible,
        inner.width.saturating_sub(1),
        theme.input,
    );
    if inner.height > 1 {
        let hint = format!("verbs: {}", VERBS.join(" "));
        put(
            buf,
            inner.x,
            inner.y + 1,
            &truncate(&hint, usize::from(inner.width)),
            inner.width,
            theme.muted,
        );
    }
    frame.set_cursor_position((inner.x + 1 + cursor as u16, inner.y));
}

fn confirm_dialog(app: &App, confirm: &Confirm, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let width = layout::dialog(area, 64, 0).width;
    let text_width = width.saturating_sub(4).max(1);
    let text_lines: u16 = confirm
        .message
        .lines()
        .map(|l| (l.chars().count() as u16).div_ceil(text_width).max(1))
        .sum();
    let rect = layout::centered(area, width, text_lines + 5);
    let inner = dialog(app, rect, &confirm.title, buf);
    let mut lines: Vec<Line> = confirm
        .message
        .lines()
        .map(|l| Line::from(Span::styled(l.to_string(), theme.dialog)))
        .collect();
    lines.push(Line::raw(""));
    let yes = if confirm.bulk {
        "yes (Enter does not confirm)   "
    } else {
        "yes   "
    };
    lines.push(Line::from(vec![
        Span::styled(" y ", theme.key),
        Span::styled(yes, theme.dialog),
        Span::styled(" n ", theme.key),
        Span::styled("no (Esc)", theme.dialog),
    ]));
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .style(theme.dialog)
        .render(
            Rect::new(
                inner.x + 1,
                inner.y,
                inner.width.saturating_sub(2),
                inner.height,
            ),
            buf,
        );
}
