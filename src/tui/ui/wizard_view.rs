//! Draws the creation wizard and the edit form: the step line, the step's form (each field
//! with its problem or hint underneath, the disk and network checklists, drawn by
//! [`form_view`](super::form_view) as every dialog is), the review with the equivalent
//! `vmux create` command, and the file picker. Fits 80×24.

use super::form_view::{self, Look};
use super::layout;
use super::widgets::dialog;
use super::widgets::{put, truncate};
use crate::config::{format_size, parse_size};
use crate::tui::app::App;
use crate::tui::form::{FieldKey, FieldValue, FormField};
use crate::tui::wizard::{FilePicker, Step, Wizard, memory_hint};
use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

/// Width of the label column.
const LABEL: u16 = 16;

/// Draws `wizard` centred in `area`.
pub fn draw(app: &App, wizard: &Wizard, area: Rect, frame: &mut Frame) {
    // Taller screens give the lists (volumes, networks) and the review more rows.
    let height = (u32::from(area.height) * 2 / 3) as u16;
    let rect = layout::dialog(area, 76, height.clamp(22, 30));
    let on = App::on_host(&app.current_host());
    let title = match wizard.editing() {
        Some(name) => format!("edit {name}{on}"),
        None => format!("new VM{on}"),
    };
    let inner = dialog(app, rect, &title, frame.buffer_mut());
    if inner.height < 3 || inner.width < LABEL + 4 {
        return;
    }
    steps(app, wizard, inner, frame.buffer_mut());
    // Steps (and a blank row) above; up to two rows of problem and the keys below.
    let body = Rect::new(
        inner.x,
        inner.y + 2,
        inner.width,
        inner.height.saturating_sub(5),
    );
    if let Some(picker) = &wizard.picker {
        let target = wizard.field(picker.target).map_or("", |f| f.label);
        draw_picker(app, picker, target, body, frame.buffer_mut());
    } else {
        match wizard.step {
            Step::Review => review(app, wizard, body, frame),
            Step::Disks => disks(app, wizard, body, frame),
            Step::Network => {
                let note = "Each ticked network gives the VM a NIC with a fresh MAC address.";
                let list = Rect::new(body.x, body.y, body.width, body.height.saturating_sub(1));
                checklist(app, wizard, FieldKey::Networks, list, frame.buffer_mut());
                put(
                    frame.buffer_mut(),
                    body.x,
                    body.bottom().saturating_sub(1),
                    note,
                    body.width,
                    app.theme.muted,
                );
            }
            _ => fields(app, wizard, body, 2, frame),
        }
        if wizard.step == Step::Resources {
            let used = 3 * 2 + 1;
            let about = Rect::new(
                body.x,
                body.y + used,
                body.width,
                body.height.saturating_sub(used),
            );
            hot_add_note(app, about, frame.buffer_mut());
        }
    }
    keys_line(app, wizard, inner, frame.buffer_mut());
}

fn steps(app: &App, wizard: &Wizard, inner: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    if wizard.step == Step::Edit {
        put(
            buf,
            inner.x,
            inner.y,
            "changes apply the next time the VM starts",
            inner.width,
            theme.muted,
        );
        return;
    }
    let steps = wizard.steps();
    let full: usize = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!("{} {}", i + 1, s.title()).chars().count() + if i > 0 { 3 } else { 0 }
        })
        .sum();
    // Too long for the dialog: the other steps by number only.
    let compact = full > usize::from(inner.width);
    let mut spans = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" › ", theme.muted));
        }
        let current = *step == wizard.step;
        let style = if current {
            theme.title.add_modifier(Modifier::UNDERLINED)
        } else {
            theme.muted
        };
        let text = if compact && !current {
            (i + 1).to_string()
        } else {
            format!("{} {}", i + 1, step.title())
        };
        spans.push(Span::styled(text, style));
    }
    Line::from(spans).render(Rect::new(inner.x, inner.y, inner.width, 1), buf);
}

/// The advice under `field`: the wizard's, and for the memory field what the host has free.
fn hint(app: &App, field: &FormField) -> String {
    if field.key == FieldKey::Memory {
        let requested = match &field.value {
            FieldValue::Text(input) => parse_size(input.text().trim()).ok(),
            _ => None,
        };
        return memory_hint(requested, app.host_memory.map(|m| (m.available, m.total)));
    }
    field.hint.clone()
}

