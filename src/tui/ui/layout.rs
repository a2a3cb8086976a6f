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
    /// The VM's host (only while a remote host is configured).
    Host,
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
    /// The guest's address (wide lists only).
    Ip,
    /// Autostart mark.
    Auto,
}

/// Lists at least this wide show the guests' addresses in a column of their own (narrower
/// ones show the selected VM's in the summary line).
pub const IP_COLUMN_MIN_WIDTH: u16 = 100;

/// Widest the NAME column grows: half a VM name's limit (64) reads well, and on a wide screen
/// the other columns stay near the names instead of drifting to the far edge.
pub const NAME_MAX_WIDTH: u16 = 32;

/// Width of the HOST column.
pub const HOST_WIDTH: u16 = 8;

/// Columns and their widths for a list `width` cells wide (one space between columns), with a
/// HOST column when `hosts` (a remote host is configured). Up to about 150 columns they fill
/// the width; beyond, NAME stops at [`NAME_MAX_WIDTH`] and the sparkline at a minute, and the
/// rest of the row stays empty.
pub fn columns(width: u16, hosts: bool) -> Vec<(Column, u16)> {
    const FIXED: [(Column, u16); 8] = [
        (Column::Mark, 1),
        (Column::State, 13),
        (Column::Vcpus, 5),
        (Column::Memory, 6),
        (Column::Cpu, 6),
        (Column::Used, 6),
        (Column::Ip, 15),
        (Column::Ip, 15),
    ];
    let with_ip = width >= IP_COLUMN_MIN_WIDTH;
    let fixed_columns = FIXED
        .iter()
        .take(6)
        .chain(with_ip.then_some(&FIXED[6]))
        .chain(hosts.then_some(&(Column::Host, HOST_WIDTH)))
        .chain(std::iter::once(&(Column::Auto, 4)));
    let (count, sum) = fixed_columns.fold((0u16, 0u16), |(n, s), (_, w)| (n + 1, s + w));
    // One space between columns: the fixed ones, the name and the sparkline.
    let fixed = sum + count + 1;
    let rest = width.saturating_sub(fixed);
    // The sparkline shows at most a minute of samples; the name takes what is left.
    let spark = (rest.saturating_sub(12) * 11 / 20).min(60);
    let name = (rest - spark).min(NAME_MAX_WIDTH);
    let width_of = |c: Column| match c {
        Column::Auto => 4,
        Column::Host => HOST_WIDTH,
        _ => FIXED.iter().find(|(f, _)| *f == c).map_or(0, |(_, w)| *w),
    };
    [
        Column::Mark,
        Column::Name,
        Column::Host,
        Column::State,
        Column::Vcpus,
        Column::Memory,
        Column::Cpu,
        Column::Spark,
        Column::Used,
        Column::Ip,
        Column::Auto,
    ]
    .into_iter()
    .filter(|c| with_ip || *c != Column::Ip)
    .filter(|c| hosts || *c != Column::Host)
    .map(|c| match c {
        Column::Name => (c, name),
        Column::Spark => (c, spark),
        other => (other, width_of(other)),
    })
    .collect()
}

/// The column at `x` cells from the list's left edge (`hosts`: with a HOST column).
pub fn column_at(width: u16, hosts: bool, x: u16) -> Option<Column> {
    let mut left = 0u16;
    for (column, w) in columns(width, hosts) {
        if x >= left && x < left + w {
            return Some(column);
        }
        left += w + 1;
    }
    None
}

/// Table columns: title, width, share. A column without a share has that fixed width; the
/// others split what the fixed ones leave in proportion to their shares, each at most its
/// width when that is not 0 (so wide screens do not stretch short names across the screen);
/// the last shared column takes what the capped ones leave.
pub type Columns = &'static [(&'static str, u16, u16)];

