//! The console screen: [`TerminalView`] turns a vt100 screen into ratatui cells (colours,
//! bold/italic/underline/inverse, wide characters), with the mouse selection and search
//! matches highlighted; `draw_consoles` lays out one or two consoles with their title bars.

use super::layout;
use super::widgets::{put, truncate};
use crate::tui::app::App;
use crate::tui::console::{ConsoleSession, Link, Selection};
use crate::tui::hosts::id::HostId;
use crate::tui::keymap::{Command, Context};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::Widget;

/// Renders a vt100 screen (at its current scrollback position) into an area. Cells beyond
/// the screen's size are left blank; a screen larger than the area is cut.
pub struct TerminalView<'a> {
    screen: &'a vt100::Screen,
    base: Style,
    colours: bool,
    selection: Option<(Selection, Style)>,
    search: Option<(&'a str, Style)>,
}

impl<'a> TerminalView<'a> {
    /// A view of `screen`; default colours come from `base`.
    pub fn new(screen: &'a vt100::Screen, base: Style) -> TerminalView<'a> {
        TerminalView {
            screen,
            base,
            colours: true,
            selection: None,
            search: None,
        }
    }

    /// Whether to show the guest's colours (off for `NO_COLOR`; attributes stay).
    pub fn colours(mut self, on: bool) -> Self {
        self.colours = on;
        self
    }

    /// Highlights `selection` with `style`.
    pub fn selection(mut self, selection: Option<Selection>, style: Style) -> Self {
        self.selection = selection.map(|s| (s, style));
        self
    }

    /// Highlights every case-insensitive occurrence of `query` with `style`.
    pub fn search(mut self, query: Option<&'a str>, style: Style) -> Self {
        self.search = query.filter(|q| !q.is_empty()).map(|q| (q, style));
        self
    }
}

/// vt100's colour to ratatui's; indexes 0-15 become the named ANSI colours so 16-colour
/// terminals show them with their own palette.
fn colour(c: vt100::Color) -> Option<Color> {
    const ANSI: [Color; 16] = [
        Color::Black,
        Color::Red,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Cyan,
        Color::Gray,
        Color::DarkGray,
        Color::LightRed,
        Color::LightGreen,
        Color::LightYellow,
        Color::LightBlue,
        Color::LightMagenta,
        Color::LightCyan,
        Color::White,
    ];
    match c {
        vt100::Color::Default => None,
        vt100::Color::Idx(i) if i < 16 => Some(ANSI[usize::from(i)]),
        vt100::Color::Idx(i) => Some(Color::Indexed(i)),
        vt100::Color::Rgb(r, g, b) => Some(Color::Rgb(r, g, b)),
    }
}

fn cell_style(cell: &vt100::Cell, base: Style, colours: bool) -> Style {
    let mut style = base;
    if colours {
        if let Some(fg) = colour(cell.fgcolor()) {
            style = style.fg(fg);
        }
        if let Some(bg) = colour(cell.bgcolor()) {
            style = style.bg(bg);
        }
    }
    let flags = [
        (cell.bold(), Modifier::BOLD),
        (cell.dim(), Modifier::DIM),
        (cell.italic(), Modifier::ITALIC),
        (cell.underline(), Modifier::UNDERLINED),
        (cell.inverse(), Modifier::REVERSED),
    ];
    for (on, modifier) in flags {
        if on {
            style = style.add_modifier(modifier);
        }
    }
    style
}

/// Columns of `row` where a search match starts, with its width in columns.
fn matches_in_row(screen: &vt100::Screen, row: u16, cols: u16, query: &str) -> Vec<(u16, u16)> {
    let needle: Vec<char> = query.chars().flat_map(char::to_lowercase).collect();
    // One entry per character: (column, lowercased char).
    let mut chars: Vec<(u16, char)> = Vec::with_capacity(usize::from(cols));
    for col in 0..cols {
        let Some(cell) = screen.cell(row, col) else {
            break;
        };
        if cell.is_wide_continuation() {
            continue;
        }
        let text = cell.contents();
        let c = text.chars().next().unwrap_or(' ');
        chars.extend(c.to_lowercase().map(|l| (col, l)));
    }
    let mut found = Vec::new();
    if needle.is_empty() || chars.len() < needle.len() {
        return found;
    }
    let mut i = 0;
    while i + needle.len() <= chars.len() {
        if chars[i..i + needle.len()]
            .iter()
            .map(|(_, c)| *c)
            .eq(needle.iter().copied())
        {
            let start = chars[i].0;
            let end = chars[i + needle.len() - 1].0;
            found.push((start, end - start + 1));
            i += needle.len();
        } else {
            i += 1;
        }
    }
    found
}

impl Widget for TerminalView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let area = area.intersection(buf.area);
        if area.is_empty() {
            return;
        }
        buf.set_style(area, self.base);
        let (rows, cols) = self.screen.size();
        let rows = rows.get().min(area.height);
        let cols = cols.get().min(area.width);
        for row in 0..rows {
            let y = area.y + row;
            let mut col = 0;
            while col < cols {
                let x = area.x + col;
                let Some(cell) = self.screen.cell(row, col) else {
                    break;
                };
                let mut style = cell_style(cell, self.base, self.colours);
                if let Some((selection, selected)) = &self.selection
                    && selection.contains(row, col)
                {
                    style = style.patch(*selected);
                }
                let contents = cell.contents();
                let symbol = if contents.is_empty() { " " } else { contents };
                if cell.is_wide() {
                    if col + 1 < cols {
                        buf[(x, y)].set_symbol(symbol).set_style(style);
                        // The right half is covered by the wide character.
                        buf[(x + 1, y)].reset();
                        buf[(x + 1, y)].set_style(style);
                    } else {
                        // Half a wide character does not fit in the last column.
                        buf[(x, y)].set_symbol(" ").set_style(style);
                    }
                    col += 2;
                    continue;
                }
                if !cell.is_wide_continuation() {
                    buf[(x, y)].set_symbol(symbol).set_style(style);
                }
                col += 1;
            }
            if let Some((query, style)) = self.search {
                for (start, width) in matches_in_row(self.screen, row, cols, query) {
                    for c in start..(start + width).min(cols) {
                        let cell = &mut buf[(area.x + c, y)];
                        cell.set_style(cell.style().patch(style));
                    }
                }
            }
        }
    }
}