/// The disk step: the volumes checklist over the new-volume fields.
fn disks(app: &App, wizard: &Wizard, body: Rect, frame: &mut Frame) {
    let new_rows = if wizard.flag(FieldKey::NewDisk) {
        10
    } else {
        2
    };
    let list_height = body
        .height
        .saturating_sub(new_rows + 1)
        .max(3.min(body.height));
    let list = Rect::new(body.x, body.y, body.width, list_height);
    checklist(app, wizard, FieldKey::Volumes, list, frame.buffer_mut());
    let below = Rect::new(
        body.x,
        body.y + list_height + 1,
        body.width,
        body.height.saturating_sub(list_height + 1),
    );
    fields(app, wizard, below, 2, frame);
}

/// A checklist field of the wizard in `area`.
fn checklist(app: &App, wizard: &Wizard, id: FieldKey, area: Rect, buf: &mut Buffer) {
    if let Some(field) = wizard.field(id) {
        let focused = wizard.focused() == Some(id);
        form_view::checklist(app, field, focused, LABEL, area, buf);
    }
}

/// Draws the fields shown on the step, `rows` rows each (value, then problem or hint).
fn fields(app: &App, wizard: &Wizard, area: Rect, rows: u16, frame: &mut Frame) {
    let look = Look {
        label: LABEL,
        rows,
        cursor: wizard.picker.is_none(),
        outdent: false,
    };
    form_view::fields(app, &wizard.form, area, look, &|f| hint(app, f), frame);
}

fn hot_add_note(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    if area.height == 0 {
        return;
    }
    let text = "About hot-add: the guest boots with \"vCPUs\" processors. The ACPI tables \
                reserve room for \"max vCPUs\", so more processors can be added while the \
                guest runs, up to that number, without a reboot. Memory is fixed at boot.";
    Paragraph::new(text)
        .style(theme.muted)
        .wrap(Wrap { trim: true })
        .render(area, buf);
}

fn review(app: &App, wizard: &Wizard, area: Rect, frame: &mut Frame) {
    let theme = &app.theme;
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("{:<14}", "Name"), theme.header),
        Span::styled(wizard.text(FieldKey::Name).trim().to_string(), theme.dialog),
    ])];
    let mut fact = |label: &str, value: String| {
        lines.push(Line::from(vec![
            Span::styled(format!("{label:<14}"), theme.header),
            Span::styled(value, theme.dialog),
        ]));
    };
    if let Some((image, cloud_init)) = wizard.image_summary() {
        fact("Image", image);
        fact("Cloud-init", cloud_init);
    } else if wizard.kernel_boot() {
        let initrd = wizard.text(FieldKey::Initrd).trim();
        let mut kernel = wizard.text(FieldKey::Kernel).trim().to_string();
        if !initrd.is_empty() {
            kernel.push_str(&format!(" + initrd {initrd}"));
        }
        fact("Kernel", kernel);
        fact(
            "Command line",
            wizard.text(FieldKey::Cmdline).trim().to_string(),
        );
    } else {
        fact("Boot", "built-in demo guest".into());
    }
    fact(
        "CPUs",
        format!(
            "{} at boot, hot-add up to {}",
            wizard.text(FieldKey::Vcpus).trim(),
            wizard.text(FieldKey::MaxVcpus).trim()
        ),
    );
    let memory = parse_size(wizard.text(FieldKey::Memory).trim())
        .map(format_size)
        .unwrap_or_else(|_| wizard.text(FieldKey::Memory).to_string());
    fact("Memory", memory);
    let mut disks: Vec<String> = wizard
        .new_volume()
        .map(|v| {
            format!(
                "new {}/{} ({} {})",
                v.pool,
                v.name,
                v.spec.format.map_or("qcow2", |f| f.as_str()),
                format_size(v.spec.capacity)
            )
        })
        .into_iter()
        .collect();
    disks.extend(wizard.chosen_volumes());
    if wizard.image_boot() {
        disks.insert(0, "the image (vda)".into());
    }
    fact(
        "Disks",
        if disks.is_empty() {
            "none".into()
        } else {
            disks.join(", ")
        },
    );
    let networks = wizard.chosen_networks();
    fact(
        "Network",
        if networks.is_empty() {
            "none".into()
        } else {
            networks.join(", ")
        },
    );
    // Right under the facts: 80×24 has no row to spare.
    lines.push(Line::from(Span::styled(
        "The same from a shell:",
        theme.muted,
    )));
    lines.push(Line::from(Span::styled(
        wizard.command_line(),
        theme.accent,
    )));
    // The toggles keep their rows; the summary takes the rest.
    let toggles = wizard.visible().len() as u16;
    let text_height = area.height.saturating_sub(toggles + 1);
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .style(theme.dialog)
        .render(
            Rect::new(area.x, area.y, area.width, text_height),
            frame.buffer_mut(),
        );
    let toggles = Rect::new(
        area.x,
        area.y + text_height + 1,
        area.width,
        area.height.saturating_sub(text_height + 1),
    );
    fields(app, wizard, toggles, 1, frame);
}

