//! Saving and memory from the TUI: `S` saves the selected VM to its managed save (asking
//! first; starting it again resumes it), `[` / `]` take memory from the guest or give it back
//! through the memory balloon, one step at a time, and the palette's `save`, `restore`,
//! `managedsave-remove` and `setmem` do the same with virsh's arguments.

use std::path::PathBuf;

use crate::client::ChangeScope;
use crate::config::format_size;
use crate::protocol::RunState;
use crate::tui::action::HostOp;
use crate::tui::app::{App, Overlay, StatusKind};
use crate::tui::confirm::Confirm;
use crate::tui::queue::run_ops;
use crate::tui::scope::default_scope;

/// The least memory the keys leave a guest, bytes.
const MIN_MEMORY: u64 = 16 << 20;

/// How much one `[` or `]` changes: an eighth of the VM's memory, in whole 2 MiB, at least
/// 16 MiB.
pub fn memory_step(memory: u64) -> u64 {
    ((memory / 8) & !((2 << 20) - 1)).max(MIN_MEMORY)
}

/// `S`: save the selected running VM to its managed save, after asking.
pub(crate) fn save(app: &mut App) {
    let Some(vm) = app.selected() else {
        app.set_status(StatusKind::Error, "no VM selected");
        return;
    };
    let name = vm.name().to_string();
    if !vm.is_live() {
        app.set_status(
            StatusKind::Error,
            format!(
                "{name} is {}; only a running VM can be saved",
                vm.state().label()
            ),
        );
        return;
    }
    app.overlay = Some(Overlay::Confirm(Confirm {
        title: format!("Save {name}"),
        message: format!(
            "Save {name}'s memory and devices to disk and stop it?\nStarting it again \
             resumes it where it was (disks are not copied: leave them alone meanwhile)."
        ),
        ops: vec![HostOp::Save {
            vm: name,
            path: None,
        }],
        task: None,
        bulk: false,
        remove_host: None,
    }));
}

/// The memory the selected VM's guest has now (or starts with), bytes.
fn current_memory(app: &App, name: &str) -> Option<(u64, u64, bool)> {
    let vm = app.entry(name)?;
    let memory = vm.memory()?;
    let live = vm.is_live();
    let current = if live {
        vm.stats
            .as_ref()
            .and_then(|s| s.balloon.as_ref())
            .map_or(memory, |b| memory.saturating_sub(b.target_bytes))
    } else {
        vm.config()?.current_memory.unwrap_or(memory)
    };
    Some((memory, current, live))
}

/// `[` / `]`: one step less or more memory for the selected VM (now and at its next boot
/// when it runs), never above its defined memory.
pub(crate) fn change_memory(app: &mut App, direction: i64) {
    let Some(vm) = app.selected() else {
        app.set_status(StatusKind::Error, "no VM selected");
        return;
    };
    let name = vm.name().to_string();
    if let Some(refusal) = vm.broken_refusal("change its memory") {
        app.set_status(StatusKind::Error, refusal);
        return;
    }
    if vm.config().is_some_and(|c| !c.balloon) {
        app.set_status(
            StatusKind::Error,
            format!(
                "{name} has no memory balloon; turn it on in its definition (e) and restart it"
            ),
        );
        return;
    }
    if let Some(doing) = app.busy_with(&name) {
        app.set_status(StatusKind::Error, format!("{name} is busy {doing}"));
        return;
    }
    let Some((memory, from, live)) = current_memory(app, &name) else {
        return;
    };
    let step = memory_step(memory);
    let bytes = if direction < 0 {
        from.saturating_sub(step).max(MIN_MEMORY)
    } else {
        from.saturating_add(step).min(memory)
    };
    if bytes == from {
        let why = if direction < 0 {
            format!(
                "{name} is down to {}, the least the keys leave it",
                format_size(from)
            )
        } else {
            format!(
                "{name} has all of its {} (its defined memory); raise it with e (edit) and restart it for more",
                format_size(memory)
            )
        };
        app.set_status(StatusKind::Error, why);
        return;
    }
    run_ops(
        app,
        vec![HostOp::SetMemory {
            vm: name,
            from,
            bytes,
            scope: default_scope(live),
        }],
    );
}

