//! The networks pane's state and behaviour: the last [`NetworkSnapshot`], the selected
//! network, when to reload (often while the pane is shown, now and then otherwise: the VM list
//! shows guest addresses from the DHCP leases), and what the pane's keys do (define, start,
//! stop, delete, autostart). Called only from `update` and `commands`.

use super::action::Effect;
use super::app::{App, Confirm, Overlay, Pane, StatusKind};
use super::backends::NetworkSnapshot;
use super::commands::run_task;
use super::dialogs::Dialog;
use super::keymap::Command;
use super::tasks::Task;
use crate::network::NetworkInfo;
use std::net::Ipv4Addr;

/// Seconds between reloads while the pane or the wizard is shown.
const RELOAD_TICKS: u64 = 2;
/// Seconds between reloads otherwise (guest addresses in the VM list).
const BACKGROUND_TICKS: u64 = 10;

/// The networks pane's state. Owned by the UI thread.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NetworkState {
    /// The last networks read.
    pub snapshot: NetworkSnapshot,
    /// A snapshot has arrived.
    pub loaded: bool,
    /// Why the last read failed.
    pub error: Option<String>,
    /// A read is in flight.
    pub loading: bool,
    /// Read again when the one in flight arrives.
    pub stale: bool,
    /// Tick of the last read asked for.
    pub last_load: Option<u64>,
    /// The selected network's name.
    pub selected: Option<String>,
}

impl NetworkState {
    /// The selected network.
    pub fn selected_network(&self) -> Option<&NetworkInfo> {
        let name = self.selected.as_deref()?;
        self.snapshot
            .networks
            .iter()
            .find(|n| n.config.name == name)
    }

    /// Position of the selected network.
    pub fn selected_row(&self) -> Option<usize> {
        let name = self.selected.as_deref()?;
        self.snapshot
            .networks
            .iter()
            .position(|n| n.config.name == name)
    }

    /// Guest addresses of VM `vm` known from DHCP leases, in network order.
    pub fn addresses_of(&self, vm: &str) -> Vec<Ipv4Addr> {
        self.snapshot
            .networks
            .iter()
            .flat_map(|n| n.attached.iter())
            .filter(|nic| nic.vm == vm)
            .filter_map(|nic| nic.ip)
            .collect()
    }

    fn fix_selection(&mut self) {
        if self.selected_network().is_none() {
            self.selected = self
                .snapshot
                .networks
                .first()
                .map(|n| n.config.name.clone());
        }
    }

    /// Moves the selection by `delta` rows (clamped).
    pub fn move_selection(&mut self, delta: isize) {
        let networks = &self.snapshot.networks;
        if networks.is_empty() {
            return;
        }
        let row = self.selected_row().unwrap_or(0);
        let target = row.saturating_add_signed(delta).min(networks.len() - 1);
        self.selected = Some(networks[target].config.name.clone());
    }
}

/// Asks for a fresh snapshot (or for one more after the read in flight).
pub(super) fn request_load(app: &mut App) {
    let state = &mut app.networks;
    if state.loading {
        state.stale = true;
        return;
    }
    state.loading = true;
    state.last_load = Some(app.ticks);
    app.effects.push(Effect::LoadNetworks);
}

/// Reloads often while the pane or the wizard is shown, and now and then otherwise.
pub(super) fn on_tick(app: &mut App) {
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
pub(super) fn on_loaded(app: &mut App, result: Result<NetworkSnapshot, String>) {
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
pub(super) fn show(app: &mut App) {
    app.pane = Pane::Networks;
    if !app.networks.loading {
        request_load(app);
    }
}

/// Opens the new-network dialog.
pub(super) fn new_network(app: &mut App) {
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
pub(super) fn command(app: &mut App, command: Command) -> bool {
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
    }));
}
