//! Small drawing helpers shared by the panes and overlays: text sparklines, truncation,
//! durations, table rows, the bordered dialog box.

use crate::tui::app::App;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::widgets::{Block, Borders, Widget};

/// Bar heights; index 0 (blank) is never drawn for a sample.
const LEVELS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The newest `width` samples as block characters scaled to `max` (right-aligned: the
/// newest sample is the last character; missing samples are blank).
pub fn sparkline(
    values: impl DoubleEndedIterator<Item = f64> + ExactSizeIterator,
    width: usize,
    max: f64,
) -> String {
    let skip = values.len().saturating_sub(width);
    let mut out: String = std::iter::repeat_n(' ', width.saturating_sub(values.len())).collect();
    let max = if max > 0.0 { max } else { 1.0 };
    for v in values.skip(skip) {
        // Every sample shows at least the lowest bar: an idle VM has a visible baseline,
        // and only the part of the minute without samples stays blank.
        let level = ((v / max) * 8.0).round().clamp(1.0, 8.0) as usize;
        out.push(LEVELS[level]);
    }
    out
}

/// `text` cut to `width` characters, with `…` when cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// A compact duration: `42s`, `3m12s`, `2h05m`, `3d04h`.
pub fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Writes `text` at (x, y), cut to `width` characters.
pub fn put(buf: &mut Buffer, x: u16, y: u16, text: &str, width: u16, style: Style) {
    if width == 0 || !buf.area.contains(ratatui::layout::Position::new(x, y)) {
        return;
    }
    buf.set_stringn(x, y, text, usize::from(width), style);
}

/// Draws the titles of a table's `columns` on the first row of `area`.
pub fn table_header(
    columns: super::layout::Columns,
    area: Rect,
    style: Style,
    right: &[usize],
    buf: &mut Buffer,
) {
    let cells: Vec<(String, Style)> = columns
        .iter()
        .map(|(title, ..)| (title.to_string(), style))
        .collect();
    // Titles align like their columns' values, so numbers sit under their titles.
    table_row(columns, area, &cells, right, buf);
}

/// Draws one table row of `cells` (text and style per column) on the first row of `area`;
/// the columns listed in `right` are right-aligned.
pub fn table_row(
    columns: super::layout::Columns,
    area: Rect,
    cells: &[(String, Style)],
    right: &[usize],
    buf: &mut Buffer,
) {
    let mut x = area.x;
    let widths = super::layout::table_widths(columns, area.width);
    for (i, ((text, style), width)) in cells.iter().zip(widths).enumerate() {
        let text = truncate(text, usize::from(width));
        let pad = if right.contains(&i) {
            width.saturating_sub(text.chars().count() as u16)
        } else {
            0
        };
        put(buf, x + pad, area.y, &text, width - pad, *style);
        x += width + 1;
    }
}

/// Fills `area` with spaces in `style` (dialog backgrounds).
pub fn clear(buf: &mut Buffer, area: Rect, style: Style) {
    let area = area.intersection(buf.area);
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            buf[(x, y)].reset();
            buf[(x, y)].set_style(style);
        }
    }
}

/// A bordered dialog box with a title; returns its inner area.
pub(super) fn dialog(app: &App, area: Rect, title: &str, buf: &mut Buffer) -> Rect {
    let theme = &app.theme;
    clear(buf, area, theme.dialog);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border_focus)
        .title(format!(" {title} "))
        .title_style(theme.title)
        .style(theme.dialog);
    let inner = block.inner(area);
    block.render(area, buf);
    inner
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_pads_short_history_on_the_left() {
        let line = sparkline([0.0, 100.0].into_iter(), 4, 100.0);
        assert_eq!(line, "  ▁█");
    }

    #[test]
    fn sparkline_shows_only_the_newest_samples() {
        let line = sparkline([100.0, 0.0, 50.0].into_iter(), 2, 100.0);
        assert_eq!(line, "▁▄");
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("webserver", 5), "webs…");
        assert_eq!(truncate("web", 5), "web");
    }

    #[test]
    fn durations_are_compact() {
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(192), "3m12s");
        assert_eq!(duration(7500), "2h05m");
        assert_eq!(duration(3 * 86_400 + 4 * 3600), "3d04h");
    }
}