fn draw_picker(app: &App, picker: &FilePicker, target: &str, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let title = format!(
        "choose {} in {}",
        target.to_lowercase(),
        picker.dir.display()
    );
    put(
        buf,
        area.x,
        area.y,
        &truncate(&title, usize::from(area.width)),
        area.width,
        theme.title,
    );
    let list = Rect::new(
        area.x,
        area.y + 1,
        area.width,
        area.height.saturating_sub(1),
    );
    if picker.loading {
        put(buf, list.x, list.y, "reading…", list.width, theme.muted);
        return;
    }
    if let Some(error) = &picker.error {
        put(
            buf,
            list.x,
            list.y + 1,
            &truncate(error, usize::from(list.width)),
            list.width,
            theme.error,
        );
    }
    let page = usize::from(list.height.max(1));
    let offset = (picker.selected + 1).saturating_sub(page);
    let names = std::iter::once(("..".to_string(), true))
        .chain(picker.entries.iter().map(|e| (e.name.clone(), e.is_dir)));
    for (row, (i, (name, is_dir))) in names.enumerate().skip(offset).take(page).enumerate() {
        let y = list.y + row as u16;
        let text = if is_dir { format!("{name}/") } else { name };
        let style = if i == picker.selected {
            theme.selected
        } else if is_dir {
            theme.accent
        } else {
            theme.dialog
        };
        if i == picker.selected {
            buf.set_style(Rect::new(list.x, y, list.width, 1), style);
        }
        put(
            buf,
            list.x + 1,
            y,
            &truncate(&text, usize::from(list.width.saturating_sub(1))),
            list.width,
            style,
        );
    }
}

fn keys_line(app: &App, wizard: &Wizard, inner: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let y = inner.bottom().saturating_sub(1);
    // Why Enter does not go on, and what to do, wrapped over two rows so the fix (at the
    // end of every message) is never cut.
    if let Some(notice) = wizard
        .notice
        .as_ref()
        .filter(|_| wizard.step_problem().is_none())
    {
        put(
            buf,
            inner.x,
            y.saturating_sub(1),
            &truncate(notice, usize::from(inner.width)),
            inner.width,
            theme.info,
        );
    }
    if let Some(problem) = wizard.step_problem().filter(|_| wizard.picker.is_none()) {
        let rows = 2.min(y.saturating_sub(inner.y));
        Paragraph::new(problem)
            .style(theme.error)
            .wrap(Wrap { trim: true })
            .render(
                Rect::new(inner.x, y.saturating_sub(rows), inner.width, rows),
                buf,
            );
    }
    let keys: &[(&str, &str)] = if wizard.picker.is_some() {
        &[
            ("Enter", "open/choose"),
            ("Bksp", "parent"),
            ("Esc", "cancel"),
        ]
    } else {
        match wizard.step {
            Step::Review if !wizard.networks_to_start().is_empty() => &[
                ("Enter", "start network, create"),
                ("Esc", "back"),
                ("Tab", "field"),
                ("Space", "toggle"),
            ],
            Step::Review => &[
                ("Enter", "create"),
                ("Esc", "back"),
                ("Tab", "field"),
                ("Space", "toggle"),
            ],
            Step::Edit => &[
                ("Enter", "save"),
                ("Esc", "cancel"),
                ("Tab/↑↓", "field"),
                ("Ctrl-O", "browse"),
            ],
            Step::Name => &[("Enter", "next"), ("Esc", "cancel")],
            Step::Boot | Step::CloudInit => &[
                ("Enter", "next"),
                ("Esc", "back"),
                ("Tab/↑↓", "field"),
                ("Space", "switch"),
                ("Ctrl-O", "browse"),
            ],
            Step::Resources => &[("Enter", "next"), ("Esc", "back"), ("Tab/↑↓", "field")],
            Step::Disks | Step::Network => &[
                ("Enter", "next"),
                ("Esc", "back"),
                ("Tab/↑↓", "field"),
                ("Space", "tick/switch"),
            ],
        }
    };
    let mut spans = Vec::new();
    for (key, label) in keys {
        spans.push(Span::styled(*key, theme.key));
        spans.push(Span::styled(format!(" {label}  "), theme.muted));
    }
    Line::from(spans).render(Rect::new(inner.x, y, inner.width, 1), buf);
}