/// Draws the attached consoles (one or two side by side) and the status line.
pub fn draw_consoles(app: &App, frame: &mut Frame, area: Rect) {
    let theme = &app.theme;
    let panes = layout::consoles(area, app.consoles.len());
    for (i, (console, pane)) in app.consoles.iter().zip(&panes).enumerate() {
        let focused = i == app.focus;
        title_bar(app, console, focused, pane.title, frame.buffer_mut());
        let query = console
            .search
            .as_ref()
            .map(|s| s.input.text())
            .filter(|_| console.scrolling);
        TerminalView::new(console.screen(), theme.base)
            .colours(theme.guest_colours)
            .selection(console.selection, theme.selection)
            .search(query, theme.search)
            .render(pane.screen, frame.buffer_mut());
        link_notice(app, console, pane.screen, frame.buffer_mut());
        let screen = console.screen();
        let show_cursor = focused
            && app.overlay.is_none()
            && console.link == Link::Live
            && console.offset() == 0
            && !screen.hide_cursor();
        if show_cursor {
            let (row, col) = screen.cursor_position();
            if row < pane.screen.height && col < pane.screen.width {
                frame.set_cursor_position((pane.screen.x + col, pane.screen.y + row));
            }
        }
    }
    if panes.len() == 2 {
        let left = panes[0].title;
        let x = left.right();
        let buf = frame.buffer_mut();
        for y in left.y..area.bottom().saturating_sub(1) {
            put(buf, x, y, "│", 1, theme.border);
        }
    }
    status(app, layout::console_status(area), frame);
}

