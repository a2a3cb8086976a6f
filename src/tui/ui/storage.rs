//! The storage pane: pools (state, autostart, capacity, free space, volume count, directory)
//! over the selected pool's volumes (format, capacity, allocation, backing file, which VMs use
//! it), and a line of details about the selected volume.

use super::layout::{self, Columns};
use super::widgets::{put, table_header, table_row, truncate};
use crate::client::{PoolView, VolumeView};
use crate::config::format_size;
use crate::storage::VolumeInfo;
use crate::tui::app::App;
use crate::tui::storage::state::StorageFocus;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::widgets::{Block, Borders, Widget};

/// Pool table columns (see `layout::Columns`).
const POOL_COLUMNS: Columns = &[
    ("NAME", 24, 1),
    ("STATE", 8, 0),
    ("AUTO", 4, 0),
    ("CAPACITY", 8, 0),
    ("FREE", 8, 0),
    ("VOLS", 4, 0),
    ("PATH", 0, 2),
];

/// The pool columns that hold numbers (right-aligned, titles too): capacity, free, volumes.
const POOL_NUMBERS: &[usize] = &[3, 4, 5];

/// Volume table columns.
const VOLUME_COLUMNS: Columns = &[
    ("NAME", 40, 5),
    ("FORMAT", 6, 0),
    ("CAPACITY", 8, 0),
    ("ALLOC", 8, 0),
    ("BACKING", 40, 3),
    ("USED BY", 0, 4),
];

/// The volume columns that hold numbers: capacity and allocation.
const VOLUME_NUMBERS: &[usize] = &[2, 3];

/// Draws the pane into `body`.
pub fn draw(app: &App, body: Rect, buf: &mut Buffer) {
    let state = &app.storage;
    let pools = &state.snapshot.pools;
    let extra = state.snapshot.broken.len() + usize::from(state.error.is_some());
    let [pools_area, volumes_area] = layout::storage(body, pools.len() + extra);
    let focus = state.focus;
    let title = format!(
        " storage pools{} ({}) ",
        App::on_host(&app.storage_host),
        pools.len()
    );
    let inner = frame(app, pools_area, &title, focus == StorageFocus::Pools, buf);
    draw_pools(app, inner, buf);

    let title = match state.selected_pool() {
        Some(pool) if pool.active() => {
            format!(" volumes in {} ({}) ", pool.name(), pool.volumes.len())
        }
        Some(pool) => format!(" volumes in {} (inactive) ", pool.name()),
        None => " volumes ".to_string(),
    };
    let inner = frame(
        app,
        volumes_area,
        &title,
        focus == StorageFocus::Volumes,
        buf,
    );
    draw_volumes(app, inner, buf);
}

