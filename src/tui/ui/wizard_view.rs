//! Draws the creation wizard and the edit form: the step line, each field with its problem
//! or hint underneath, the review with the equivalent `vmux create` command, and the file
//! picker. Fits 80×24.

use super::layout;
use super::overlays::dialog;
use super::widgets::{put, truncate};
use crate::config::{format_size, parse_size};
use crate::tui::app::App;
use crate::tui::wizard::{
    CREATE_STEPS, FieldId, FilePicker, SOURCES, Step, Value, Wizard, memory_hint,
};
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
    let rect = layout::centered(area, 76, 22);
    let title = match wizard.editing() {
        Some(name) => format!("edit {name}"),
        None => "new VM".to_string(),
    };
    let inner = dialog(app, rect, &title, frame.buffer_mut());
    if inner.height < 3 || inner.width < LABEL + 4 {
        return;
    }
    steps(app, wizard, inner, frame.buffer_mut());
    let body = Rect::new(
        inner.x,
        inner.y + 2,
        inner.width,
        inner.height.saturating_sub(4),
    );
    if let Some(picker) = &wizard.picker {
        draw_picker(app, picker, body, frame.buffer_mut());
    } else {
        if wizard.step == Step::Review {
            review(app, wizard, body, frame);
        } else {
            fields(app, wizard, body, 2, frame);
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
    let mut spans = Vec::new();
    for (i, step) in CREATE_STEPS.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" › ", theme.muted));
        }
        let style = if *step == wizard.step {
            theme.title.add_modifier(Modifier::UNDERLINED)
        } else {
            theme.muted
        };
        spans.push(Span::styled(format!("{} {}", i + 1, step.title()), style));
    }
    Line::from(spans).render(Rect::new(inner.x, inner.y, inner.width, 1), buf);
}

fn hint(app: &App, wizard: &Wizard, id: FieldId) -> String {
    match id {
        FieldId::Name => "letters, digits, . _ - (at most 64)".into(),
        FieldId::Source => "Space or ←/→ switches".into(),
        FieldId::Kernel => "bzImage or vmlinux; Ctrl-O browses".into(),
        FieldId::Initrd => "optional initramfs; Ctrl-O browses".into(),
        FieldId::Cmdline => "console=ttyS0 puts the guest's console on the serial line".into(),
        FieldId::Vcpus => "processors online at boot".into(),
        FieldId::MaxVcpus => "hot-add limit (see below)".into(),
        FieldId::Memory => memory_hint(
            parse_size(wizard.text(FieldId::Memory).trim()).ok(),
            app.host_memory.map(|m| (m.available, m.total)),
        ),
        FieldId::Autostart => "start it with `vmux autostart-all` at host boot".into(),
        FieldId::StartNow => "start the VM once it is created".into(),
        FieldId::AttachNow => "open its console once it runs".into(),
    }
}

