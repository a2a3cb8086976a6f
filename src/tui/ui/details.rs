//! The details pane of the selected VM: an overview (definition, pid, uptime, boots) and
//! live charts of the last minute: CPU % in total and per vCPU, memory (vmd's resident set
//! against guest RAM touched) and VM exits per second; and its devices: each disk with its
//! read and write rates, each NIC with its receive and transmit rates and address, as
//! sparklines of the last minute. On short screens the devices take the exits chart's place.

use super::widgets::{duration, put, sparkline, truncate};
use crate::config::{BootConfig, format_size};
use crate::protocol::BootImageInfo;
use crate::tui::app::{App, VmEntry};
use crate::tui::history::{HISTORY_LEN, Series};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph, Widget};

/// One line saying what the VM boots.
pub fn boot_summary(vm: &VmEntry) -> String {
    let Some(config) = vm.config() else {
        return format!("{}: definition broken", vm.name());
    };
    match &config.boot {
        BootConfig::Demo => format!("{}: built-in demo guest", vm.name()),
        BootConfig::Kernel {
            kernel,
            initrd,
            cmdline,
        } => {
            let mut text = format!("{}: kernel {}", vm.name(), kernel.display());
            if let Some(initrd) = initrd {
                text.push_str(&format!("  initrd {}", initrd.display()));
            }
            if !cmdline.is_empty() {
                text.push_str(&format!("  cmdline \"{cmdline}\""));
            }
            text
        }
        BootConfig::Image { .. } => match vm.info.as_ref().and_then(|i| i.boot_image.as_ref()) {
            Some(booted) => format!("{}: image {}", vm.name(), booted.describe()),
            None => format!("{}: its disk image's own kernel (vda)", vm.name()),
        },
    }
}

/// Draws the details of the selected VM into `body`.
pub fn draw(app: &App, body: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let Some(vm) = app.selected() else {
        Block::new()
            .borders(Borders::ALL)
            .border_style(theme.border)
            .title(" details ")
            .render(body, buf);
        put(
            buf,
            body.x + 2,
            body.y + 1,
            "no VM selected",
            body.width.saturating_sub(4),
            theme.muted,
        );
        return;
    };
    let devices = devices(app, vm);
    // Tall screens give the devices a row of their own; short ones put them where the exits
    // chart would be.
    let own_row = !devices.is_empty() && body.height >= TALL;
    let device_rows = if own_row {
        devices.len().min(MAX_DEVICE_ROWS) as u16 + 2
    } else {
        0
    };
    let [overview, cpu_row, memory_row, device_row] = Layout::vertical([
        Constraint::Length(6),
        Constraint::Fill(1),
        Constraint::Fill(1),
        Constraint::Length(device_rows),
    ])
    .areas(body);
    draw_overview(app, vm, overview, buf);
    let [cpu, per_vcpu] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Fill(1)]).areas(cpu_row);
    let [memory, exits] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Fill(1)]).areas(memory_row);
    if own_row {
        draw_devices(app, vm, &devices, device_row, buf);
    } else if !devices.is_empty() {
        draw_devices(app, vm, &devices, exits, buf);
    }

    let cpu_now = vm.cpu_percent().map_or("-".into(), |p| format!("{p:.1}%"));
    let cpu_peak = vm.history.cpu.iter().fold(100.0_f64, f64::max);
    chart(
        app,
        &format!(" CPU {cpu_now} (100% = one host CPU) "),
        &[("total", points(&vm.history.cpu), theme.cpu)],
        cpu_peak,
        |v| format!("{v:.0}%"),
        cpu,
        buf,
    );
    draw_vcpus(app, vm, per_vcpu, buf);

    let rss: Series<f64> = to_f64(&vm.history.rss);
    let touched: Series<f64> = to_f64(&vm.history.touched);
    let target: Series<f64> = to_f64(&vm.history.balloon_target);
    let free: Series<f64> = to_f64(&vm.history.guest_free);
    let mem_max = rss
        .iter()
        .chain(touched.iter())
        .chain(target.iter())
        .fold(vm.memory().unwrap_or(0) as f64, f64::max);
    let used = vm.used_bytes().map_or("-".into(), format_size);
    let live_stats = vm.stats.as_ref().filter(|_| vm.is_live());
    let touched_now = live_stats.map_or("-".into(), |s| format_size(s.memory_touched_bytes));
    let balloon_now = live_stats
        .and_then(|s| Some((s.memory_bytes, s.balloon.as_ref()?)))
        .map_or(String::new(), |(memory, b)| {
            format!(
                ", balloon target {}",
                format_size(memory.saturating_sub(b.target_bytes))
            )
        });
    let free_now = live_stats
        .and_then(|s| s.guest_free_bytes)
        .map_or(String::new(), |free| {
            format!(", guest free {}", format_size(free))
        });
    let mut series = vec![
        ("RSS", points(&rss), theme.memory),
        ("touched", points(&touched), theme.memory_alt),
    ];
    if !target.is_empty() {
        series.push(("balloon target", points(&target), theme.cpu));
    }
    if !free.is_empty() {
        series.push(("guest free", points(&free), theme.exits));
    }
    chart(
        app,
        &format!(" memory: vmd RSS {used}, guest touched {touched_now}{balloon_now}{free_now} "),
        &series,
        mem_max,
        |v| format_size(v as u64),
        memory,
        buf,
    );
    if !devices.is_empty() && !own_row {
        return;
    }
    let exits_now = vm.history.exits.last().filter(|_| vm.is_live());
    let exits_peak = vm.history.exits.iter().fold(10.0_f64, f64::max);
    chart(
        app,
        &format!(
            " VM exits/s {} ",
            exits_now.map_or("-".into(), |e| format!("{e:.0}"))
        ),
        &[("exits/s", points(&vm.history.exits), theme.exits)],
        exits_peak,
        |v| format!("{v:.0}"),
        exits,
        buf,
    );
}

