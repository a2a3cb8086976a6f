//! The storage pane's behaviour: when to reload its state (`state`, the last
//! [`StorageSnapshot`] and the selection) and what the pane's keys do (dialogs for create /
//! resize / clone / convert / upload, confirmations for wipe and delete, pool start / stop /
//! autostart). Called only from `update`, `commands` and `hotplug`.

use super::state::StorageFocus;
use crate::client::{PoolView, StorageSnapshot};
use crate::config::format_size;
use crate::storage::VolumeInfo;
use crate::tui::action::Effect;
use crate::tui::app::{App, Overlay, Pane, StatusKind};
use crate::tui::confirm::Confirm;
use crate::tui::dialogs::Dialog;
use crate::tui::keymap::Command;
use crate::tui::queue::run_task;
use crate::tui::tasks::Task;

/// Seconds between reloads while the pane (or a dialog that lists volumes) is shown.
const RELOAD_TICKS: u64 = 2;

/// Whether something on screen needs pools and volumes now.
fn wanted(app: &App) -> bool {
    app.pane == Pane::Storage
        || matches!(app.overlay, Some(Overlay::Wizard(_) | Overlay::Dialog(_)))
}

/// Asks for a fresh snapshot (or for one more after the read in flight).
pub(in crate::tui) fn request_load(app: &mut App) {
    let state = &mut app.storage;
    if state.loading {
        state.stale = true;
        return;
    }
    state.loading = true;
    state.last_load = Some(app.ticks);
    app.push_effect(Effect::LoadStorage);
}

/// Reloads every few seconds while the pane or a dialog that needs it is shown.
pub(in crate::tui) fn on_tick(app: &mut App) {
    let due = app
        .storage
        .last_load
        .is_none_or(|t| app.ticks.saturating_sub(t) >= RELOAD_TICKS);
    if wanted(app) && due && !app.storage.loading {
        request_load(app);
    }
}

/// A snapshot (or an error) arrived.
pub(in crate::tui) fn on_loaded(app: &mut App, result: Result<StorageSnapshot, String>) {
    let state = &mut app.storage;
    state.loading = false;
    let before = (state.snapshot.clone(), state.error.clone(), state.loaded);
    match result {
        Ok(snapshot) => {
            state.snapshot = snapshot;
            state.error = None;
        }
        Err(e) => state.error = Some(e),
    }
    state.loaded = true;
    state.fix_selection();
    let changed = before != (state.snapshot.clone(), state.error.clone(), state.loaded);
    match &mut app.overlay {
        Some(Overlay::Wizard(wizard)) => wizard.set_storage(&app.storage.snapshot),
        Some(Overlay::Dialog(dialog)) => dialog.set_storage(&app.storage.snapshot),
        _ => {}
    }
    if std::mem::take(&mut app.storage.stale) {
        request_load(app);
    }
    if std::mem::take(&mut app.storage.open_new_volume) && app.overlay.is_none() {
        new_volume(app);
    }
    if changed {
        app.mark_dirty();
    }
}

/// Switches to the pane (loading it when needed).
pub(in crate::tui) fn show(app: &mut App) {
    app.pane = Pane::Storage;
    if !app.storage.loading {
        request_load(app);
    }
}

fn selected_info(app: &App) -> Result<(&PoolView, &VolumeInfo), String> {
    let pool = app
        .storage
        .selected_pool()
        .ok_or("no pool selected; pick one with ↑/↓")?;
    if !pool.active() {
        return Err(format!(
            "pool {} is not active; press s to start it",
            pool.name()
        ));
    }
    let row = app
        .storage
        .selected_volume()
        .ok_or_else(|| format!("pool {} has no volume selected; n creates one", pool.name()))?;
    match &row.info {
        Ok(info) => Ok((pool, info)),
        Err(e) => Err(format!("{} cannot be used: {e}", row.name)),
    }
}

fn open(app: &mut App, dialog: Dialog) {
    app.overlay = Some(Overlay::Dialog(Box::new(dialog)));
}

/// Runs a storage-pane command; says whether it was one.
pub(in crate::tui) fn command(app: &mut App, command: Command) -> bool {
    match command {
        Command::FocusNext => {
            app.storage.focus = match app.storage.focus {
                StorageFocus::Pools => StorageFocus::Volumes,
                StorageFocus::Volumes => StorageFocus::Pools,
            };
        }
        Command::Up => app.storage.move_selection(-1),
        Command::Down => app.storage.move_selection(1),
        Command::PageUp => app.storage.move_selection(-10),
        Command::PageDown => app.storage.move_selection(10),
        Command::Top => app.storage.move_selection(isize::MIN / 2),
        Command::Bottom => app.storage.move_selection(isize::MAX / 2),
        Command::Back => match app.storage.focus {
            StorageFocus::Volumes => app.storage.focus = StorageFocus::Pools,
            StorageFocus::Pools => app.pane = Pane::List,
        },
        Command::VolNew => new_volume(app),
        // Keys act on the table that has the focus, never on the other one's highlight.
        Command::VolResize
        | Command::VolClone
        | Command::VolConvert
        | Command::VolUpload
        | Command::VolWipe
        | Command::VolDelete
            if app.storage.focus != StorageFocus::Volumes =>
        {
            wrong_table(app, command, StorageFocus::Volumes);
        }
        Command::PoolStart | Command::PoolStop | Command::PoolAutostart
            if app.storage.focus != StorageFocus::Pools =>
        {
            wrong_table(app, command, StorageFocus::Pools);
        }
        Command::VolResize => with_volume(app, |_, v| Dialog::resize_volume(v)),
        Command::VolClone => with_volume(app, Dialog::clone_volume),
        Command::VolConvert => with_volume(app, Dialog::convert_volume),
        Command::VolUpload => with_volume(app, |_, v| Dialog::upload_volume(v)),
        Command::VolWipe => confirm_volume(app, true),
        Command::VolDelete => confirm_volume(app, false),
        Command::PoolStart | Command::PoolStop | Command::PoolAutostart => {
            pool_command(app, command)
        }
        _ => return false,
    }
    true
}