/// A table's box: the one with the keys has the focus colour and a `▶` before its title,
/// the other a muted title that says how to reach it.
fn frame(app: &App, area: Rect, title: &str, focused: bool, buf: &mut Buffer) -> Rect {
    let theme = &app.theme;
    let (title, title_style) = if focused {
        (format!("▶{title}"), theme.title)
    } else {
        (format!("{title}(Tab) "), theme.muted)
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(if focused {
            theme.border_focus
        } else {
            theme.border
        })
        .title(truncate(&title, usize::from(area.width.saturating_sub(2))))
        .title_style(title_style);
    let inner = block.inner(area);
    block.render(area, buf);
    inner
}

/// The row style of a selected row: full selection colours in the table that has the keys;
/// in the other one only an underline, so no row there looks like what keys act on.
fn row_style(app: &App, selected: bool, focused: bool) -> Style {
    match (selected, focused) {
        (true, true) => app.theme.selected,
        (true, false) => app
            .theme
            .base
            .add_modifier(ratatui::style::Modifier::UNDERLINED),
        _ => app.theme.base,
    }
}

fn draw_pools(app: &App, inner: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let state = &app.storage;
    if inner.height == 0 {
        return;
    }
    table_header(POOL_COLUMNS, inner, theme.header, POOL_NUMBERS, buf);
    let rows = Rect::new(inner.x, inner.y + 1, inner.width, inner.height - 1);
    if !state.loaded {
        put(
            buf,
            rows.x,
            rows.y,
            "reading the storage pools…",
            rows.width,
            theme.muted,
        );
        return;
    }
    let focused = state.focus == StorageFocus::Pools;
    let selected = state.pool_row().unwrap_or(0);
    let page = usize::from(rows.height);
    let offset = layout::scroll_offset(selected, page);
    let mut y = rows.y;
    for (i, pool) in state
        .snapshot
        .pools
        .iter()
        .enumerate()
        .skip(offset)
        .take(page)
    {
        let style = row_style(app, i == selected, focused);
        buf.set_style(Rect::new(rows.x, y, rows.width, 1), style);
        pool_row(app, pool, style, Rect::new(rows.x, y, rows.width, 1), buf);
        y += 1;
    }
    let problems = state
        .error
        .iter()
        .map(|e| format!("cannot read the pools: {e}"))
        .chain(state.snapshot.broken.iter().cloned());
    for problem in problems {
        if y >= rows.bottom() {
            break;
        }
        put(
            buf,
            rows.x,
            y,
            &truncate(&problem, usize::from(rows.width)),
            rows.width,
            theme.error,
        );
        y += 1;
    }
}

fn pool_row(app: &App, pool: &PoolView, style: Style, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let active = pool.active();
    let dash = || "-".to_string();
    let figures = |bytes: u64| {
        if active { format_size(bytes) } else { dash() }
    };
    let state_style = if active {
        theme.running
    } else {
        theme.shut_off
    };
    let cells = [
        (pool.name().to_string(), style),
        (
            if active { "active" } else { "inactive" }.to_string(),
            keep_selection(style, state_style, app),
        ),
        (
            if pool.info.status.autostart {
                "yes"
            } else {
                ""
            }
            .to_string(),
            keep_selection(style, theme.accent, app),
        ),
        (figures(pool.info.capacity), style),
        (figures(pool.info.available), style),
        (
            if active {
                pool.info.volumes.to_string()
            } else {
                dash()
            },
            style,
        ),
        (
            match &pool.error {
                Some(e) => e.clone(),
                None => pool.info.status.path.display().to_string(),
            },
            if pool.error.is_some() {
                keep_selection(style, theme.error, app)
            } else {
                style
            },
        ),
    ];
    table_row(POOL_COLUMNS, area, &cells, POOL_NUMBERS, buf);
}

/// The bordered block whose inside is `inner`.
fn block_of(inner: Rect) -> Rect {
    Rect::new(
        inner.x.saturating_sub(1),
        inner.y.saturating_sub(1),
        inner.width + 2,
        inner.height + 2,
    )
}

/// A cell's own colour, unless the row is selected (then the selection's colours stay).
fn keep_selection(row: Style, own: Style, app: &App) -> Style {
    if row == app.theme.base { own } else { row }
}

fn draw_volumes(app: &App, inner: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let state = &app.storage;
    if inner.height == 0 {
        return;
    }
    let Some(pool) = state.selected_pool() else {
        return;
    };
    if !pool.active() {
        put(
            buf,
            inner.x,
            inner.y,
            &format!(
                "pool {} is not active: its volumes cannot be listed or used; s starts it",
                pool.name()
            ),
            inner.width,
            theme.muted,
        );
        return;
    }
    table_header(VOLUME_COLUMNS, inner, theme.header, VOLUME_NUMBERS, buf);
    // The last two rows describe the selected volume.
    let details_height = layout::volume_details_height(block_of(inner));
    let rows = layout::table_rows(block_of(inner), details_height);
    if pool.volumes.is_empty() {
        put(
            buf,
            rows.x,
            rows.y,
            "no volumes yet; n creates one",
            rows.width,
            theme.muted,
        );
    }
    let focused = state.focus == StorageFocus::Volumes;
    let selected = state.volume_row().unwrap_or(0);
    let page = usize::from(rows.height);
    let offset = layout::scroll_offset(selected, page);
    for (row, (i, volume)) in pool
        .volumes
        .iter()
        .enumerate()
        .skip(offset)
        .take(page)
        .enumerate()
    {
        let y = rows.y + row as u16;
        let style = row_style(app, i == selected, focused);
        buf.set_style(Rect::new(rows.x, y, rows.width, 1), style);
        volume_row(app, volume, style, Rect::new(rows.x, y, rows.width, 1), buf);
    }
    if details_height > 0
        && let Some(view) = state.selected_volume()
    {
        let area = Rect::new(
            inner.x,
            inner.bottom() - details_height,
            inner.width,
            details_height,
        );
        details(app, view, area, buf);
    }
}

fn volume_row(app: &App, volume: &VolumeView, style: Style, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let info = match &volume.info {
        Ok(info) => info,
        Err(e) => {
            // The reason spans every column after the name.
            let name_width = layout::table_widths(VOLUME_COLUMNS, area.width)[0];
            put(
                buf,
                area.x,
                area.y,
                &truncate(&volume.name, usize::from(name_width)),
                name_width,
                style,
            );
            let x = area.x + name_width + 1;
            let rest = area.right().saturating_sub(x);
            put(
                buf,
                x,
                area.y,
                &truncate(&format!("cannot be read: {e}"), usize::from(rest)),
                rest,
                keep_selection(style, theme.error, app),
            );
            return;
        }
    };
    let backing = info
        .backing
        .as_ref()
        .map(|b| b.name.clone())
        .unwrap_or_default();
    let cells = [
        (volume.name.clone(), style),
        (info.format.to_string(), style),
        (format_size(info.capacity), style),
        (format_size(info.allocation), style),
        (backing, keep_selection(style, theme.muted, app)),
        (
            users(info),
            if info.running.is_empty() {
                style
            } else {
                keep_selection(style, theme.running, app)
            },
        ),
    ];
    table_row(VOLUME_COLUMNS, area, &cells, VOLUME_NUMBERS, buf);
}

/// `web1 (running), db`.
fn users(info: &VolumeInfo) -> String {
    info.used_by
        .iter()
        .map(|vm| {
            if info.running.contains(vm) {
                format!("{vm} (running)")
            } else {
                vm.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn details(app: &App, view: &VolumeView, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let Ok(info) = &view.info else {
        return;
    };
    let mut facts = vec![info.path.display().to_string()];
    if let Some(cluster) = info.cluster_size {
        facts.push(format!("cluster {}", format_size(cluster)));
    }
    if info.internal_snapshots > 0 {
        facts.push(format!("{} internal snapshots", info.internal_snapshots));
    }
    let mut second = Vec::new();
    if let Some(backing) = &info.backing {
        second.push(format!("overlay on {}", backing.path.display()));
    }
    if !info.backing_of.is_empty() {
        let names: Vec<String> = info
            .backing_of
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        second.push(format!(
            "backing file of {}: keep it unchanged",
            names.join(", ")
        ));
    }
    if second.is_empty() {
        second.push("r resize · c clone · v convert · u upload · W wipe · Del delete".into());
    }
    let width = usize::from(area.width);
    put(
        buf,
        area.x,
        area.y,
        &truncate(&facts.join(" · "), width),
        area.width,
        theme.muted,
    );
    if area.height > 1 {
        put(
            buf,
            area.x,
            area.y + 1,
            &truncate(&second.join(" · "), width),
            area.width,
            theme.muted,
        );
    }
}
