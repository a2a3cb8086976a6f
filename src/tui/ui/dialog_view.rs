//! Draws a storage or network [`Dialog`]: its context lines, each shown field with its
//! problem (or, while focused, its hint) underneath, the dialog's own problem, and the keys.
//! Fits 80×24.

use super::layout;
use super::widgets::dialog as dialog_box;
use super::widgets::{put, truncate};
use crate::tui::app::App;
use crate::tui::dialogs::Dialog;
use crate::tui::form::FieldValue;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

/// Width of the label column.
const LABEL: u16 = 15;

/// Draws `dialog` centred in `area`.
pub fn draw(app: &App, dialog: &Dialog, area: Rect, frame: &mut Frame) {
    let theme = &app.theme;
    let intro = dialog.intro();
    let shown = dialog.form.fields.iter().filter(|f| !f.hidden).count() as u16;
    // Border 2, intro, a blank, two rows per field, problem, keys.
    let height = 2 + intro.len() as u16 + 1 + shown * 2 + 2;
    let rect = layout::dialog(area, 76, height);
    let inner = dialog_box(app, rect, &dialog.title(), frame.buffer_mut());
    if inner.height == 0 || inner.width < LABEL + 4 {
        return;
    }
    let mut y = inner.y;
    for line in &intro {
        put(
            frame.buffer_mut(),
            inner.x,
            y,
            &truncate(line, usize::from(inner.width)),
            inner.width,
            theme.muted,
        );
        y += 1;
    }
    y += 1;
    let value_width = inner.width.saturating_sub(LABEL);
    let focused = dialog.form.focus;
    let bottom = inner.bottom().saturating_sub(2);
    for (i, field) in dialog.form.fields.iter().enumerate() {
        if field.hidden {
            continue;
        }
        if y >= bottom {
            break;
        }
        let is_focused = i == focused;
        let buf = frame.buffer_mut();
        put(
            buf,
            inner.x,
            y,
            &format!("{}{}", if is_focused { "›" } else { " " }, field.label),
            LABEL,
            if is_focused { theme.key } else { theme.header },
        );
        let x = inner.x + LABEL;
        let chosen = if is_focused {
            theme.selected
        } else {
            theme.dialog
        };
        match &field.value {
            FieldValue::Text(input) => {
                let (visible, cursor) = input.window(usize::from(value_width.saturating_sub(1)));
                buf.set_style(Rect::new(x, y, value_width, 1), theme.input);
                put(buf, x, y, &visible, value_width, theme.input);
                if is_focused {
                    frame.set_cursor_position((x + cursor as u16, y));
                }
            }
            FieldValue::Toggle(on) => {
                put(
                    buf,
                    x,
                    y,
                    if *on { "[x] yes" } else { "[ ] no" },
                    value_width,
                    chosen,
                );
            }
            FieldValue::Choice { options, index } => {
                let word = options.get(*index).map_or("-", String::as_str);
                put(buf, x, y, &format!("◀ {word} ▶"), value_width, chosen);
            }
        }
        let buf = frame.buffer_mut();
        let (text, style) = match &field.error {
            Some(error) => (error.as_str(), theme.error),
            None if is_focused => (field.hint.as_str(), theme.muted),
            None => ("", theme.muted),
        };
        if y + 1 < bottom {
            // Under the value when it fits there, else from the dialog's left edge.
            let fits = text.chars().count() <= usize::from(value_width);
            let (x, width) = if fits {
                (x, value_width)
            } else {
                (inner.x + 1, inner.width.saturating_sub(1))
            };
            put(
                buf,
                x,
                y + 1,
                &truncate(text, usize::from(width)),
                width,
                style,
            );
        }
        y += 2;
    }
    let buf = frame.buffer_mut();
    if let Some(problem) = &dialog.problem {
        put(
            buf,
            inner.x,
            inner.bottom().saturating_sub(2),
            &truncate(problem, usize::from(inner.width)),
            inner.width,
            theme.error,
        );
    }
    let keys = [
        ("Enter", "ok"),
        ("Esc", "cancel"),
        ("Tab/↑↓", "field"),
        ("Space", "switch"),
    ];
    let mut spans = Vec::new();
    for (key, label) in keys {
        spans.push(Span::styled(key, theme.key));
        spans.push(Span::styled(format!(" {label}  "), theme.muted));
    }
    Line::from(spans).render(
        Rect::new(inner.x, inner.bottom().saturating_sub(1), inner.width, 1),
        buf,
    );
}