/// Bodies at least this tall give the devices a row of their own.
const TALL: u16 = 30;
/// Most device rows shown in their own row.
const MAX_DEVICE_ROWS: usize = 8;

/// One disk or NIC of the VM, as the devices panel lists it.
struct Device {
    /// `vda`, `net0`.
    name: String,
    /// Where it leads: the disk's volume or file, the NIC's network, MAC and address.
    source: String,
    /// Labels of the two rates: `rd`/`wr` or `rx`/`tx`.
    labels: [&'static str; 2],
    /// Key into the history: the disk's target or `net<index>`.
    history: Option<String>,
    /// A NIC (its rates are in the NIC history).
    nic: bool,
    /// The guest is asked to eject it and has not: `ejecting 12 s` (shown instead of rates).
    ejecting: Option<String>,
}

/// The VM's disks (from its definition, with their guest names, plus disks hot-added for
/// this boot only, and those the guest is being asked to eject) and NICs.
fn devices(app: &App, vm: &VmEntry) -> Vec<Device> {
    // A broken definition names no devices: only what vmd reports is shown.
    let (disks, nics) = vm
        .config()
        .map(|c| (c.disks.as_slice(), c.nics.as_slice()))
        .unwrap_or_default();
    let targets = crate::config::assign_targets(disks).unwrap_or_default();
    let live = vm
        .info
        .as_ref()
        .filter(|_| vm.is_live())
        .map(|i| i.disks.as_slice())
        .unwrap_or_default();
    let mut out: Vec<Device> = disks
        .iter()
        .zip(targets)
        .map(|(disk, target)| {
            let ejecting = live
                .iter()
                .find(|d| d.target == target)
                .and_then(|d| ejecting(app, d));
            Device {
                ejecting,
                source: format!(
                    "{}{}",
                    disk.source,
                    if disk.readonly { " (ro)" } else { "" },
                ),
                history: Some(target.clone()),
                name: target,
                labels: ["rd", "wr"],
                nic: false,
            }
        })
        .collect();
    let known: Vec<String> = out.iter().map(|d| d.name.clone()).collect();
    for disk in live.iter().filter(|d| !known.contains(&d.target)) {
        let file = disk.path.file_name().map_or_else(
            || disk.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        out.push(Device {
            name: disk.target.clone(),
            source: format!("{file} (this boot only)"),
            ejecting: ejecting(app, disk),
            labels: ["rd", "wr"],
            history: Some(disk.target.clone()),
            nic: false,
        });
    }
    out.extend(nics.iter().enumerate().map(|(i, nic)| {
        let ip = app
            .networks
            .snapshot
            .networks
            .iter()
            .flat_map(|n| n.attached.iter())
            .filter(|_| app.networks_host == vm.host)
            .find(|a| a.vm == vm.name() && a.mac == nic.mac)
            .and_then(|a| a.ip);
        Device {
            name: format!("net{i}"),
            source: match ip {
                Some(ip) => format!("{} {}", nic.network, ip),
                None => format!("{} {}", nic.network, nic.mac),
            },
            labels: ["rx", "tx"],
            history: Some(format!("net{i}")),
            nic: true,
            ejecting: None,
        }
    }));
    out
}

/// `ejecting for 23 s; X forces` while the guest is asked to eject `disk` and has not.
fn ejecting(app: &App, disk: &crate::protocol::DiskInfo) -> Option<String> {
    disk.removing.then(|| match disk.removal_requested_at {
        Some(asked) => format!("ejecting for {} s; X forces", app.now.saturating_sub(asked)),
        None => "ejecting; X forces".to_string(),
    })
}

/// `1.2M/s`, `512B/s`.
fn rate(bytes_per_sec: f64) -> String {
    if bytes_per_sec < 1024.0 {
        format!("{bytes_per_sec:.0}B/s")
    } else {
        format!("{}/s", format_size(bytes_per_sec as u64))
    }
}

fn draw_devices(app: &App, vm: &VmEntry, devices: &[Device], area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(truncate(
            " disks and NICs, last minute ",
            usize::from(area.width.saturating_sub(2)),
        ))
        .title_style(theme.title);
    let inner = block.inner(area);
    block.render(area, buf);
    let width = usize::from(inner.width);
    // name, source, then two halves of label + rate + sparkline.
    let name_w = 5;
    let source_w = if width >= 70 { 24 } else { 0 };
    let half = width.saturating_sub(name_w + source_w) / 2;
    // label, space, rate ("738.6K/s" at most 8; 9 leaves a gap when there is room), space.
    let rate_w = if half >= 13 { 9 } else { 8 };
    let spark_w = half.saturating_sub(3 + rate_w + 2);
    let rows = usize::from(inner.height);
    let shown = if devices.len() > rows {
        rows.saturating_sub(1)
    } else {
        devices.len()
    };
    for (row, device) in devices.iter().take(shown).enumerate() {
        let y = inner.y + row as u16;
        let mut x = inner.x;
        put(buf, x, y, &device.name, name_w as u16, theme.header);
        x += name_w as u16;
        if source_w > 0 {
            put(
                buf,
                x,
                y,
                &truncate(&device.source, source_w - 1),
                source_w as u16,
                theme.base,
            );
            x += source_w as u16;
        }
        if let Some(ejecting) = &device.ejecting {
            let rest = inner.right().saturating_sub(x);
            put(
                buf,
                x,
                y,
                &truncate(ejecting, usize::from(rest)),
                rest,
                theme.warning,
            );
            continue;
        }
        let series = device
            .history
            .as_deref()
            .and_then(|name| {
                if device.nic {
                    vm.history.nic(name)
                } else {
                    vm.history.disk(name)
                }
            })
            .filter(|_| vm.is_live());
        for (i, label) in device.labels.iter().enumerate() {
            let values = series.map(|s| if i == 0 { &s.input } else { &s.output });
            let now = values.and_then(Series::last).map_or("-".to_string(), rate);
            put(buf, x, y, label, 2, theme.muted);
            put(
                buf,
                x + 3,
                y,
                &format!("{now:>rate_w$}"),
                rate_w as u16,
                theme.base,
            );
            if spark_w >= 4
                && let Some(values) = values
            {
                let peak = values.iter().fold(1024.0_f64, f64::max);
                put(
                    buf,
                    x + 3 + rate_w as u16 + 1,
                    y,
                    &sparkline(values.iter(), spark_w, peak),
                    spark_w as u16,
                    if i == 0 { theme.memory } else { theme.cpu },
                );
            }
            x += half as u16;
        }
    }
    if shown < devices.len() {
        put(
            buf,
            inner.x,
            inner.y + shown as u16,
            &format!("+{} more devices", devices.len() - shown),
            inner.width,
            theme.muted,
        );
    }
}

fn to_f64(series: &Series<u64>) -> Series<f64> {
    let mut out = Series::default();
    for v in series.iter() {
        out.push(v as f64);
    }
    out
}

/// Chart points: x = seconds relative to the window (the newest sample at the right edge).
fn points(series: &Series<f64>) -> Vec<(f64, f64)> {
    let start = HISTORY_LEN - series.len();
    series
        .iter()
        .enumerate()
        .map(|(i, v)| ((start + i) as f64, v))
        .collect()
}

fn draw_overview(app: &App, vm: &VmEntry, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let state = match app.busy_of(vm) {
        Some(doing) => Span::styled(format!("{doing}…"), theme.info),
        None => Span::styled(vm.state().label(), theme.state(vm.state())),
    };
    let mut first = vec![Span::styled(vm.name().to_string(), theme.title)];
    if vm.host.is_remote() {
        first.push(Span::styled(App::on_host(&vm.host), theme.muted));
    }
    first.extend([Span::raw("  "), state]);
    if let Some(pid) = vm.pid() {
        first.push(Span::styled(format!("  pid {pid}"), theme.base));
    }
    if let Some(stats) = vm.stats.as_ref().filter(|_| vm.is_live()) {
        first.push(Span::styled(
            format!("  up {}", duration(stats.uptime_ms / 1000)),
            theme.base,
        ));
    }
    if let Some(info) = vm.info.as_ref().filter(|_| vm.is_live()) {
        first.push(Span::styled(format!("  boots {}", info.boots), theme.muted));
    }
    let (boot, third) = match (vm.config(), vm.broken()) {
        (Some(config), _) => {
            let booted = vm
                .info
                .as_ref()
                .filter(|_| vm.is_live())
                .and_then(|i| i.boot_image.as_deref());
            boot_lines(app, &config.boot, booted, vm.reason())
        }
        (None, Some(broken)) => (
            Line::from(Span::styled(
                format!("definition broken: {}", broken.error),
                theme.error,
            )),
            Line::from(Span::styled(
                format!(
                    "repair it with `{}` in a shell; a running VM keeps running and can be stopped here",
                    broken.fix()
                ),
                theme.muted,
            )),
        ),
        (None, None) => (Line::raw(""), Line::raw("")),
    };
    let dash = || "-".to_string();
    let (now, max) = (vm.vcpus_now(), vm.max_vcpus());
    let vcpus = match (vm.config(), now, max) {
        (Some(config), Some(now), Some(max)) if vm.is_live() && now != config.vcpus => {
            format!("{now} online ({} defined, max {max})", config.vcpus)
        }
        (_, Some(now), Some(max)) => format!("{now} (max {max})"),
        (_, Some(now), None) => now.to_string(),
        _ => dash(),
    };
    let mut facts = vec![
        ("vCPUs ", vcpus),
        ("memory ", vm.memory().map_or_else(dash, format_size)),
        (
            "autostart ",
            match vm.config() {
                Some(config) if config.autostart => "yes",
                Some(_) => "no",
                None => "-",
            }
            .to_string(),
        ),
    ];
    if let Some(stats) = vm.stats.as_ref().filter(|_| vm.is_live()) {
        facts.push(("exits ", stats.exits.to_string()));
        facts.push(("serial out ", format_size(stats.serial_out_bytes)));
    }
    // Facts in order while they fit whole: a cut number reads as a wrong one.
    let room = usize::from(area.width.saturating_sub(2));
    let mut spans = Vec::new();
    let mut used = 0;
    for (label, value) in facts {
        let gap = if spans.is_empty() { "" } else { "  " };
        let width = gap.len() + label.len() + value.chars().count();
        if used + width > room {
            break;
        }
        used += width;
        spans.push(Span::styled(format!("{gap}{label}"), theme.header));
        spans.push(Span::raw(value));
    }
    Paragraph::new(vec![Line::from(first), boot, third, Line::from(spans)])
        .style(theme.base)
        .block(
            Block::new()
                .borders(Borders::ALL)
                .border_style(theme.border)
                .title(" overview ")
                .title_style(theme.title),
        )
        .render(area, buf);
}

/// The overview's boot line and the line under it (the command line, the demo's commands, or
/// why the VM crashed).
fn boot_lines<'a>(
    app: &App,
    boot: &BootConfig,
    booted: Option<&BootImageInfo>,
    reason: Option<&str>,
) -> (Line<'a>, Line<'a>) {
    let theme = &app.theme;
    let first = match boot {
        BootConfig::Demo => Line::from(vec![
            Span::styled("boot ", theme.header),
            Span::raw("built-in demo guest"),
        ]),
        BootConfig::Kernel { kernel, initrd, .. } => {
            let mut spans = vec![
                Span::styled("kernel ", theme.header),
                Span::raw(kernel.display().to_string()),
            ];
            if let Some(initrd) = initrd {
                spans.push(Span::styled("  initrd ", theme.header));
                spans.push(Span::raw(initrd.display().to_string()));
            }
            Line::from(spans)
        }
        BootConfig::Image { .. } => {
            let text = booted.map_or_else(
                || "the kernel its disk vda's /boot names (read at each start)".to_string(),
                |b| b.describe(),
            );
            Line::from(vec![Span::styled("image ", theme.header), Span::raw(text)])
        }
    };
    let second = match (boot, reason) {
        (_, Some(reason)) => Line::from(Span::styled(format!("crashed: {reason}"), theme.error)),
        (BootConfig::Kernel { cmdline, .. }, None) => Line::from(vec![
            Span::styled("cmdline ", theme.header),
            Span::raw(cmdline.clone()),
        ]),
        (BootConfig::Image { cmdline_extra }, None) => match booted {
            Some(b) => Line::from(vec![
                Span::styled("cmdline ", theme.header),
                Span::raw(b.cmdline.clone()),
            ]),
            None => Line::from(vec![
                Span::styled("cmdline ", theme.header),
                Span::raw(format!("the boot entry's, plus \"{cmdline_extra}\"")),
            ]),
        },
        (BootConfig::Demo, None) => Line::from(Span::styled(
            "its console answers help, cpus, mem, disks, uptime, echo, poweroff, reboot",
            theme.muted,
        )),
    };
    (first, second)
}

fn draw_vcpus(app: &App, vm: &VmEntry, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(" per vCPU ")
        .title_style(theme.title);
    let inner = block.inner(area);
    block.render(area, buf);
    if !vm.is_live() || vm.history.vcpus.is_empty() {
        put(
            buf,
            inner.x,
            inner.y,
            "not running",
            inner.width,
            theme.muted,
        );
        return;
    }
    let rows = usize::from(inner.height);
    let count = vm.history.vcpus.len();
    let shown = if count > rows {
        rows.saturating_sub(1)
    } else {
        count
    };
    // "vcpu12 " + sparkline + " 100.0%"
    let spark_width = usize::from(inner.width).saturating_sub(7 + 7);
    for (i, series) in vm.history.vcpus.iter().take(shown).enumerate() {
        let y = inner.y + i as u16;
        let now = series.last().unwrap_or(0.0);
        put(buf, inner.x, y, &format!("vcpu{i:<2}"), 7, theme.header);
        put(
            buf,
            inner.x + 7,
            y,
            &sparkline(series.iter(), spark_width, 100.0),
            spark_width as u16,
            theme.cpu,
        );
        put(
            buf,
            inner.x + 7 + spark_width as u16,
            y,
            &format!("{now:>6.1}%"),
            7,
            theme.base,
        );
    }
    if shown < count {
        let y = inner.y + shown as u16;
        put(
            buf,
            inner.x,
            y,
            &format!("+{} more vCPUs", count - shown),
            inner.width,
            theme.muted,
        );
    }
}

/// One line of a chart: legend name, points, style.
type ChartSeries<'a> = (&'a str, Vec<(f64, f64)>, Style);

