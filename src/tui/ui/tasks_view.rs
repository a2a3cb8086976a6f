//! The task list overlay (`T`): one entry per running task, oldest first, two rows each: what
//! it does and for how long, then its bar, percentage, bytes done of bytes to do, rate and time
//! left (long tasks), or why it has none. The selected entry is marked; `x` cancels it.

use super::widgets::dialog;
use super::widgets::{duration, put, truncate};
use super::{bar_spans, layout, percent};
use crate::tui::app::{App, RunningTask};
use crate::tui::task_list;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

/// Width of the bar in the list, cells.
const BAR: usize = 24;

/// Draws the list over `area` with entry `selected` marked.
pub fn draw(app: &App, selected: usize, area: Rect, buf: &mut Buffer) {
    let rows = task_list::rows(app);
    let height = (rows.len() as u16).saturating_mul(2).saturating_add(4);
    let rect = layout::dialog(area, 72, height);
    let inner = dialog(app, rect, "tasks (↑↓ select, x cancels, Esc closes)", buf);
    if inner.height == 0 || inner.width < 4 {
        return;
    }
    let selected = selected.min(rows.len().saturating_sub(1));
    // Keep the selected entry on screen when the list is taller than the box.
    let fits = usize::from(inner.height.saturating_sub(1) / 2).max(1);
    let first = selected.saturating_sub(fits - 1);
    let mut y = inner.y;
    for (index, (_, task)) in rows.iter().enumerate().skip(first) {
        if y + 1 >= inner.bottom() {
            break;
        }
        entry(
            app,
            task,
            index == selected,
            Rect::new(inner.x, y, inner.width, 2),
            buf,
        );
        y += 2;
    }
    let hint = match rows.get(selected) {
        Some((_, task)) if task.cancelling => {
            "cancelling: it stops at its next chunk and cleans up"
        }
        Some((_, task)) if task.task.cancellable() => {
            "x cancels it: what it made goes, its source stays as it was"
        }
        Some(_) => "this one cannot be cancelled; it ends within moments",
        None => "",
    };
    put(
        buf,
        inner.x + 1,
        inner.bottom() - 1,
        &truncate(hint, usize::from(inner.width.saturating_sub(2))),
        inner.width.saturating_sub(2),
        app.theme.muted,
    );
}

/// One task's two rows.
fn entry(app: &App, task: &RunningTask, selected: bool, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let style = if selected {
        theme.selected
    } else {
        theme.dialog
    };
    let elapsed = duration(app.ticks.saturating_sub(task.started));
    let words = if task.cancelling {
        format!("cancelling {}…", task.words())
    } else {
        task.words()
    };
    let marker = if selected { "▶ " } else { "  " };
    let width = usize::from(area.width);
    buf.set_style(Rect::new(area.x, area.y, area.width, 1), style);
    put(
        buf,
        area.x,
        area.y,
        &truncate(&format!("{marker}{words} · {elapsed}"), width),
        area.width,
        style,
    );
    let mut spans = vec![Span::styled("    ", theme.dialog)];
    match task.progress.filter(|p| p.snapshot.measured()) {
        Some(progress) => {
            spans.extend(bar_spans(app, progress.fraction(), BAR, theme.dialog));
            spans.push(Span::styled(
                format!(
                    " {:>3}%  {}",
                    percent(progress.fraction()),
                    progress.words()
                ),
                theme.dialog,
            ));
        }
        None if task.task.cancellable() => {
            spans.push(Span::styled("measuring…", theme.muted));
        }
        None => spans.push(Span::styled(
            "no progress to show: it ends within moments",
            theme.muted,
        )),
    }
    Line::from(spans).render(Rect::new(area.x, area.y + 1, area.width, 1), buf);
}
