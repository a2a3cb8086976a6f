//! The networks pane: every network (mode, state, autostart, bridge, subnet, attached VMs)
//! over the selected one's details: addressing and DHCP range, what runs for it when active,
//! the VM NICs on it with their addresses, and its DHCP leases.

use super::layout::{self, Columns};
use super::widgets::{put, table_header, table_row, truncate};
use crate::network::NetworkInfo;
use crate::tui::app::App;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};

/// Network table columns.
const NETWORK_COLUMNS: Columns = &[
    ("NAME", 24, 1),
    ("MODE", 8, 0),
    ("STATE", 8, 0),
    ("AUTO", 4, 0),
    ("BRIDGE", 15, 0),
    ("SUBNET", 18, 0),
    ("VMS", 3, 0),
];

/// NIC table columns in the details.
const NIC_COLUMNS: Columns = &[("VM", 24, 1), ("MAC", 17, 0), ("TAP", 20, 1), ("IP", 15, 0)];

/// Lease table columns in the details.
const LEASE_COLUMNS: Columns = &[
    ("LEASED IP", 15, 0),
    ("MAC", 17, 0),
    ("HOSTNAME", 30, 1),
    ("EXPIRES", 0, 1),
];

/// Draws the pane into `body`.
pub fn draw(app: &App, body: Rect, buf: &mut Buffer) {
    let state = &app.networks;
    let networks = &state.snapshot.networks;
    let extra = state.snapshot.broken.len() + usize::from(state.error.is_some());
    let [list_area, details_area] = layout::networks(body, networks.len() + extra);
    let inner = frame(
        app,
        list_area,
        &format!(
            " networks{} ({}) ",
            App::on_host(&app.networks_host),
            networks.len()
        ),
        true,
        buf,
    );
    draw_list(app, inner, buf);
    let title = match state.selected_network() {
        Some(n) => format!(" {} ", n.config.name),
        None => " details ".to_string(),
    };
    let inner = frame(app, details_area, &title, false, buf);
    if let Some(network) = state.selected_network() {
        draw_details(app, network, inner, buf);
    }
}

fn frame(app: &App, area: Rect, title: &str, focused: bool, buf: &mut Buffer) -> Rect {
    let theme = &app.theme;
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(if focused {
            theme.border_focus
        } else {
            theme.border
        })
        .title(truncate(title, usize::from(area.width.saturating_sub(2))))
        .title_style(theme.title);
    let inner = block.inner(area);
    block.render(area, buf);
    inner
}