/// `:setmem [name] SIZE [--live] [--config]`.
pub(crate) fn setmem(app: &mut App, vm: Option<String>, bytes: u64, live: bool, config: bool) {
    let Some(name) = vm.or_else(|| app.selected().map(|v| v.name().to_string())) else {
        app.set_status(StatusKind::Error, "no VM selected; :setmem NAME SIZE");
        return;
    };
    let Some((_, from, running)) = current_memory(app, &name) else {
        app.set_status(StatusKind::Error, format!("there is no VM named '{name}'"));
        return;
    };
    let scope = if live || config {
        ChangeScope { live, config }
    } else if running {
        ChangeScope::LIVE
    } else {
        ChangeScope::CONFIG
    };
    run_ops(
        app,
        vec![HostOp::SetMemory {
            vm: name,
            from,
            bytes,
            scope,
        }],
    );
}

/// `:save [name] [FILE]` (no file: the managed save) and `:managedsave [name]`.
pub(crate) fn save_to(app: &mut App, vm: Option<String>, path: Option<PathBuf>) {
    let Some(name) = vm.or_else(|| app.selected().map(|v| v.name().to_string())) else {
        app.set_status(StatusKind::Error, "no VM selected; :save NAME [FILE]");
        return;
    };
    match app.entry(&name).map(|v| v.state()) {
        Some(RunState::Running | RunState::Paused) => {}
        Some(state) => {
            app.set_status(
                StatusKind::Error,
                format!(
                    "{name} is {}; only a running VM can be saved",
                    state.label()
                ),
            );
            return;
        }
        None => {
            app.set_status(StatusKind::Error, format!("there is no VM named '{name}'"));
            return;
        }
    }
    run_ops(app, vec![HostOp::Save { vm: name, path }]);
}

/// `:restore FILE`.
pub(crate) fn restore(app: &mut App, path: PathBuf) {
    let label = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    run_ops(app, vec![HostOp::Restore { path, label }]);
}

/// `:managedsave-remove [name]`.
pub(crate) fn discard(app: &mut App, vm: Option<String>) {
    let Some(name) = vm.or_else(|| app.selected().map(|v| v.name().to_string())) else {
        app.set_status(
            StatusKind::Error,
            "no VM selected; :managedsave-remove NAME",
        );
        return;
    };
    if app.entry(&name).map(|v| v.state()) != Some(RunState::Saved) {
        app.set_status(StatusKind::Error, format!("{name} has no saved state"));
        return;
    }
    run_ops(app, vec![HostOp::ManagedSaveRemove(name)]);
}

/// `:dommemstat [name]`: the balloon and the guest's memory, from the latest sample.
pub(crate) fn show_stats(app: &mut App, vm: Option<String>) {
    let Some(name) = vm.or_else(|| app.selected().map(|v| v.name().to_string())) else {
        app.set_status(StatusKind::Error, "no VM selected; :dommemstat NAME");
        return;
    };
    let Some(entry) = app.entry(&name) else {
        app.set_status(StatusKind::Error, format!("there is no VM named '{name}'"));
        return;
    };
    let Some(stats) = entry.stats.as_ref().filter(|_| entry.is_live()) else {
        app.set_status(StatusKind::Error, format!("{name} is not running"));
        return;
    };
    let memory = entry.memory().unwrap_or(0);
    let message = match &stats.balloon {
        None => format!("{name}: {} of memory, no balloon", format_size(memory)),
        Some(balloon) => format!(
            "{name}: {} of {} for the guest (balloon holds {}, target {}){}; vmd RSS {}",
            format_size(memory.saturating_sub(balloon.actual_bytes)),
            format_size(memory),
            format_size(balloon.actual_bytes),
            format_size(balloon.target_bytes),
            stats.guest_free_bytes.map_or(String::new(), |free| format!(
                ", guest free {}",
                format_size(free)
            )),
            format_size(stats.rss_bytes)
        ),
    };
    app.set_status(StatusKind::Info, message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_an_eighth_of_memory_in_whole_2_mib_and_at_least_16_mib() {
        assert_eq!(memory_step(1 << 30), 128 << 20);
        assert_eq!(memory_step(512 << 20), 64 << 20);
        assert_eq!(memory_step(100 << 20), 16 << 20);
    }
}