/// Draws the visible fields of the step, `rows` rows each (value, then problem or hint).
fn fields(app: &App, wizard: &Wizard, area: Rect, rows: u16, frame: &mut Frame) {
    let theme = &app.theme;
    let focused = wizard.focused();
    let value_width = area.width.saturating_sub(LABEL);
    let mut y = area.y;
    for id in wizard.visible() {
        if y >= area.bottom() {
            break;
        }
        let Some(field) = wizard.field(id) else {
            continue;
        };
        let is_focused = focused == Some(id);
        let label_style = if is_focused { theme.key } else { theme.header };
        let marker = if is_focused { "›" } else { " " };
        let buf = frame.buffer_mut();
        put(
            buf,
            area.x,
            y,
            &format!("{marker}{}", id.label()),
            LABEL,
            label_style,
        );
        let x = area.x + LABEL;
        match &field.value {
            Value::Text(input) => {
                let (visible, cursor) = input.window(usize::from(value_width.saturating_sub(1)));
                buf.set_style(Rect::new(x, y, value_width, 1), theme.input);
                put(buf, x, y, &visible, value_width, theme.input);
                if is_focused && wizard.picker.is_none() {
                    frame.set_cursor_position((x + cursor as u16, y));
                }
            }
            Value::Toggle(on) => {
                let text = if *on { "[x] yes" } else { "[ ] no" };
                let style = if is_focused {
                    theme.selected
                } else {
                    theme.dialog
                };
                put(buf, x, y, text, value_width, style);
            }
            Value::Choice(index) => {
                let text = format!("◀ {} ▶", SOURCES.get(*index).copied().unwrap_or("?"));
                let style = if is_focused {
                    theme.selected
                } else {
                    theme.dialog
                };
                put(buf, x, y, &text, value_width, style);
            }
        }
        if rows > 1 && y + 1 < area.bottom() {
            let buf = frame.buffer_mut();
            match &field.error {
                Some(error) => put(
                    buf,
                    x,
                    y + 1,
                    &truncate(error, usize::from(value_width)),
                    value_width,
                    theme.error,
                ),
                None if is_focused || id == FieldId::Memory => {
                    let text = hint(app, wizard, id);
                    let style = if text.starts_with("warning") {
                        theme.warning
                    } else {
                        theme.muted
                    };
                    put(
                        buf,
                        x,
                        y + 1,
                        &truncate(&text, usize::from(value_width)),
                        value_width,
                        style,
                    );
                }
                None => {}
            }
        }
        y += rows;
    }
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
        Span::styled(wizard.text(FieldId::Name).trim().to_string(), theme.dialog),
    ])];
    let mut fact = |label: &str, value: String| {
        lines.push(Line::from(vec![
            Span::styled(format!("{label:<14}"), theme.header),
            Span::styled(value, theme.dialog),
        ]));
    };
    if wizard.kernel_boot() {
        fact("Kernel", wizard.text(FieldId::Kernel).trim().to_string());
        let initrd = wizard.text(FieldId::Initrd).trim();
        fact(
            "Initrd",
            if initrd.is_empty() {
                "(none)".into()
            } else {
                initrd.to_string()
            },
        );
        fact(
            "Command line",
            wizard.text(FieldId::Cmdline).trim().to_string(),
        );
    } else {
        fact("Boot", "built-in demo guest".into());
    }
    fact(
        "CPUs",
        format!(
            "{} at boot, hot-add up to {}",
            wizard.text(FieldId::Vcpus).trim(),
            wizard.text(FieldId::MaxVcpus).trim()
        ),
    );
    let memory = parse_size(wizard.text(FieldId::Memory).trim())
        .map(format_size)
        .unwrap_or_else(|_| wizard.text(FieldId::Memory).to_string());
    fact("Memory", memory);
    lines.push(Line::raw(""));
    lines.push(Line::from(Span::styled(
        "The same from a shell:",
        theme.muted,
    )));
    lines.push(Line::from(Span::styled(
        wizard.command_line(),
        theme.accent,
    )));
    let text_height = 10.min(area.height.saturating_sub(4));
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

fn draw_picker(app: &App, picker: &FilePicker, area: Rect, buf: &mut Buffer) {
    let theme = &app.theme;
    let title = format!(
        "choose {} in {}",
        picker.target.label().to_lowercase(),
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
    if let Some(problem) = wizard.problem.as_ref().filter(|_| wizard.picker.is_none()) {
        put(
            buf,
            inner.x,
            y.saturating_sub(1),
            &truncate(problem, usize::from(inner.width)),
            inner.width,
            theme.error,
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
            Step::Boot => &[
                ("Enter", "next"),
                ("Esc", "back"),
                ("Tab/↑↓", "field"),
                ("Space", "switch"),
                ("Ctrl-O", "browse"),
            ],
            Step::Resources => &[("Enter", "next"), ("Esc", "back"), ("Tab/↑↓", "field")],
        }
    };
    let mut spans = Vec::new();
    for (key, label) in keys {
        spans.push(Span::styled(*key, theme.key));
        spans.push(Span::styled(format!(" {label}  "), theme.muted));
    }
    Line::from(spans).render(Rect::new(inner.x, y, inner.width, 1), buf);
}
