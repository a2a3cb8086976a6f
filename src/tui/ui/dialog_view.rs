//! Draws a storage or network [`Dialog`]: its context lines, its form (each shown field with
//! its problem or, while focused, its hint underneath, drawn by
//! [`form_view`](super::form_view)), the dialog's own problem, and the keys.
//! Fits 80×24.

use super::form_view::{self, Look};
use super::layout;
use super::widgets::dialog as dialog_box;
use super::widgets::{put, truncate};
use crate::tui::app::App;
use crate::tui::dialogs::Dialog;
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
    let bottom = inner.bottom().saturating_sub(2);
    let look = Look {
        label: LABEL,
        rows: 2,
        cursor: true,
        outdent: true,
    };
    let fields = Rect::new(inner.x, y, inner.width, bottom.saturating_sub(y));
    form_view::fields(app, &dialog.form, fields, look, &|f| f.hint.clone(), frame);
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
