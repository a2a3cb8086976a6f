//! The task list (`T`): every running storage and network task, oldest first, with the real
//! progress of the long ones (bytes done of bytes to do, rate, time left, from the storage
//! layer's progress handle), drawn over the panes; `x` cancels the selected one. A cancelled
//! task cleans up as after a failure and its status line says what it left as it was.

use super::action::Effect;
use super::app::{App, Overlay, RunningTask, StatusKind};
use super::tasks::TaskId;
use crossterm::event::{KeyCode, KeyEvent};

/// Opens the list, or says that nothing runs.
pub(super) fn open(app: &mut App) {
    if app.tasks.is_empty() {
        app.set_status(
            StatusKind::Info,
            "no tasks are running (clones, conversions, uploads, wipes and image imports show here)",
        );
        return;
    }
    app.overlay = Some(Overlay::Tasks { selected: 0 });
}

/// The tasks in the order the list shows them (oldest first), with their ids.
pub fn rows(app: &App) -> Vec<(TaskId, &RunningTask)> {
    // Ids grow with each task, so the map's order is the start order.
    app.tasks.iter().map(|(id, task)| (*id, task)).collect()
}

/// A key in the list; returns the overlay to keep (`None` closes it).
pub(super) fn on_key(app: &mut App, selected: usize, key: &KeyEvent) -> Option<Overlay> {
    let last = app.tasks.len().saturating_sub(1);
    let selected = selected.min(last);
    let keep = |selected| Some(Overlay::Tasks { selected });
    match key.code {
        KeyCode::Up | KeyCode::Char('k') => keep(selected.saturating_sub(1)),
        KeyCode::Down | KeyCode::Char('j') => keep((selected + 1).min(last)),
        KeyCode::Home | KeyCode::Char('g') => keep(0),
        KeyCode::End | KeyCode::Char('G') => keep(last),
        KeyCode::Char('x') | KeyCode::Delete => {
            if let Some(id) = rows(app).get(selected).map(|(id, _)| *id) {
                cancel(app, id);
            }
            keep(selected)
        }
        KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q' | 'T') => None,
        _ => keep(selected),
    }
}

/// Asks task `id` to stop: the runtime cancels its progress handle, and the task ends with
/// a "cancelled: …" status once it has cleaned up. Short tasks cannot be cancelled (they end
/// within moments); the status line says so.
pub(super) fn cancel(app: &mut App, id: TaskId) {
    let Some(running) = app.tasks.get_mut(&id) else {
        return;
    };
    let words = running.task.progress_words();
    if !running.task.cancellable() {
        app.set_status(
            StatusKind::Info,
            format!("{words} cannot be cancelled; it ends on its own within moments"),
        );
        return;
    }
    if running.cancelling {
        return;
    }
    running.cancelling = true;
    app.push_effect(Effect::CancelTask(id));
    app.set_status(StatusKind::Progress, format!("cancelling {words}…"));
}

/// Keeps an open list valid after a task ended: closed when nothing runs any more.
pub(super) fn on_task_ended(app: &mut App) {
    if let Some(Overlay::Tasks { selected }) = &mut app.overlay {
        if app.tasks.is_empty() {
            app.overlay = None;
        } else {
            *selected = (*selected).min(app.tasks.len() - 1);
        }
    }
}
