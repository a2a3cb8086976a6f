//! The hosts pane's behaviour: the remote hosts with their states; add (a form), remove
//! (asks first), connect and disconnect; every change saved to the settings file. Also what
//! a host's state change does to the VM list (a host that is not connected has its VMs taken
//! off and one row with its state instead). Called only from `update`, `commands` and start-up.

use super::config::HostEntry;
use super::id::HostId;
use super::state::{HostState, RemoteHost};
use crate::tui::action::Effect;
use crate::tui::app::{App, Overlay, Pane, StatusKind};
use crate::tui::confirm::Confirm;
use crate::tui::dialogs::Dialog;
use crate::tui::keymap::Command;
use crate::tui::vms::selection::ensure_selection;

/// Shows the hosts pane.
pub(in crate::tui) fn show(app: &mut App) {
    app.pane = Pane::Hosts;
    fix_selection(app);
    app.mark_dirty();
}

/// Puts the hosts of the settings file into the app (disconnected) and connects those marked
/// autoconnect; at start-up.
pub(in crate::tui) fn load(app: &mut App, entries: Vec<HostEntry>) {
    app.hosts = entries
        .into_iter()
        .map(|entry| RemoteHost {
            entry,
            state: HostState::Disconnected,
        })
        .collect();
    let autoconnect: Vec<usize> = (0..app.hosts.len())
        .filter(|&i| app.hosts[i].entry.autoconnect)
        .collect();
    for i in autoconnect {
        connect(app, i);
    }
}

/// Runs a keymap command in the hosts pane; says whether it was one of the pane's.
pub(in crate::tui) fn command(app: &mut App, command: Command) -> bool {
    let count = app.hosts.len();
    match command {
        Command::Up => app.hosts_selected = app.hosts_selected.saturating_sub(1),
        Command::Down => app.hosts_selected = (app.hosts_selected + 1).min(count.saturating_sub(1)),
        Command::Top => app.hosts_selected = 0,
        Command::Bottom => app.hosts_selected = count.saturating_sub(1),
        Command::Back => app.pane = Pane::List,
        Command::HostAdd | Command::HostRemove if app.hosts_locked.is_some() => {
            let why = app.hosts_locked.clone().unwrap_or_default();
            app.set_status(
                StatusKind::Error,
                format!("hosts cannot be changed until the settings file is fixed: {why}"),
            );
        }
        Command::HostAdd => {
            let taken = app.hosts.iter().map(|h| h.entry.name.clone()).collect();
            app.overlay = Some(Overlay::Dialog(Box::new(Dialog::add_host(taken))));
        }
        Command::HostConnect => match selected(app) {
            Some(i) if app.hosts[i].state == HostState::Connected => app.set_status(
                StatusKind::Info,
                format!("{} is connected already", app.hosts[i].entry.name),
            ),
            Some(i) => connect(app, i),
            None => no_host(app),
        },
        Command::HostDisconnect => match selected(app) {
            Some(i) if app.hosts[i].state == HostState::Disconnected => app.set_status(
                StatusKind::Info,
                format!("{} is not connected", app.hosts[i].entry.name),
            ),
            Some(i) => {
                let name = app.hosts[i].entry.name.clone();
                disconnect(app, &name);
                app.set_status(StatusKind::Ok, format!("{name} disconnected"));
            }
            None => no_host(app),
        },
        Command::HostRemove => match selected(app) {
            Some(i) => {
                let name = app.hosts[i].entry.name.clone();
                app.overlay = Some(Overlay::Confirm(Confirm {
                    title: "Remove a host".into(),
                    message: format!(
                        "Remove host {name} ({}) from vmux.toml?\nIts VMs keep running there; only this list forgets it.",
                        app.hosts[i].entry.uri
                    ),
                    ops: Vec::new(),
                    task: None,
                    bulk: false,
                    remove_host: Some(name),
                }));
            }
            None => no_host(app),
        },
        _ => return false,
    }
    app.mark_dirty();
    true
}

fn selected(app: &App) -> Option<usize> {
    (app.hosts_selected < app.hosts.len()).then_some(app.hosts_selected)
}

fn no_host(app: &mut App) {
    app.set_status(
        StatusKind::Error,
        "no remote host here yet; a adds one (ssh://[user@]host[:port])",
    );
}

fn fix_selection(app: &mut App) {
    app.hosts_selected = app.hosts_selected.min(app.hosts.len().saturating_sub(1));
}

/// Starts connecting host number `index` (a worker thread does it).
fn connect(app: &mut App, index: usize) {
    let host = &mut app.hosts[index];
    host.state = HostState::Connecting;
    let effect = Effect::Connect {
        name: host.entry.name.clone(),
        uri: host.entry.uri.clone(),
    };
    app.push_effect(effect);
    app.mark_dirty();
}

/// Closes host `name`'s link; its VMs leave the list.
fn disconnect(app: &mut App, name: &str) {
    app.push_effect(Effect::Disconnect(name.to_string()));
    on_state(app, name, HostState::Disconnected);
}

/// A host added with the form: saved, and connected when it autoconnects.
pub(in crate::tui) fn add(app: &mut App, entry: HostEntry) {
    let autoconnect = entry.autoconnect;
    app.hosts.push(RemoteHost {
        entry,
        state: HostState::Disconnected,
    });
    app.hosts_selected = app.hosts.len() - 1;
    save(app);
    if autoconnect {
        connect(app, app.hosts.len() - 1);
    }
}

/// Removes host `name` (after the user said yes): disconnected, forgotten, saved.
pub(in crate::tui) fn remove(app: &mut App, name: &str) {
    disconnect(app, name);
    app.hosts.retain(|h| h.entry.name != name);
    fix_selection(app);
    save(app);
}

fn save(app: &mut App) {
    let entries = app.hosts.iter().map(|h| h.entry.clone()).collect();
    app.push_effect(Effect::SaveHosts(entries));
}

/// A host's worker reported a new state.
pub(in crate::tui) fn on_state(app: &mut App, name: &str, state: HostState) {
    let Some(host) = app.hosts.iter_mut().find(|h| h.entry.name == name) else {
        return;
    };
    if host.state == state {
        return;
    }
    let message = match &state {
        HostState::Unreachable(why) => Some((StatusKind::Error, format!("{name}: {why}"))),
        HostState::Connected if host.state != HostState::Connecting => {
            Some((StatusKind::Ok, format!("{name} is connected again")))
        }
        HostState::Reconnecting { reason, .. } if host.state == HostState::Connected => Some((
            StatusKind::Error,
            format!("lost the connection to {name} ({reason}); reconnecting"),
        )),
        _ => None,
    };
    host.state = state.clone();
    if state != HostState::Connected {
        let id = HostId::Remote(name.to_string());
        app.vms.retain(|vm| vm.host != id);
        if app.list.marked_host == id {
            app.list.marked.clear();
        }
        ensure_selection(app);
    }
    if let Some((kind, text)) = message {
        app.set_status(kind, text);
    }
    app.mark_dirty();
}

/// The settings file was written (or not).
pub(in crate::tui) fn on_saved(app: &mut App, result: Result<String, String>) {
    match result {
        Ok(message) => app.set_status(StatusKind::Ok, message),
        Err(message) => app.set_status(StatusKind::Error, message),
    }
}