/// A line chart of up to a minute of samples with a y axis from 0 to `max`.
fn chart(
    app: &App,
    title: &str,
    series: &[ChartSeries],
    max: f64,
    label: impl Fn(f64) -> String,
    area: Rect,
    buf: &mut Buffer,
) {
    let theme = &app.theme;
    let datasets: Vec<Dataset> = series
        .iter()
        .map(|(name, data, style)| {
            Dataset::default()
                .name(*name)
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(*style)
                .data(data)
        })
        .collect();
    let max = if max > 0.0 { max * 1.05 } else { 1.0 };
    let y_labels = vec![
        Span::styled("0", theme.muted),
        Span::styled(label(max), theme.muted),
    ];
    let show_legend = series.len() > 1;
    let chart = Chart::new(datasets)
        .style(theme.base)
        .block(
            Block::new()
                .borders(Borders::ALL)
                .border_style(theme.border)
                .title(truncate(title, usize::from(area.width.saturating_sub(2))))
                .title_style(theme.title),
        )
        .x_axis(
            Axis::default()
                .bounds([0.0, (HISTORY_LEN - 1) as f64])
                .style(theme.muted),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, max])
                .labels(y_labels)
                .style(theme.muted),
        )
        .hidden_legend_constraints((Constraint::Min(0), Constraint::Min(0)));
    let chart = if show_legend {
        chart
            .legend_position(Some(ratatui::widgets::LegendPosition::TopLeft))
            .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)))
    } else {
        chart.legend_position(None)
    };
    chart.render(area, buf);
}
