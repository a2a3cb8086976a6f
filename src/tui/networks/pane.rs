//! The networks pane's behaviour: when to reload its state (`state`, the last
//! [`NetworkSnapshot`] and the selected network; often while the pane is shown, now and then
//! otherwise: the VM list shows guest addresses from the DHCP leases), and what the pane's
//! keys do (define, start, stop, delete, autostart). Called only from `update` and `commands`.

use crate::client::NetworkSnapshot;
use crate::tui::action::Effect;
use crate::tui::app::{App, Overlay, Pane, StatusKind};
use crate::tui::confirm::Confirm;
use crate::tui::dialogs::Dialog;
use crate::tui::keymap::Command;
use crate::tui::queue::run_task;
use crate::tui::tasks::Task;

/// Seconds between reloads while the pane or the wizard is shown.
const RELOAD_TICKS: u64 = 2;
/// Seconds between reloads otherwise (guest addresses in the VM list).
const BACKGROUND_TICKS: u64 = 10;

/// Asks for a fresh snapshot (or for one more after the read in flight).
pub(in crate::tui) fn request_load(app: &mut App) {
    let state = &mut app.networks;
    if state.loading {
        state.stale = true;
        return;
    }
    state.loading = true;
    state.last_load = Some(app.ticks);
    app.push_effect(Effect::LoadNetworks);
}

/// Reloads often while the pane or the wizard is shown, and now and then otherwise.
pub(in crate::tui) fn on_tick(app: &mut App) {
    let period = if app.pane == Pane::Networks || matches!(app.overlay, Some(Overlay::Wizard(_))) {
        RELOAD_TICKS
    } else {
        BACKGROUND_TICKS
    };
    let due = app
        .networks
        .last_load
        .is_none_or(|t| app.ticks.saturating_sub(t) >= period);
    if due && !app.networks.loading {
        request_load(app);
    }
}

/// A snapshot (or an error) arrived.
pub(in crate::tui) fn on_loaded(app: &mut App, result: Result<NetworkSnapshot, String>) {
    let state = &mut app.networks;
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
    if let Some(Overlay::Wizard(wizard)) = &mut app.overlay {
        wizard.set_networks(&app.networks.snapshot);
    }
    if std::mem::take(&mut app.networks.stale) {
        request_load(app);
    }
    // Consoles show no network data: no redraw (and no bytes on a slow link) for them; the
    // switch back to another pane redraws anyway.
    if changed && app.pane != Pane::Console {
        app.mark_dirty();
    }
}

/// Switches to the pane (loading it now).
pub(in crate::tui) fn show(app: &mut App) {
    app.pane = Pane::Networks;
    if !app.networks.loading {
        request_load(app);
    }
}

/// Opens the new-network dialog.
pub(in crate::tui) fn new_network(app: &mut App) {
    let defined = app
        .networks
        .snapshot
        .networks
        .iter()
        .map(|n| n.config.clone())
        .collect();
    let routes = app.networks.snapshot.routes.clone();
    app.overlay = Some(Overlay::Dialog(Box::new(Dialog::define_network(
        defined, routes,
    ))));
}

/// Runs a networks-pane command; says whether it was one.
pub(in crate::tui) fn command(app: &mut App, command: Command) -> bool {
    match command {
        Command::Up => app.networks.move_selection(-1),
        Command::Down => app.networks.move_selection(1),
        Command::PageUp => app.networks.move_selection(-10),
        Command::PageDown => app.networks.move_selection(10),
        Command::Top => app.networks.move_selection(isize::MIN / 2),
        Command::Bottom => app.networks.move_selection(isize::MAX / 2),
        Command::Back => show_vms(app),
        Command::NetNew => new_network(app),
        Command::NetStart | Command::NetStop | Command::NetDelete | Command::NetAutostart => {
            selected_command(app, command);
        }
        _ => return false,
    }
    true
}

fn show_vms(app: &mut App) {
    app.pane = Pane::List;
}

fn selected_command(app: &mut App, command: Command) {
    let Some(network) = app.networks.selected_network() else {
        let message = if app.networks.loaded {
            "no network selected; n defines one"
        } else {
            "still reading the networks…"
        };
        app.set_status(StatusKind::Error, message);
        return;
    };
    let name = network.config.name.clone();
    let active = network.active.is_some();
    let running: Vec<String> = {
        let mut vms: Vec<String> = network
            .attached
            .iter()
            .filter(|a| a.tap.is_some())
            .map(|a| a.vm.clone())
            .collect();
        vms.dedup();
        vms
    };
    let users: Vec<String> = {
        let mut vms: Vec<String> = network.attached.iter().map(|a| a.vm.clone()).collect();
        vms.dedup();
        vms
    };
    let autostart = network.config.autostart;
    let task = match command {
        Command::NetStart if active => {
            app.set_status(
                StatusKind::Info,
                format!("network {name} is already active"),
            );
            return;
        }
        Command::NetStart => Task::StartNetwork(name),
        Command::NetStop if !active => {
            app.set_status(StatusKind::Info, format!("network {name} is not active"));
            return;
        }
        Command::NetStop if !running.is_empty() => {
            app.set_status(
                StatusKind::Error,
                format!(
                    "network {name} is in use by running VM(s) {}; shut them down first",
                    running.join(", ")
                ),
            );
            return;
        }
        Command::NetStop => {
            confirm(
                app,
                "Stop a network",
                format!(
                    "Stop network {name}?\nIts bridge, NAT rules and DHCP server go away; VMs on it will not start until it is started again."
                ),
                Task::StopNetwork(name),
            );
            return;
        }
        Command::NetDelete if active => {
            app.set_status(
                StatusKind::Error,
                format!("network {name} is active; stop it with d first"),
            );
            return;
        }
        Command::NetDelete => {
            let mut message = format!("Delete the definition of network {name}?");
            if !users.is_empty() {
                message.push_str(&format!(
                    "\nVM(s) {} have a NIC on it and will not start until it is defined again.",
                    users.join(", ")
                ));
            }
            confirm(
                app,
                "Delete a network",
                message,
                Task::UndefineNetwork(name),
            );
            return;
        }
        _ => Task::NetworkAutostart(name, !autostart),
    };
    run_task(app, task);
}

fn confirm(app: &mut App, title: &str, message: String, task: Task) {
    app.overlay = Some(Overlay::Confirm(Confirm {
        title: title.into(),
        message,
        ops: Vec::new(),
        task: Some(task),
        bulk: false,
        remove_host: None,
    }));
}