/// A volume key pressed in the pools table, or a pool key in the volumes table: says which
/// table has the keys and how to move to the one the key is for.
fn wrong_table(app: &mut App, command: Command, wanted: StorageFocus) {
    let key = app
        .keymap
        .label(crate::tui::keymap::Context::Storage, command)
        .unwrap_or_else(|| "that key".into());
    let tab = app
        .keymap
        .label(crate::tui::keymap::Context::Storage, Command::FocusNext)
        .unwrap_or_else(|| "Tab".into());
    let message = match wanted {
        StorageFocus::Volumes => format!(
            "{key} acts on a volume, and the pools table has the keys: {tab} moves to the volumes, then pick one and press {key}"
        ),
        StorageFocus::Pools => format!(
            "{key} acts on a pool, and the volumes table has the keys: {tab} moves back to the pools, then press {key}"
        ),
    };
    app.set_status(StatusKind::Error, message);
}

/// Opens the new-volume dialog for the selected pool.
pub(in crate::tui) fn new_volume(app: &mut App) {
    match app.storage.selected_pool() {
        Some(pool) if pool.active() => {
            let dialog = Dialog::create_volume(pool);
            open(app, dialog);
        }
        Some(pool) => {
            let message = format!("pool {} is not active; press s to start it", pool.name());
            app.set_status(StatusKind::Error, message);
        }
        None if !app.storage.loaded => {
            app.set_status(StatusKind::Info, "still reading the storage pools…");
        }
        None => app.set_status(StatusKind::Error, "no storage pool is defined"),
    }
}

fn with_volume(app: &mut App, make: impl FnOnce(&PoolView, &VolumeInfo) -> Dialog) {
    let dialog = match selected_info(app) {
        Ok((pool, volume)) => make(pool, volume),
        Err(message) => {
            app.set_status(StatusKind::Error, message);
            return;
        }
    };
    open(app, dialog);
}

fn confirm_volume(app: &mut App, wipe: bool) {
    let (message, title, task) = match selected_info(app) {
        Err(message) => {
            app.set_status(StatusKind::Error, message);
            return;
        }
        Ok((pool, volume)) => {
            let label = format!("{}/{}", pool.name(), volume.name);
            if let Some(problem) = refusal(volume, wipe) {
                app.set_status(StatusKind::Error, format!("{label}: {problem}"));
                return;
            }
            let (pool, name) = (pool.name().to_string(), volume.name.clone());
            if wipe {
                let mut message = format!(
                    "Wipe {label}?\nEvery byte of its data ({}) is overwritten with zeroes; the volume stays, reading as zeroes.",
                    format_size(volume.allocation)
                );
                if !volume.used_by.is_empty() {
                    message.push_str(&format!(
                        "\nVM(s) {} use it and will see an empty disk.",
                        volume.used_by.join(", ")
                    ));
                }
                (message, "Wipe a volume", Task::WipeVolume { pool, name })
            } else {
                let message = format!(
                    "Delete {label} ({} {}, {} on disk)?\nThe file is removed; this cannot be undone.",
                    volume.format,
                    format_size(volume.capacity),
                    format_size(volume.allocation)
                );
                (
                    message,
                    "Delete a volume",
                    Task::DeleteVolume { pool, name },
                )
            }
        }
    };
    app.overlay = Some(Overlay::Confirm(Confirm {
        title: title.into(),
        message,
        ops: Vec::new(),
        task: Some(task),
        bulk: false,
        remove_host: None,
    }));
}

/// Why the library would refuse to wipe or delete `volume`, said before asking.
fn refusal(volume: &VolumeInfo, wipe: bool) -> Option<String> {
    if let Some(vm) = volume.running.first() {
        return Some(format!("running VM {vm} uses it; shut the VM down first"));
    }
    if !wipe && !volume.used_by.is_empty() {
        return Some(format!(
            "VM(s) {} use it; remove it from their definitions first (e edits a VM)",
            volume.used_by.join(", ")
        ));
    }
    if !wipe && !volume.backing_of.is_empty() {
        let names: Vec<String> = volume
            .backing_of
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        return Some(format!(
            "it is the backing file of {}; delete those first",
            names.join(", ")
        ));
    }
    None
}

fn pool_command(app: &mut App, command: Command) {
    let Some(pool) = app.storage.selected_pool() else {
        app.set_status(StatusKind::Error, "no pool selected");
        return;
    };
    let name = pool.name().to_string();
    let task = match command {
        Command::PoolStart if pool.active() => {
            app.set_status(StatusKind::Info, format!("pool {name} is already active"));
            return;
        }
        Command::PoolStart => Task::StartPool(name),
        Command::PoolStop if !pool.active() => {
            app.set_status(StatusKind::Info, format!("pool {name} is not active"));
            return;
        }
        Command::PoolStop => {
            app.overlay = Some(Overlay::Confirm(Confirm {
                title: "Stop a pool".into(),
                message: format!(
                    "Stop pool {name}?\nIts volumes stay on disk but cannot be used or created until it is started again; VMs using them will not start."
                ),
                ops: Vec::new(),
                task: Some(Task::StopPool(name)),
                bulk: false,
                remove_host: None,
            }));
            return;
        }
        _ => Task::PoolAutostart(name, !pool.info.status.autostart),
    };
    run_task(app, task);
}