/// The widths of `columns` in a table `width` cells wide (one space between columns); the last
/// shared column takes the rounding.
pub fn table_widths(columns: Columns, width: u16) -> Vec<u16> {
    let gaps = columns.len().saturating_sub(1) as u16;
    let fixed: u16 = columns
        .iter()
        .filter(|(_, _, share)| *share == 0)
        .map(|(_, w, _)| *w)
        .sum::<u16>()
        + gaps;
    let rest = width.saturating_sub(fixed);
    let shares: u16 = columns.iter().map(|(_, _, s)| *s).sum::<u16>().max(1);
    let last_shared = columns.iter().rposition(|(_, _, share)| *share > 0);
    let cap = |w: u16, part: u16| if w > 0 { part.min(w) } else { part };
    let mut given = 0u16;
    columns
        .iter()
        .enumerate()
        .map(|(i, (_, w, share))| {
            if *share == 0 {
                *w
            } else if Some(i) == last_shared {
                cap(*w, rest - given)
            } else {
                let part = cap(
                    *w,
                    (u32::from(rest) * u32::from(*share) / u32::from(shares)) as u16,
                );
                given += part;
                part
            }
        })
        .collect()
}

/// The panes the header names after the title, in order: key and name. The first is the VM
/// list (with its details and consoles), then storage, then networks, then hosts.
pub const TABS: [(&str, &str); 4] = [
    ("1", "VMs"),
    ("2", "Storage"),
    ("3", "Networks"),
    ("4", "Hosts"),
];
/// Width of the header's title (` vmux `) before the tabs.
pub const TITLE_WIDTH: u16 = 6;

/// The tab (index into [`TABS`]) at column `x` of the header row. Each tab is preceded by a
/// space.
pub fn tab_at(x: u16) -> Option<usize> {
    let mut left = TITLE_WIDTH;
    for (i, (key, name)) in TABS.iter().enumerate() {
        left += 1;
        let width = (key.len() + 1 + name.len()) as u16;
        if (left..left + width).contains(&x) {
            return Some(i);
        }
        left += width;
    }
    None
}

/// The data rows of a table drawn in the bordered `block`: below its column titles, above
/// `footer` rows kept for other text.
pub fn table_rows(block: Rect, footer: u16) -> Rect {
    let inner = inner(block);
    Rect::new(
        inner.x,
        inner.y + 1.min(inner.height),
        inner.width,
        inner.height.saturating_sub(1 + footer),
    )
}

/// Rows under the volume table for the selected volume's details (two when there is room).
pub fn volume_details_height(block: Rect) -> u16 {
    2.min(inner(block).height.saturating_sub(2))
}

/// The first row shown of a list of `page` rows that keeps row `selected` on screen.
pub fn scroll_offset(selected: usize, page: usize) -> usize {
    (selected + 1).saturating_sub(page)
}

/// Splits the storage pane: pools on top (sized for `pool_rows` rows, at most half), the
/// selected pool's volumes below.
pub fn storage(body: Rect, pool_rows: usize) -> [Rect; 2] {
    split_top(body, pool_rows)
}

/// Splits the networks pane: the networks on top, the selected one's details below.
pub fn networks(body: Rect, rows: usize) -> [Rect; 2] {
    split_top(body, rows)
}

