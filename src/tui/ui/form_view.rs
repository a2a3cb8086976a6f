//! Draws a [`Form`]'s fields, for every dialog and every wizard step: the focused field marked
//! `›`, its label, its value (text with the cursor, `[x] yes`, `◀ choice ▶`), and under it
//! its problem or, while focused (or always, when the field asks), its hint; checklists as a
//! heading over one row per item, scrolled to the cursor.

use super::widgets::{put, truncate};
use crate::tui::app::App;
use crate::tui::form::checklist::Checklist;
use crate::tui::form::{FieldValue, Form, FormField};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

/// How a form is laid out where it is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Look {
    /// Width of the label column.
    pub label: u16,
    /// Rows per field: 1 (the value only) or 2 (the value, then its problem or hint).
    pub rows: u16,
    /// Put the terminal cursor in the focused text field.
    pub cursor: bool,
    /// A problem or hint too long to fit under the value starts at the left edge instead
    /// (else it is cut).
    pub outdent: bool,
}

/// Draws the shown fields of `form` (checklists aside: see [`checklist`]) from the top of
/// `area`, `look.rows` rows each, as many as fit; `hint` gives the advice under a field.
pub fn fields(
    app: &App,
    form: &Form,
    area: Rect,
    look: Look,
    hint: &dyn Fn(&FormField) -> String,
    frame: &mut Frame,
) {
    let mut y = area.y;
    for (i, field) in form.fields.iter().enumerate() {
        if field.hidden || matches!(field.value, FieldValue::Checklist(_)) {
            continue;
        }
        if y >= area.bottom() {
            break;
        }
        let row = Rect::new(area.x, y, area.width, area.bottom() - y);
        draw_field(app, field, i == form.focus, row, look, &hint(field), frame);
        y += look.rows;
    }
}

/// One field at the top of `area`: label and value, then (with two rows) its problem or hint.
fn draw_field(
    app: &App,
    field: &FormField,
    focused: bool,
    area: Rect,
    look: Look,
    hint: &str,
    frame: &mut Frame,
) {
    let theme = &app.theme;
    let (y, value_width) = (area.y, area.width.saturating_sub(look.label));
    let buf = frame.buffer_mut();
    put(
        buf,
        area.x,
        y,
        &format!("{}{}", if focused { "›" } else { " " }, field.label),
        look.label,
        if focused { theme.key } else { theme.header },
    );
    let x = area.x + look.label;
    let chosen = if focused {
        theme.selected
    } else {
        theme.dialog
    };
    match &field.value {
        FieldValue::Text(input) => {
            let (visible, cursor) = input.window(usize::from(value_width.saturating_sub(1)));
            buf.set_style(Rect::new(x, y, value_width, 1), theme.input);
            put(buf, x, y, &visible, value_width, theme.input);
            if focused && look.cursor {
                frame.set_cursor_position((x + cursor as u16, y));
            }
        }
        FieldValue::Toggle(on) => {
            let (yes, no) = field
                .toggle_words
                .as_ref()
                .map_or(("yes", "no"), |(yes, no)| (yes.as_str(), no.as_str()));
            let text = if *on {
                format!("[x] {yes}")
            } else {
                format!("[ ] {no}")
            };
            let style = if !focused && field.error.is_some() {
                theme.error
            } else {
                chosen
            };
            put(buf, x, y, &text, value_width, style);
        }
        FieldValue::Choice { options, index } => {
            let word = options.get(*index).map_or("(none)", String::as_str);
            put(buf, x, y, &format!("◀ {word} ▶"), value_width, chosen);
        }
        FieldValue::Checklist(_) => {}
    }
    if look.rows < 2 || y + 1 >= area.bottom() {
        return;
    }
    let (text, style) = match &field.error {
        Some(error) => (error.as_str(), theme.error),
        None if focused || field.always_hint => {
            let style = if hint.starts_with("warning") {
                theme.warning
            } else {
                theme.muted
            };
            (hint, style)
        }
        None => return,
    };
    let fits = text.chars().count() <= usize::from(value_width);
    let (x, width) = if fits || !look.outdent {
        (x, value_width)
    } else {
        (area.x + 1, area.width.saturating_sub(1))
    };
    put(
        frame.buffer_mut(),
        x,
        y + 1,
        &truncate(text, usize::from(width)),
        width,
        style,
    );
}

/// A checklist field in `area`: its heading and hint, then one row per item (or what to do
/// when there are none), scrolled to the cursor.
pub fn checklist(
    app: &App,
    field: &FormField,
    focused: bool,
    label: u16,
    area: Rect,
    buf: &mut Buffer,
) {
    let theme = &app.theme;
    let FieldValue::Checklist(list) = &field.value else {
        return;
    };
    if area.height == 0 {
        return;
    }
    put(
        buf,
        area.x,
        area.y,
        &format!("{}{}", if focused { "›" } else { " " }, list.heading),
        label + 2,
        if focused { theme.key } else { theme.header },
    );
    put(
        buf,
        area.x + label + 2,
        area.y,
        &truncate(
            &field.hint,
            usize::from(area.width.saturating_sub(label + 2)),
        ),
        area.width.saturating_sub(label + 2),
        theme.muted,
    );
    let rows = Rect::new(area.x, area.y + 1, area.width, area.height - 1);
    if list.items.is_empty() {
        put(
            buf,
            rows.x + 1,
            rows.y,
            &list.empty,
            rows.width.saturating_sub(1),
            theme.muted,
        );
        return;
    }
    items(app, list, focused, rows, buf);
}

fn items(app: &App, list: &Checklist, focused: bool, rows: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let page = usize::from(rows.height);
    let offset = (list.cursor + 1).saturating_sub(page);
    for (row, (i, item)) in list
        .items
        .iter()
        .enumerate()
        .skip(offset)
        .take(page)
        .enumerate()
    {
        let y = rows.y + row as u16;
        let at_cursor = focused && i == list.cursor;
        let style = if at_cursor {
            theme.selected
        } else {
            theme.dialog
        };
        if at_cursor {
            buf.set_style(Rect::new(rows.x, y, rows.width, 1), style);
        }
        let mark = if item.checked { "[x]" } else { "[ ]" };
        let text = format!(" {mark} {:<28} ", item.label);
        let width = text.chars().count() as u16;
        put(buf, rows.x, y, &text, rows.width, style);
        let (note, note_style) = match &item.problem {
            Some(problem) if item.checked => (problem.as_str(), theme.error),
            _ => (
                item.note.as_str(),
                if at_cursor { style } else { theme.muted },
            ),
        };
        let rest = rows.width.saturating_sub(width);
        put(
            buf,
            rows.x + width,
            y,
            &truncate(note, usize::from(rest)),
            rest,
            note_style,
        );
    }
}
