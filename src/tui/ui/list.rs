//! The VM list: one row per VM with state, vCPUs, memory, CPU use and its last minute as a
//! sparkline, memory used and autostart; sorted, filtered and marked as `ListState` says. A VM
//! whose definition file is broken is a row too, flagged `!`, with the reason and the fix.
//! Rows are drawn directly (only the visible slice) so a long list costs what a short one does.

use super::layout::{self, Column};
use super::widgets::{put, sparkline, truncate};
use crate::config::format_size;
use crate::tui::app::{App, SortColumn, VmEntry};
use crate::tui::hosts::state::HostState;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use ratatui::widgets::{Block, Borders, Widget};

/// Draws the list into `body`.
pub fn draw(app: &App, body: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let visible = app.visible();
    let mut title = format!(" VMs ({}) ", visible.len());
    if !app.list.filter.text().is_empty() {
        title = format!(
            " VMs ({} of {}, filter '{}') ",
            visible.len(),
            app.vms.len(),
            app.list.filter.text()
        );
    }
    Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(title)
        .title_style(theme.title)
        .render(body, buf);
    let list = layout::list(body);
    header(app, list.header, buf);

    if !app.loaded {
        put(
            buf,
            list.rows.x,
            list.rows.y,
            "asking the host for VMs…",
            list.rows.width,
            theme.muted,
        );
        return;
    }
    if visible.is_empty() && !app.vms.is_empty() {
        put(
            buf,
            list.rows.x,
            list.rows.y,
            &format!(
                "no VM matches '{}' (Esc clears the filter)",
                app.list.filter.text()
            ),
            list.rows.width,
            theme.muted,
        );
    }
    let page = usize::from(list.rows.height);
    let offset = app.list.offset.min(visible.len().saturating_sub(page));
    let selected = app.list.selected.as_deref();
    let mut next = list.rows.y;
    for (y, &i) in (list.rows.y..).zip(visible.iter().skip(offset).take(page)) {
        let vm = &app.vms[i];
        row(
            app,
            vm,
            Some(vm.name()) == selected && vm.host == app.list.selected_host,
            Rect::new(list.rows.x, y, list.rows.width, 1),
            buf,
        );
        next = y + 1;
    }
    // Hosts that are not connected: one row each saying why, after the VMs.
    for (y, host) in (next..list.rows.bottom()).zip(app.unavailable_hosts()) {
        let style = match host.state {
            HostState::Unreachable(_) | HostState::Reconnecting { .. } => theme.error,
            _ => theme.muted,
        };
        let text = format!("{}  {}", host.entry.name, host.state.describe());
        put(
            buf,
            list.rows.x + 2,
            y,
            &truncate(&text, usize::from(list.rows.width.saturating_sub(2))),
            list.rows.width.saturating_sub(2),
            style,
        );
    }
    summary(app, list.summary, buf);
}

fn header(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let arrow = if app.list.reverse { "▼" } else { "▲" };
    let mut x = area.x;
    for (column, width) in layout::columns(area.width, app.show_hosts()) {
        let (title, sort) = match column {
            Column::Mark => ("", None),
            Column::Name => ("NAME", Some(SortColumn::Name)),
            Column::Host => ("HOST", None),
            Column::State => ("STATE", Some(SortColumn::State)),
            Column::Vcpus => ("CPUS", Some(SortColumn::Vcpus)),
            Column::Memory => ("MEM", Some(SortColumn::Memory)),
            Column::Cpu => ("CPU%", Some(SortColumn::Cpu)),
            Column::Spark => ("CPU 60s", None),
            Column::Used => ("USED", Some(SortColumn::Used)),
            Column::Ip => ("IP", None),
            Column::Auto => ("AUTO", None),
        };
        let text = if sort == Some(app.list.sort) {
            format!("{title}{arrow}")
        } else {
            title.to_string()
        };
        // Numbers are right-aligned, so their titles are too.
        let text = truncate(&text, usize::from(width));
        let pad = if right_aligned_title(column) {
            width.saturating_sub(text.chars().count() as u16)
        } else {
            0
        };
        put(buf, x + pad, area.y, &text, width - pad, theme.header);
        x += width + 1;
    }
}

/// Columns whose values (and titles) are right-aligned: the numbers.
fn right_aligned(column: Column) -> bool {
    matches!(column, Column::Memory | Column::Cpu | Column::Used)
}

/// Titles right-aligned over their values: the numbers, and the sparkline (it fills from the
/// right, newest sample last).
fn right_aligned_title(column: Column) -> bool {
    right_aligned(column) || column == Column::Spark
}