fn draw_list(app: &App, inner: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let state = &app.networks;
    if inner.height == 0 {
        return;
    }
    table_header(NETWORK_COLUMNS, inner, theme.header, &[6], buf);
    let rows = Rect::new(inner.x, inner.y + 1, inner.width, inner.height - 1);
    if !state.loaded {
        put(
            buf,
            rows.x,
            rows.y,
            "reading the networks…",
            rows.width,
            theme.muted,
        );
        return;
    }
    if state.snapshot.networks.is_empty() && state.error.is_none() {
        put(
            buf,
            rows.x,
            rows.y,
            "no networks defined; n defines one",
            rows.width,
            theme.muted,
        );
    }
    let selected = state.selected_row().unwrap_or(0);
    let page = usize::from(rows.height);
    let offset = layout::scroll_offset(selected, page);
    let mut y = rows.y;
    for (i, network) in state
        .snapshot
        .networks
        .iter()
        .enumerate()
        .skip(offset)
        .take(page)
    {
        let row = Rect::new(rows.x, y, rows.width, 1);
        let style = if i == selected {
            theme.selected
        } else {
            theme.base
        };
        buf.set_style(row, style);
        let own = |s| if i == selected { style } else { s };
        let config = &network.config;
        let active = network.active.is_some();
        let mut vms: Vec<&str> = network.attached.iter().map(|a| a.vm.as_str()).collect();
        vms.dedup();
        let cells = [
            (config.name.clone(), style),
            (config.mode.to_string(), style),
            (
                if active { "active" } else { "inactive" }.to_string(),
                own(if active {
                    theme.running
                } else {
                    theme.shut_off
                }),
            ),
            (
                if config.autostart { "yes" } else { "" }.to_string(),
                own(theme.accent),
            ),
            (config.bridge.clone(), style),
            (
                config
                    .subnet
                    .map_or_else(|| "(host LAN)".to_string(), |s| s.to_string()),
                style,
            ),
            (vms.len().to_string(), style),
        ];
        table_row(NETWORK_COLUMNS, row, &cells, &[6], buf);
        y += 1;
    }
    let problems = state
        .error
        .iter()
        .map(|e| format!("cannot read the networks: {e}"))
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

fn draw_details(app: &App, network: &NetworkInfo, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let config = &network.config;
    let width = usize::from(area.width);
    let mut y = area.y;
    let line = |spans: Vec<Span>, y: &mut u16, buf: &mut Buffer| {
        if *y < area.bottom() {
            Line::from(spans).render(Rect::new(area.x, *y, area.width, 1), buf);
            *y += 1;
        }
    };
    let mut facts = vec![
        Span::styled("mode ", theme.header),
        Span::raw(config.mode.to_string()),
        Span::styled("  bridge ", theme.header),
        Span::raw(config.bridge.clone()),
    ];
    if let Some(subnet) = config.subnet {
        facts.extend([
            Span::styled("  subnet ", theme.header),
            Span::raw(subnet.to_string()),
        ]);
    }
    line(facts, &mut y, buf);
    if let Some(addressing) = config.addressing() {
        let facts = vec![
            Span::styled("gateway ", theme.header),
            Span::raw(addressing.gateway.to_string()),
            Span::styled("  DHCP ", theme.header),
            Span::raw(addressing.dhcp_range.to_string()),
        ];
        line(facts, &mut y, buf);
    }
    let state_line = match &network.active {
        Some(active) => {
            let mut parts = vec!["active".to_string()];
            if let Some(table) = &active.nft_table {
                parts.push(format!("nft table {table}"));
            }
            if let Some(dnsmasq) = &active.dnsmasq {
                parts.push(format!("dnsmasq pid {}", dnsmasq.pid));
            }
            Span::styled(parts.join(" · "), theme.running)
        }
        None => Span::styled(
            "inactive: s starts it (needs CAP_NET_ADMIN); VMs on it cannot start until then",
            theme.muted,
        ),
    };
    line(vec![state_line], &mut y, buf);
    if y + 1 >= area.bottom() {
        return;
    }
    y += 1;
    if network.attached.is_empty() {
        line(
            vec![Span::styled(
                "no VM has a NIC on this network (the wizard's network step adds one)",
                theme.muted,
            )],
            &mut y,
            buf,
        );
    } else {
        table_header(
            NIC_COLUMNS,
            Rect::new(area.x, y, area.width, 1),
            theme.header,
            &[],
            buf,
        );
        y += 1;
        for nic in &network.attached {
            if y >= area.bottom() {
                return;
            }
            let cells = [
                (nic.vm.clone(), theme.base),
                (nic.mac.to_string(), theme.base),
                (
                    nic.tap.clone().unwrap_or_else(|| "(VM not running)".into()),
                    if nic.tap.is_some() {
                        theme.base
                    } else {
                        theme.muted
                    },
                ),
                (
                    nic.ip.map_or_else(|| "-".into(), |ip| ip.to_string()),
                    theme.accent,
                ),
            ];
            table_row(
                NIC_COLUMNS,
                Rect::new(area.x, y, area.width, 1),
                &cells,
                &[],
                buf,
            );
            y += 1;
        }
    }
    if !config.mode.is_managed() || y + 2 >= area.bottom() {
        return;
    }
    y += 1;
    if network.leases.is_empty() {
        put(
            buf,
            area.x,
            y,
            &truncate("no DHCP leases", width),
            area.width,
            theme.muted,
        );
        return;
    }
    table_header(
        LEASE_COLUMNS,
        Rect::new(area.x, y, area.width, 1),
        theme.header,
        &[],
        buf,
    );
    y += 1;
    for lease in &network.leases {
        if y >= area.bottom() {
            return;
        }
        let cells = [
            (lease.ip.to_string(), theme.accent),
            (lease.mac.to_string(), theme.base),
            (lease.hostname.clone().unwrap_or_default(), theme.base),
            (
                lease.expires.map_or_else(
                    || "never".into(),
                    crate::storage::snapshot::format_timestamp,
                ),
                theme.muted,
            ),
        ];
        table_row(
            LEASE_COLUMNS,
            Rect::new(area.x, y, area.width, 1),
            &cells,
            &[],
            buf,
        );
        y += 1;
    }
}