fn split_top(body: Rect, rows: usize) -> [Rect; 2] {
    // Border (2) + column titles (1) + the rows, at least one row, at most half the body.
    let wanted = (rows.max(1) as u16).saturating_add(3);
    let top = wanted.min(body.height / 2).max(4.min(body.height));
    [
        Rect::new(body.x, body.y, body.width, top),
        Rect::new(
            body.x,
            body.y + top,
            body.width,
            body.height.saturating_sub(top),
        ),
    ]
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

/// Widest a dialog grows, cells.
const DIALOG_MAX_WIDTH: u16 = 140;

/// A dialog's box in `area`: `width`×`height` at least (less only on a smaller screen), and
/// wider on a wide terminal (three fifths of it, up to [`DIALOG_MAX_WIDTH`]), so hints, paths
/// and messages that fit there are not cut.
pub fn dialog(area: Rect, width: u16, height: u16) -> Rect {
    let wide = (u32::from(area.width) * 3 / 5) as u16;
    centered(area, wide.clamp(width, DIALOG_MAX_WIDTH.max(width)), height)
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
        let total: u16 = columns(78, false).iter().map(|(_, w)| w + 1).sum::<u16>() - 1;
        assert_eq!(total, 78);
    }

    #[test]
    fn the_host_column_fits_80_columns() {
        let columns = columns(78, true);
        let total: u16 = columns.iter().map(|(_, w)| w + 1).sum::<u16>() - 1;
        assert!(total <= 78, "{total}");
        let name = columns
            .iter()
            .find(|(c, _)| *c == Column::Name)
            .map(|(_, w)| *w);
        assert!(name >= Some(12), "{name:?}");
        assert!(columns.iter().any(|(c, _)| *c == Column::Host));
    }

    #[test]
    fn wide_list_columns_show_addresses_within_the_width() {
        let columns = columns(118, false);
        assert!(columns.iter().any(|(c, _)| *c == Column::Ip));
        let total: u16 = columns.iter().map(|(_, w)| w + 1).sum::<u16>() - 1;
        assert_eq!(total, 118);
    }

    #[test]
    fn the_name_column_stops_growing_on_wide_screens() {
        let wide = columns(198, false);
        let name = wide
            .iter()
            .find(|(c, _)| *c == Column::Name)
            .map(|(_, w)| *w);
        assert_eq!(name, Some(NAME_MAX_WIDTH));
        let total: u16 = wide.iter().map(|(_, w)| w + 1).sum::<u16>() - 1;
        assert!(total <= 198, "{total}");
    }

    #[test]
    fn sparkline_never_exceeds_a_minute() {
        let spark = columns(400, false)
            .into_iter()
            .find(|(c, _)| *c == Column::Spark)
            .map(|(_, w)| w);
        assert_eq!(spark, Some(60));
    }

    #[test]
    fn column_at_maps_x_to_the_column() {
        assert_eq!(column_at(78, false, 0), Some(Column::Mark));
        assert_eq!(column_at(78, false, 2), Some(Column::Name));
    }

    #[test]
    fn split_consoles_share_the_width() {
        let panes = consoles(Rect::new(0, 0, 81, 24), 2);
        assert_eq!(panes[0].screen.width + panes[1].screen.width + 1, 81);
        assert_eq!(panes[0].screen.height, 22);
    }

    #[test]
    fn table_widths_fill_the_width() {
        const COLUMNS: Columns = &[("A", 0, 1), ("B", 8, 0), ("C", 0, 2)];
        for width in [20, 78, 198] {
            let widths = table_widths(COLUMNS, width);
            assert_eq!(widths.iter().sum::<u16>() + 2, width, "{widths:?}");
        }
        assert_eq!(table_widths(COLUMNS, 4), [0, 8, 0]);
    }

    #[test]
    fn capped_columns_stop_growing() {
        const COLUMNS: Columns = &[("A", 20, 1), ("B", 8, 0), ("C", 0, 1)];
        assert_eq!(table_widths(COLUMNS, 200), [20, 8, 170]);
    }

    #[test]
    fn the_top_list_takes_at_most_half() {
        let [top, bottom] = storage(Rect::new(0, 0, 80, 20), 50);
        assert_eq!((top.height, bottom.height), (10, 10));
        let [top, _] = storage(Rect::new(0, 0, 80, 20), 1);
        assert_eq!(top.height, 4);
    }

    #[test]
    fn tabs_are_found_by_column() {
        // " vmux  1 VMs 2 Storage 3 Networks"
        assert_eq!(tab_at(7), Some(0));
        assert_eq!(tab_at(11), Some(0));
        assert_eq!(tab_at(12), None);
        assert_eq!(tab_at(13), Some(1));
        assert_eq!(tab_at(23), Some(2));
        assert_eq!(tab_at(35), Some(3));
        assert_eq!(tab_at(3), None);
    }

    #[test]
    fn dialogs_keep_their_size_at_80_columns_and_grow_on_wide_screens() {
        assert_eq!(dialog(Rect::new(0, 0, 80, 24), 76, 22).width, 76);
        assert_eq!(dialog(Rect::new(0, 0, 200, 50), 76, 22).width, 120);
        assert_eq!(dialog(Rect::new(0, 0, 400, 50), 76, 22).width, 140);
        assert_eq!(dialog(Rect::new(0, 0, 60, 20), 76, 22).width, 60);
    }

    #[test]
    fn layouts_survive_zero_sized_areas() {
        let _ = table_rows(Rect::new(0, 0, 0, 0), 2);
        let _ = storage(Rect::new(0, 0, 0, 0), 3);
        let zero = Rect::new(0, 0, 0, 0);
        let _ = list(main(zero).body);
        let _ = consoles(zero, 2);
        assert_eq!(centered(zero, 10, 10), zero);
    }
}
