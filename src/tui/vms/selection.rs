//! Keeps the VM list's selection on a listed VM and in view, and the console panes sized to
//! the screen; opens console sessions. Used by `update` and `commands`.

use crate::tui::action::Effect;
use crate::tui::app::{App, Pane};
use crate::tui::console::ConsoleSession;
use crate::tui::ui::layout;
use ratatui::layout::Rect;

/// Keeps a selection on a listed VM and scrolls it into view.
pub(crate) fn ensure_selection(app: &mut App) {
    let visible = app.visible();
    let listed = app.selected_row().is_some();
    if !listed {
        match visible.first() {
            Some(&i) => app.select_index(i),
            None => app.list.selected = None,
        }
    }
    scroll_selection_into_view(app);
}

/// The list's data rows on screen now.
fn list_rows(app: &App) -> Rect {
    layout::list(layout::main(Rect::new(0, 0, app.width, app.height)).body).rows
}

pub(crate) fn scroll_selection_into_view(app: &mut App) {
    let page = usize::from(list_rows(app).height.max(1));
    let count = app.visible().len();
    let row = app.selected_row().unwrap_or(0);
    let offset = &mut app.list.offset;
    if row < *offset {
        *offset = row;
    } else if row >= *offset + page {
        *offset = row + 1 - page;
    }
    *offset = (*offset).min(count.saturating_sub(page));
}

/// Moves the selection by `delta` rows (clamped).
pub(crate) fn move_selection(app: &mut App, delta: isize) {
    let visible = app.visible();
    if visible.is_empty() {
        return;
    }
    let row = app.selected_row().unwrap_or(0);
    let target = row.saturating_add_signed(delta).min(visible.len() - 1);
    app.select_index(visible[target]);
    scroll_selection_into_view(app);
    app.dirty = true;
}

/// A page of list rows.
pub(crate) fn list_page(app: &App) -> isize {
    list_rows(app).height.max(1) as isize
}

/// Where the consoles are on screen now.
pub(crate) fn console_panes(app: &App) -> Vec<layout::ConsolePane> {
    layout::consoles(Rect::new(0, 0, app.width, app.height), app.consoles.len())
}

/// Sizes every console's emulator to its pane.
pub(crate) fn relayout_consoles(app: &mut App) {
    let panes = console_panes(app);
    for (console, pane) in app.consoles.iter_mut().zip(panes) {
        console.resize(pane.screen.height, pane.screen.width);
    }
}

/// Opens sessions for `names` (one or two) and asks the runtime to connect them.
pub(crate) fn open_consoles(app: &mut App, names: &[String]) {
    for old in std::mem::take(&mut app.consoles) {
        app.push_effect(Effect::CloseConsole(old.id));
    }
    for name in names.iter().take(2) {
        let id = app.next_console;
        app.next_console += 1;
        let mut session = ConsoleSession::new(id, name, 24, 80);
        session.host = app.current_host();
        app.consoles.push(session);
        app.push_effect(Effect::OpenConsole {
            id,
            vm: name.clone(),
            history: true,
        });
    }
    app.focus = 0;
    app.pane = Pane::Console;
    relayout_consoles(app);
    app.dirty = true;
}