fn row(app: &App, vm: &VmEntry, selected: bool, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let marked = vm.host == app.list.marked_host && app.list.marked.contains(vm.name());
    let base = if selected { theme.selected } else { theme.base };
    buf.set_style(area, base);
    let live = vm.is_live();
    let dash = || "-".to_string();
    let mut x = area.x;
    for (column, width) in layout::columns(area.width, app.show_hosts()) {
        let w = usize::from(width);
        let (text, own) = match column {
            Column::Mark if marked => ("●".to_string(), theme.marked),
            // A broken definition is flagged on its row, so the typo is seen, not hidden.
            Column::Mark if vm.broken().is_some() => ("!".to_string(), theme.error),
            Column::Mark => (" ".to_string(), theme.marked),
            Column::Name => (
                truncate(vm.name(), w),
                if marked { theme.marked } else { theme.base },
            ),
            Column::Host => (vm.host.label().to_string(), theme.muted),
            Column::State => match app.busy_of(vm) {
                Some(doing) => (format!("{doing}…"), theme.info),
                None => (vm.state().label().to_string(), theme.state(vm.state())),
            },
            // A stopped VM whose definition is broken has nothing more to show than why.
            _ if !live && vm.broken().is_some() => {
                let x_rest = x;
                if let Some(broken) = vm.broken() {
                    let text = format!(
                        "definition broken: {}{}",
                        broken
                            .error
                            .line
                            .map(|l| format!("line {l}: "))
                            .unwrap_or_default(),
                        broken.error.reason
                    );
                    let rest = area.right().saturating_sub(x_rest);
                    let style = if selected {
                        base.add_modifier(theme.error.add_modifier)
                    } else {
                        theme.error
                    };
                    put(
                        buf,
                        x_rest,
                        area.y,
                        &truncate(&text, usize::from(rest)),
                        rest,
                        style,
                    );
                }
                return;
            }
            Column::Vcpus => (
                match (vm.vcpus_now(), vm.max_vcpus()) {
                    (Some(now), Some(max)) => format!("{now}/{max}"),
                    (Some(now), None) => format!("{now}/?"),
                    _ => dash(),
                },
                theme.base,
            ),
            Column::Memory => (vm.memory().map_or_else(dash, format_size), theme.base),
            Column::Cpu => (
                vm.cpu_percent().map_or_else(dash, |p| format!("{p:.1}")),
                if live { theme.cpu } else { theme.muted },
            ),
            Column::Spark => {
                let history = &vm.history.cpu;
                let peak = history.iter().fold(25.0_f64, f64::max);
                (sparkline(history.iter(), w, peak), theme.cpu)
            }
            Column::Used => (
                vm.used_bytes().map_or_else(dash, format_size),
                if live { theme.memory } else { theme.muted },
            ),
            Column::Ip => (
                app.networks
                    .addresses_of(vm.name())
                    .into_iter()
                    .find(|_| app.networks_host == vm.host)
                    .map_or_else(String::new, |ip| ip.to_string()),
                theme.accent,
            ),
            Column::Auto => (
                if vm.autostart() { "yes" } else { "" }.to_string(),
                theme.accent,
            ),
        };
        // On the selected row every cell keeps the selection colours (plus its own bold or
        // underline); elsewhere cells use their own (state colours, muted dashes).
        let own = if selected {
            base.add_modifier(own.add_modifier)
        } else {
            own
        };
        let text = truncate(&text, w);
        let pad = if right_aligned(column) {
            width.saturating_sub(text.chars().count() as u16)
        } else {
            0
        };
        put(buf, x + pad, area.y, &text, width - pad, own);
        x += width + 1;
    }
}

fn summary(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let Some(vm) = app.selected() else {
        return;
    };
    let (text, style) = match (vm.reason(), vm.state(), vm.broken()) {
        // The fix first: the reason can be long, and a narrow screen cuts the end.
        (_, _, Some(broken)) => (
            format!(
                "{}: definition broken, repair it with `{}` in a shell: {}",
                vm.name(),
                broken.fix(),
                broken.error
            ),
            theme.error,
        ),
        (Some(reason), crate::protocol::RunState::Crashed, None) => {
            (format!("{} crashed: {reason}", vm.name()), theme.error)
        }
        _ => {
            let mut text = super::details::boot_summary(vm);
            // Leases are those of the host the networks were last read from.
            let addresses = if app.networks_host == vm.host {
                app.networks.addresses_of(vm.name())
            } else {
                Vec::new()
            };
            if !addresses.is_empty() {
                // The address goes first: boot details are long and get cut at 80 columns.
                let listed: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                let prefix = format!("{}: ", vm.name());
                let rest = text.strip_prefix(&prefix).unwrap_or(&text).to_string();
                text = format!("{prefix}IP {} · {rest}", listed.join(", "));
            }
            (text, theme.muted)
        }
    };
    put(
        buf,
        area.x,
        area.y,
        &truncate(&text, usize::from(area.width)),
        area.width,
        style,
    );
}