fn title_bar(app: &App, console: &ConsoleSession, focused: bool, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let bar = if focused {
        theme.selected
    } else {
        theme.status
    };
    buf.set_style(area, bar);
    let state = app
        .vms
        .iter()
        .find(|vm| vm.name() == console.vm && vm.host == console.host)
        .map_or("gone", |vm| vm.state().label());
    let mode = match (&console.link, console.scrolling) {
        (Link::Connecting, _) => "connecting…".to_string(),
        (Link::Closed(_), _) => "closed".to_string(),
        (Link::Live, true) => format!(
            "scrollback {}/{}",
            console.offset(),
            console.scrollback_len()
        ),
        (Link::Live, false) => "live".to_string(),
    };
    let context = if console.scrolling {
        Context::Scroll
    } else {
        Context::Console
    };
    let key = |command| app.keymap.label(context, command);
    let mut hints = Vec::new();
    let wanted: &[(Command, &str)] = if console.scrolling {
        &[
            (Command::Back, "live"),
            (Command::Search, "search"),
            (Command::NextMatch, "next"),
            (Command::Copy, "copy"),
            (Command::Detach, "detach"),
        ]
    } else {
        &[
            (Command::Detach, "detach"),
            (Command::Scrollback, "scroll"),
            (Command::OtherConsole, "other console"),
            (Command::Help, "help"),
        ]
    };
    for (command, label) in wanted {
        if *command == Command::OtherConsole && app.consoles.len() < 2 {
            continue;
        }
        if let Some(k) = key(*command) {
            hints.push(format!("{k} {label}"));
        }
    }
    let left = match &console.host {
        HostId::Local => format!(" {} · {state} · {mode} ", console.vm),
        HostId::Remote(host) => format!(" {} on {host} · {state} · {mode} ", console.vm),
    };
    put(
        buf,
        area.x,
        area.y,
        &left,
        area.width,
        bar.add_modifier(Modifier::BOLD),
    );
    let used = left.chars().count() as u16;
    // Drop the least important hints until the rest fit beside the title.
    while !hints.is_empty() {
        let right = format!("{} ", hints.join("  "));
        let right_len = right.chars().count() as u16;
        if used + right_len < area.width {
            put(
                buf,
                area.right() - right_len,
                area.y,
                &right,
                right_len,
                bar,
            );
            break;
        }
        hints.pop();
    }
}

fn link_notice(app: &App, console: &ConsoleSession, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let text = match &console.link {
        Link::Connecting => format!("connecting to {}'s console…", console.vm),
        Link::Closed(reason) => {
            let detach = app
                .keymap
                .label(Context::Console, Command::Detach)
                .unwrap_or_default();
            format!("console closed: {reason}. {detach} returns to the list")
        }
        Link::Live => return,
    };
    let y = area.bottom().saturating_sub(1);
    if area.height == 0 {
        return;
    }
    let text = truncate(&text, usize::from(area.width));
    buf.set_style(Rect::new(area.x, y, area.width, 1), theme.dialog);
    put(
        buf,
        area.x,
        y,
        &text,
        area.width,
        theme
            .warning
            .patch(Style::new().bg(theme.dialog.bg.unwrap_or(Color::Reset))),
    );
}

fn status(app: &App, area: Rect, frame: &mut Frame) {
    let theme = &app.theme;
    let buf = frame.buffer_mut();
    buf.set_style(area, theme.status);
    let search = app
        .focused_console()
        .and_then(|c| c.search.as_ref().filter(|s| s.editing));
    if let Some(search) = search {
        let prompt = "search scrollback: ";
        let width = usize::from(area.width).saturating_sub(prompt.len() + 1);
        let (visible, cursor) = search.input.window(width);
        put(buf, area.x, area.y, prompt, area.width, theme.status);
        let x = area.x + prompt.len() as u16;
        put(
            buf,
            x,
            area.y,
            &visible,
            area.width.saturating_sub(prompt.len() as u16),
            theme.input,
        );
        if app.overlay.is_none() {
            frame.set_cursor_position((x + cursor as u16, area.y));
        }
        return;
    }
    if let Some(message) = &app.status {
        let style = super::status_style(app, message.kind);
        put(
            buf,
            area.x,
            area.y,
            &format!(" {}", message.text),
            area.width,
            style,
        );
    }
}
