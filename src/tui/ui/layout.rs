//! Where things are on screen, as pure functions of the terminal size. `draw` uses them to
//! place widgets and `update` uses the same ones to turn mouse positions into rows, columns
//! and console cells, so the two can never disagree.

use ratatui::layout::Rect;

/// Smallest terminal the TUI draws in.
pub const MIN_WIDTH: u16 = 80;
/// Smallest terminal height the TUI draws in.
pub const MIN_HEIGHT: u16 = 24;

/// Whether `area` is below 80×24 (the "make the window larger" message is shown instead).
pub fn too_small(area: Rect) -> bool {
    area.width < MIN_WIDTH || area.height < MIN_HEIGHT
}

/// The list and details screens: header, body, status line, key footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Main {
    /// Title and summary (1 row).
    pub header: Rect,
    /// The pane.
    pub body: Rect,
    /// Messages and the filter field (1 row).
    pub status: Rect,
    /// Key hints (1 row).
    pub footer: Rect,
}

/// Splits the screen for the list and details panes.
pub fn main(area: Rect) -> Main {
    let row = |y: u16| Rect::new(area.x, y, area.width, 1.min(area.height));
    let body_height = area.height.saturating_sub(3);
    Main {
        header: row(area.y),
        body: Rect::new(area.x, area.y + 1.min(area.height), area.width, body_height),
        status: row(area.bottom().saturating_sub(2).max(area.y)),
        footer: row(area.bottom().saturating_sub(1).max(area.y)),
    }
}

/// The VM list inside the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct List {
    /// The table's column titles (1 row).
    pub header: Rect,
    /// The data rows.
    pub rows: Rect,
    /// The summary line of the selected VM (1 row).
    pub summary: Rect,
}

/// Places the list in `body` (inside a border).
pub fn list(body: Rect) -> List {
    let inner = inner(body);
    List {
        header: Rect::new(inner.x, inner.y, inner.width, 1.min(inner.height)),
        rows: Rect::new(
            inner.x,
            inner.y + 1.min(inner.height),
            inner.width,
            inner.height.saturating_sub(2),
        ),
        summary: Rect::new(
            inner.x,
            inner.bottom().saturating_sub(1).max(inner.y),
            inner.width,
            1.min(inner.height),
        ),
    }
}

/// `area` less a one-cell border.
pub fn inner(area: Rect) -> Rect {
    Rect::new(
        area.x.saturating_add(1),
        area.y.saturating_add(1),
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    )
}

/// A list column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Mark for bulk actions.
    Mark,
    /// Name.
    Name,
    /// State.
    State,
    /// vCPUs now / max.
    Vcpus,
    /// Defined memory.
    Memory,
    /// CPU percent.
    Cpu,
    /// CPU sparkline.
    Spark,
    /// Resident memory.
    Used,
    /// Autostart mark.
    Auto,
}

/// Columns and their widths for a list `width` cells wide (one space between columns).
pub fn columns(width: u16) -> Vec<(Column, u16)> {
    const FIXED: [(Column, u16); 7] = [
        (Column::Mark, 1),
        (Column::State, 13),
        (Column::Vcpus, 5),
        (Column::Memory, 6),
        (Column::Cpu, 6),
        (Column::Used, 6),
        (Column::Auto, 4),
    ];
    let fixed: u16 = FIXED.iter().map(|(_, w)| w).sum::<u16>() + 8;
    let rest = width.saturating_sub(fixed);
    // The sparkline shows at most a minute of samples; the name takes what is left.
    let spark = (rest.saturating_sub(12) * 11 / 20).min(60);
    let name = rest - spark;
    let width_of = |c: Column| FIXED.iter().find(|(f, _)| *f == c).map_or(0, |(_, w)| *w);
    [
        Column::Mark,
        Column::Name,
        Column::State,
        Column::Vcpus,
        Column::Memory,
        Column::Cpu,
        Column::Spark,
        Column::Used,
        Column::Auto,
    ]
    .into_iter()
    .map(|c| match c {
        Column::Name => (c, name),
        Column::Spark => (c, spark),
        other => (other, width_of(other)),
    })
    .collect()
}

/// The column at `x` cells from the list's left edge.
pub fn column_at(width: u16, x: u16) -> Option<Column> {
    let mut left = 0u16;
    for (column, w) in columns(width) {
        if x >= left && x < left + w {
            return Some(column);
        }
        left += w + 1;
    }
    None
}

/// One console pane: its title bar and the screen the guest's output fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsolePane {
    /// Title bar (1 row): VM, state, mode, keys.
    pub title: Rect,
    /// The terminal screen.
    pub screen: Rect,
}

/// The console screen: panes over everything but the status line at the bottom.
pub fn console_status(area: Rect) -> Rect {
    Rect::new(
        area.x,
        area.bottom().saturating_sub(1).max(area.y),
        area.width,
        1.min(area.height),
    )
}

/// Places `count` (1 or 2) console panes side by side, a one-column rule between them.
pub fn consoles(area: Rect, count: usize) -> Vec<ConsolePane> {
    let panes_area = Rect::new(area.x, area.y, area.width, area.height.saturating_sub(1));
    let pane = |r: Rect| ConsolePane {
        title: Rect::new(r.x, r.y, r.width, 1.min(r.height)),
        screen: Rect::new(
            r.x,
            r.y + 1.min(r.height),
            r.width,
            r.height.saturating_sub(1),
        ),
    };
    if count < 2 {
        return vec![pane(panes_area)];
    }
    let left = panes_area.width.saturating_sub(1) / 2;
    let right = panes_area.width.saturating_sub(left + 1);
    vec![
        pane(Rect::new(
            panes_area.x,
            panes_area.y,
            left,
            panes_area.height,
        )),
        pane(Rect::new(
            panes_area.x + left + 1,
            panes_area.y,
            right,
            panes_area.height,
        )),
    ]
}

/// A box of at most `width`×`height` centred in `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_columns_fill_80_columns_exactly() {
        let total: u16 = columns(78).iter().map(|(_, w)| w + 1).sum::<u16>() - 1;
        assert_eq!(total, 78);
    }

    #[test]
    fn sparkline_never_exceeds_a_minute() {
        let spark = columns(400)
            .into_iter()
            .find(|(c, _)| *c == Column::Spark)
            .map(|(_, w)| w);
        assert_eq!(spark, Some(60));
    }

    #[test]
    fn column_at_maps_x_to_the_column() {
        assert_eq!(column_at(78, 0), Some(Column::Mark));
        assert_eq!(column_at(78, 2), Some(Column::Name));
    }

    #[test]
    fn split_consoles_share_the_width() {
        let panes = consoles(Rect::new(0, 0, 81, 24), 2);
        assert_eq!(panes[0].screen.width + panes[1].screen.width + 1, 81);
        assert_eq!(panes[0].screen.height, 22);
    }

    #[test]
    fn layouts_survive_zero_sized_areas() {
        let zero = Rect::new(0, 0, 0, 0);
        let _ = list(main(zero).body);
        let _ = consoles(zero, 2);
        assert_eq!(centered(zero, 10, 10), zero);
    }
}
