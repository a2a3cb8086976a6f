//! What the keymap's [`Command`]s and the palette's verbs do to the [`App`]: VM lifecycle
//! (with confirmation for destructive and bulk actions), attaching consoles, opening the
//! wizard and forms, sorting, marking, search and copy. Called only from `update`.

use super::action::{Effect, HostOp};
use super::app::{App, Overlay, Pane, SortColumn, StatusKind};
use super::confirm::Confirm;
use super::console::Direction;
use super::hosts::id::HostId;
use super::hosts::state::HostState;
use super::keymap::{Command, Context};
use super::palette::{self, PaletteCommand, Verb};
use super::queue::{after_import, run_ops, run_task};
use super::tasks::{Task, TaskOutcome};
use super::theme::Theme;
use super::ui::layout::Column;
use super::vms::selection::{ensure_selection, list_page, move_selection, open_consoles};
use super::vms::{hotplug, memory};
use super::wizard::Wizard;
use super::{hosts, networks, storage, task_list};
use crate::config::{BootConfig, VmConfig};
use crate::protocol::RunState;

/// Runs a keymap command in the list, details or welcome context (and the few that apply
/// in consoles).
pub(super) fn run(app: &mut App, command: Command) {
    let handled = match app.context() {
        Context::Storage => storage::pane::command(app, command),
        Context::Networks => networks::pane::command(app, command),
        Context::Hosts => hosts::pane::command(app, command),
        _ => false,
    };
    if handled {
        return;
    }
    match command {
        Command::ShowVms => app.pane = Pane::List,
        Command::VcpuAdd => hotplug::change_vcpus(app, 1),
        Command::VcpuRemove => hotplug::change_vcpus(app, -1),
        Command::DiskAdd => hotplug::add_disk(app),
        Command::DiskRemove => hotplug::remove_disk(app),
        Command::Save => memory::save(app),
        Command::MemoryDown => memory::change_memory(app, -1),
        Command::MemoryUp => memory::change_memory(app, 1),
        Command::ShowStorage => storage::pane::show(app),
        Command::ShowNetworks => networks::pane::show(app),
        Command::ShowHosts => hosts::pane::show(app),
        // Pane commands outside their pane (only reachable through rebinding): nothing.
        Command::FocusNext
        | Command::VolNew
        | Command::VolResize
        | Command::VolClone
        | Command::VolConvert
        | Command::VolUpload
        | Command::VolWipe
        | Command::VolDelete
        | Command::PoolStart
        | Command::PoolStop
        | Command::PoolAutostart
        | Command::NetNew
        | Command::NetStart
        | Command::NetStop
        | Command::NetDelete
        | Command::NetAutostart
        | Command::HostAdd
        | Command::HostRemove
        | Command::HostConnect
        | Command::HostDisconnect => {}
        Command::Quit => app.quit = true,
        Command::Help => app.overlay = Some(Overlay::Help { scroll: 0 }),
        Command::Tasks => task_list::open(app),
        Command::Palette => app.overlay = Some(Overlay::Palette(Default::default())),
        Command::Filter => app.list.filtering = true,
        Command::New => {
            let Some(host) = wizard_host(app) else {
                return;
            };
            // A VM whose image is still being copied in has its name already.
            let mut names = app.names_on(&host);
            names.extend(app.after_import.values().map(|op| op.vm().to_string()));
            let mut wizard = Wizard::create(names, &app.storage.snapshot, &app.networks.snapshot);
            wizard.browse_from(&app.cwd);
            wizard.host = host;
            // From here on the wizard's host is the current host: its pools and networks load.
            app.overlay = Some(Overlay::Wizard(Box::new(wizard)));
            storage::pane::request_load(app);
            networks::pane::request_load(app);
        }
        Command::Demo => create_demo(app),
        Command::Attach => attach_targets(app),
        Command::Details => match app.pane {
            Pane::Details => app.pane = Pane::List,
            _ if app.list.selected.is_some() => app.pane = Pane::Details,
            _ => app.set_status(
                StatusKind::Error,
                "no VM selected to show details of; n creates one",
            ),
        },
        Command::Start => lifecycle(app, Verb::Start, app.targets(), true),
        Command::Shutdown => lifecycle(app, Verb::Shutdown, app.targets(), true),
        Command::ForceOff => lifecycle(app, Verb::Destroy, app.targets(), true),
        Command::Reboot => lifecycle(app, Verb::Reboot, app.targets(), true),
        Command::Reset => lifecycle(app, Verb::Reset, app.targets(), true),
        Command::Pause => lifecycle(app, Verb::Suspend, app.targets(), true),
        Command::Delete => lifecycle(app, Verb::Undefine, app.targets(), true),
        Command::Autostart => {
            let mut refused = Vec::new();
            let ops: Vec<HostOp> = app
                .targets()
                .into_iter()
                .filter_map(|name| {
                    let vm = app.entry(&name)?;
                    if let Some(why) = vm.broken_refusal("change its autostart") {
                        refused.push(why);
                        return None;
                    }
                    Some(HostOp::Autostart(name, !vm.autostart()))
                })
                .collect();
            if !app.list.marked.is_empty() && !ops.is_empty() {
                let listed: Vec<String> = ops
                    .iter()
                    .map(|op| match op {
                        HostOp::Autostart(name, true) => format!("{name} on"),
                        other => format!("{} off", other.vm()),
                    })
                    .collect();
                let mut message = format!("Toggle autostart: {}?", listed.join(", "));
                if !refused.is_empty() {
                    message.push_str(&format!("\n(skipped: {})", refused.join("; ")));
                }
                app.overlay = Some(Overlay::Confirm(Confirm {
                    title: format!("Autostart of {} marked VM(s)", ops.len()),
                    message,
                    ops,
                    task: None,
                    bulk: true,
                    remove_host: None,
                }));
                return;
            }
            run_ops(app, ops);
            if !refused.is_empty() {
                app.set_status(StatusKind::Error, refused.join("; "));
            }
        }
        Command::Edit => match app.selected() {
            None => app.set_status(StatusKind::Error, "no VM selected; pick one with ↑/↓ first"),
            Some(vm) => match vm.config() {
                Some(config) => {
                    let mut form = Wizard::edit(config);
                    form.browse_from(&app.cwd);
                    form.host = vm.host.clone();
                    app.overlay = Some(Overlay::Wizard(Box::new(form)));
                }
                None => {
                    let why = vm.broken_refusal("edit it here").unwrap_or_default();
                    app.set_status(StatusKind::Error, why);
                }
            },
        },
        Command::Mark => {
            if let Some(name) = app.list.selected.clone() {
                let host = app.list.selected_host.clone();
                toggle_mark(app, &host, &name);
                move_selection(app, 1);
            }
        }
        Command::MarkAll => {
            if app.list.marked.is_empty() {
                // Marks are per host: all of the selected VM's host.
                let host = app.list.selected_host.clone();
                let visible = app.visible();
                app.list.marked = visible
                    .into_iter()
                    .filter(|&i| app.vms[i].host == host)
                    .map(|i| app.vms[i].name().to_string())
                    .collect();
                app.list.marked_host = host;
            } else {
                app.list.marked.clear();
            }
        }
        Command::Sort => sort_by(app, app.list.sort.next()),
        Command::SortReverse => {
            app.list.reverse = !app.list.reverse;
            ensure_selection(app);
        }
        Command::Up => move_selection(app, -1),
        Command::Down => move_selection(app, 1),
        Command::PageUp => move_selection(app, -list_page(app)),
        Command::PageDown => move_selection(app, list_page(app)),
        Command::Top => move_selection(app, isize::MIN / 2),
        Command::Bottom => move_selection(app, isize::MAX / 2),
        Command::Back => back(app),
        Command::Detach => detach(app),
        Command::OtherConsole => {
            if app.consoles.len() > 1 {
                app.focus = (app.focus + 1) % app.consoles.len();
            }
        }
        // Console-only commands are handled by the console key handlers.
        Command::Scrollback
        | Command::Search
        | Command::NextMatch
        | Command::PrevMatch
        | Command::Copy => {}
    }
}

/// The host a new VM is made on: in the hosts pane the selected one (when connected), else
/// the current host. `None` (with a message) when the selected host is not connected.
fn wizard_host(app: &mut App) -> Option<HostId> {
    if app.pane != Pane::Hosts {
        return Some(app.current_host());
    }
    let Some(host) = app.hosts.get(app.hosts_selected) else {
        return Some(HostId::Local);
    };
    if host.state != HostState::Connected {
        let message = format!(
            "{} is {}; connect it (c) before making a VM there",
            host.entry.name,
            host.state.describe()
        );
        app.set_status(StatusKind::Error, message);
        return None;
    }
    Some(HostId::Remote(host.entry.name.clone()))
}

fn back(app: &mut App) {
    if app.pane == Pane::Details {
        app.pane = Pane::List;
    } else if !app.list.marked.is_empty() {
        app.list.marked.clear();
    } else if !app.list.filter.text().is_empty() {
        app.list.filter.set("");
        ensure_selection(app);
    }
}

/// Toggles the bulk-action mark of `name` on `host`. Marks are per host: marking a VM of
/// another host than the marked ones starts over.
pub(super) fn toggle_mark(app: &mut App, host: &HostId, name: &str) {
    if app.list.marked_host != *host {
        app.list.marked.clear();
        app.list.marked_host = host.clone();
    }
    if !app.list.marked.remove(name) {
        app.list.marked.insert(name.to_string());
    }
}

/// The sort column for a list column, if it sorts.
pub(super) fn sort_column(column: Column) -> Option<SortColumn> {
    Some(match column {
        Column::Name => SortColumn::Name,
        Column::State => SortColumn::State,
        Column::Vcpus => SortColumn::Vcpus,
        Column::Memory => SortColumn::Memory,
        Column::Cpu | Column::Spark => SortColumn::Cpu,
        Column::Used => SortColumn::Used,
        Column::Mark | Column::Host | Column::Ip | Column::Auto => return None,
    })
}

/// Sorts by `column`; choosing the current column again reverses the order.
pub(super) fn sort_by(app: &mut App, column: SortColumn) {
    if app.list.sort == column {
        app.list.reverse = !app.list.reverse;
    } else {
        app.list.sort = column;
        app.list.reverse = false;
    }
    let order = if app.list.reverse {
        "descending"
    } else {
        "ascending"
    };
    app.set_status(
        StatusKind::Info,
        format!("sorted by {} ({order})", column.label()),
    );
    ensure_selection(app);
}

fn create_demo(app: &mut App) {
    // A second Enter while the first demo is being created must not make another.
    if let Some(((_, vm), doing)) = app.busy.iter().next() {
        let message = format!("{vm} is {doing}; wait for it");
        app.set_status(StatusKind::Info, message);
        return;
    }
    let name = (0..)
        .map(|i| {
            if i == 0 {
                "demo".to_string()
            } else {
                format!("demo{i}")
            }
        })
        .find(|n| app.entry(n).is_none())
        .unwrap_or_else(|| "demo".into());
    let config = VmConfig::new(&name, BootConfig::Demo);
    run_ops(
        app,
        vec![HostOp::Create {
            config: Box::new(config),
            start: true,
            attach: true,
            new_volume: None,
            networks: Vec::new(),
            start_networks: Vec::new(),
            image: None,
        }],
    );
}

/// Enter: the selected VM's console, or with VMs marked, the marked ones' (one or two side
/// by side). The same marks give the same answer whatever their states: consoles when every
/// marked VM runs, else a refusal naming the one that does not.
fn attach_targets(app: &mut App) {
    if app.list.marked.is_empty() {
        let names = app.list.selected.iter().cloned().collect();
        attach(app, names);
        return;
    }
    let names = app.targets();
    if names.len() > 2 {
        app.set_status(
            StatusKind::Error,
            format!(
                "{} VMs are marked ({}); Enter opens one or two consoles: unmark some with Space, or clear the marks with Esc",
                names.len(),
                names.join(", ")
            ),
        );
        return;
    }
    let stopped: Vec<&str> = names
        .iter()
        .filter(|n| app.entry(n).is_some_and(|vm| !vm.is_live()))
        .map(String::as_str)
        .collect();
    if let Some(first) = stopped.first() {
        let state = app
            .entry(first)
            .map(|vm| vm.state().label())
            .unwrap_or("gone");
        let doing = app
            .busy_with(first)
            .map(|doing| format!(" ({doing})"))
            .unwrap_or_default();
        app.set_status(
            StatusKind::Error,
            format!(
                "marked VM {first} is {state}{doing}, so it has no console; start it (s), or unmark it (Space) to open the other's"
            ),
        );
        return;
    }
    attach(app, names);
}

/// Attaches the consoles of `names` (one, or two side by side). Only running or paused VMs
/// have a console.
pub(super) fn attach(app: &mut App, names: Vec<String>) {
    if names.is_empty() {
        app.set_status(StatusKind::Error, "no VM selected; pick one with ↑/↓ first");
        return;
    }
    for name in &names {
        match app.entry(name) {
            None => {
                app.set_status(StatusKind::Error, format!("there is no VM named '{name}'"));
                return;
            }
            Some(vm) if !vm.is_live() && app.busy_with(name).is_none() => {
                let start = app
                    .keymap
                    .label(super::keymap::Context::List, Command::Start);
                let hint = start
                    .map(|k| format!("; press {k} to start it"))
                    .unwrap_or_default();
                app.set_status(
                    StatusKind::Error,
                    format!(
                        "{name} is {}, so it has no console{hint}",
                        vm.state().label()
                    ),
                );
                return;
            }
            Some(_) => {}
        }
    }
    open_consoles(app, &names);
    let detach = app
        .keymap
        .label(super::keymap::Context::Console, Command::Detach)
        .unwrap_or_else(|| "the detach key".into());
    app.set_status(
        StatusKind::Info,
        format!(
            "attached to {}; {detach} detaches (the VM keeps running)",
            names.join(" and ")
        ),
    );
}

/// Closes the consoles and returns to the list; the VMs keep running.
pub(super) fn detach(app: &mut App) {
    let names: Vec<String> = app.consoles.iter().map(|c| c.vm.clone()).collect();
    for console in std::mem::take(&mut app.consoles) {
        app.push_effect(Effect::CloseConsole(console.id));
    }
    app.focus = 0;
    app.pane = Pane::List;
    if !names.is_empty() {
        app.set_status(
            StatusKind::Info,
            format!("detached from {}; it keeps running", names.join(" and ")),
        );
    }
}

/// Plans `verb` on `names`: the operations that make sense for each VM's state, and why
/// the others were skipped.
fn plan(app: &App, verb: Verb, names: &[String]) -> (Vec<HostOp>, Vec<String>) {
    let mut ops = Vec::new();
    let mut skipped = Vec::new();
    for name in names {
        let Some(vm) = app.entry(name) else {
            skipped.push(format!("there is no VM named '{name}'"));
            continue;
        };
        if let Some(doing) = app.busy_with(name) {
            skipped.push(format!("{name} is busy {doing}"));
            continue;
        }
        let state = vm.state();
        let live = vm.is_live();
        let n = name.clone();
        let op = match verb {
            Verb::Start if !live && vm.broken().is_some() => {
                Err(vm.broken_refusal("start it").unwrap_or_default())
            }
            Verb::Start if !live => Ok(HostOp::Start(n)),
            Verb::Start => Err(format!("{name} is already {}", state.label())),
            Verb::Shutdown if live => Ok(HostOp::Shutdown(n)),
            Verb::Destroy if live => Ok(HostOp::Destroy(n)),
            Verb::Reboot if live => Ok(HostOp::Reboot(n)),
            Verb::Reset if live => Ok(HostOp::Reset(n)),
            Verb::Suspend if state == RunState::Running => Ok(HostOp::Suspend(n)),
            Verb::Suspend if state == RunState::Paused => Ok(HostOp::Resume(n)),
            Verb::Resume if state == RunState::Paused => Ok(HostOp::Resume(n)),
            Verb::Resume if state == RunState::Running => Err(format!("{name} is not paused")),
            Verb::Undefine if !live => Ok(HostOp::Undefine(n)),
            Verb::Undefine => Err(format!(
                "{name} is {}; stop it before deleting it",
                state.label()
            )),
            _ => Err(format!("{name} is {}", state.label())),
        };
        match op {
            Ok(op) => ops.push(op),
            Err(why) => skipped.push(why),
        }
    }
    (ops, skipped)
}

/// Runs `verb` on `names`, asking first (when `confirm` is set) for force-off, delete,
/// anything on several VMs, and anything on marked VMs: a key pressed at the list while VMs
/// are marked never changes them unasked.
pub(super) fn lifecycle(app: &mut App, verb: Verb, names: Vec<String>, confirm: bool) {
    if names.is_empty() {
        app.set_status(StatusKind::Error, "no VM selected; pick one with ↑/↓ first");
        return;
    }
    let (ops, skipped) = plan(app, verb, &names);
    if ops.is_empty() {
        app.set_status(StatusKind::Error, skipped.join("; "));
        return;
    }
    let destructive = matches!(verb, Verb::Destroy | Verb::Undefine);
    let bulk = confirm && !app.list.marked.is_empty();
    if confirm && (destructive || ops.len() > 1 || bulk) {
        let listed: Vec<&str> = ops.iter().map(HostOp::vm).collect();
        let (what, warning) = match verb {
            Verb::Destroy => (
                "Force off",
                "\nLike pulling the plug: whatever the guest has not saved is lost.",
            ),
            Verb::Undefine => (
                "Delete the definition of",
                "\nDisk images are kept; only the definition goes.",
            ),
            Verb::Start => ("Start", ""),
            Verb::Shutdown => ("Shut down", ""),
            Verb::Reboot => ("Reboot", ""),
            Verb::Reset => ("Hard-reset", ""),
            Verb::Suspend | Verb::Resume => ("Pause / resume", ""),
        };
        let mut message = format!("{what} {}?{warning}", listed.join(", "));
        if !skipped.is_empty() {
            message.push_str(&format!("\n(skipped: {})", skipped.join("; ")));
        }
        let title = if bulk {
            format!(
                "{} {} of {} marked VM(s)",
                verb_title(verb),
                ops.len(),
                names.len()
            )
        } else {
            format!("{} {} VM(s)", verb_title(verb), ops.len())
        };
        app.overlay = Some(Overlay::Confirm(Confirm {
            title,
            message,
            ops,
            task: None,
            bulk,
            remove_host: None,
        }));
        return;
    }
    run_ops(app, ops);
    if !skipped.is_empty() {
        app.set_status(StatusKind::Error, skipped.join("; "));
    }
}

fn verb_title(verb: Verb) -> &'static str {
    match verb {
        Verb::Start => "Start",
        Verb::Shutdown => "Shut down",
        Verb::Destroy => "Force off",
        Verb::Reboot => "Reboot",
        Verb::Reset => "Reset",
        Verb::Suspend | Verb::Resume => "Pause/resume",
        Verb::Undefine => "Delete",
    }
}

/// A task ended: say how it went (or, cancelled, what it left as it was), reload what it
/// changed, and go on with a creation that waited for it.
pub(super) fn task_done(app: &mut App, id: super::tasks::TaskId, outcome: TaskOutcome) {
    let Some(running) = app.tasks.remove(&id) else {
        return;
    };
    task_list::on_task_ended(app);
    let worked = matches!(outcome, TaskOutcome::Done(_));
    match outcome {
        TaskOutcome::Done(message) => app.set_status(StatusKind::Ok, message),
        TaskOutcome::Failed(message) => app.set_status(StatusKind::Error, message),
        TaskOutcome::Cancelled(message) => app.set_status(StatusKind::Info, message),
    }
    // A new volume or network is selected, so the next key acts on it.
    match &running.task {
        Task::CreateVolume { pool, name, .. }
        | Task::CloneVolume { pool, name, .. }
        | Task::ConvertVolume { pool, name, .. }
            if worked =>
        {
            app.storage.pool = Some(pool.clone());
            app.storage.volume = Some(name.clone());
        }
        Task::DefineNetwork(config) if worked => {
            app.networks.selected = Some(config.name.clone());
        }
        _ => {}
    }
    match running.task.touches() {
        super::tasks::Touches::Storage => storage::pane::request_load(app),
        super::tasks::Touches::Networks => networks::pane::request_load(app),
    }
    // A wizard's image is in its pool: the VM is made now, as without the copy.
    after_import(app, id, worked);
}

/// Runs a palette line.
pub(super) fn palette(app: &mut App, line: &str) {
    let selected: Vec<String> = app.list.selected.iter().cloned().collect();
    let or_selected = |names: Vec<String>| {
        if names.is_empty() {
            selected.clone()
        } else {
            names
        }
    };
    match palette::parse(line) {
        PaletteCommand::Lifecycle(verb, names) => lifecycle(app, verb, or_selected(names), false),
        PaletteCommand::Autostart(name, on) => {
            let names = or_selected(name.into_iter().collect());
            let ops = names
                .into_iter()
                .filter(|n| app.entry(n).is_some())
                .map(|n| HostOp::Autostart(n, on))
                .collect::<Vec<_>>();
            if ops.is_empty() {
                app.set_status(StatusKind::Error, "no such VM; name one: autostart web1");
            }
            run_ops(app, ops);
        }
        PaletteCommand::Console(names) => attach(app, or_selected(names)),
        PaletteCommand::Create => run(app, Command::New),
        PaletteCommand::Edit(name) => {
            if let Some(name) = name {
                if app.entry(&name).is_none() {
                    app.set_status(StatusKind::Error, format!("there is no VM named '{name}'"));
                    return;
                }
                app.list.selected_host = app.current_host();
                app.list.selected = Some(name);
            }
            run(app, Command::Edit);
        }
        PaletteCommand::Theme(name) => match Theme::load(&name, app.theme_dir.as_deref()) {
            Ok(theme) => {
                app.theme = theme;
                app.set_status(StatusKind::Ok, format!("theme {name}"));
            }
            Err(e) => app.set_status(StatusKind::Error, e.to_string()),
        },
        PaletteCommand::Filter(text) => {
            app.list.filter.set(&text);
            app.pane = Pane::List;
            ensure_selection(app);
        }
        PaletteCommand::List => {
            detach(app);
            app.pane = Pane::List;
        }
        PaletteCommand::Storage(pool) | PaletteCommand::VolCreate(pool)
            if pool.as_ref().is_some_and(|p| {
                app.storage.loaded && !app.storage.snapshot.pools.iter().any(|x| x.name() == p)
            }) =>
        {
            let pool = pool.unwrap_or_default();
            app.set_status(
                StatusKind::Error,
                format!("there is no storage pool named '{pool}'; pool-list shows them"),
            );
        }
        PaletteCommand::Storage(pool) => {
            detach(app);
            storage::pane::show(app);
            if pool.is_some() {
                app.storage.pool = pool;
                app.storage.volume = None;
            }
        }
        PaletteCommand::VolCreate(pool) => {
            detach(app);
            storage::pane::show(app);
            if pool.is_some() {
                app.storage.pool = pool;
                app.storage.volume = None;
            }
            if app.storage.loaded {
                storage::pane::new_volume(app);
            } else {
                app.storage.open_new_volume = true;
            }
        }
        PaletteCommand::Networks => {
            detach(app);
            networks::pane::show(app);
        }
        PaletteCommand::Hosts => {
            detach(app);
            hosts::pane::show(app);
        }
        PaletteCommand::NetDefine => {
            detach(app);
            networks::pane::show(app);
            networks::pane::new_network(app);
        }
        PaletteCommand::NetStart(name) => {
            run_task(app, Task::StartNetwork(name));
        }
        PaletteCommand::NetStop(name) => {
            app.overlay = Some(Overlay::Confirm(Confirm {
                title: "Stop a network".into(),
                message: format!(
                    "Stop network {name}?\nIts bridge, NAT rules and DHCP server go away; VMs on it will not start until it is started again."
                ),
                ops: Vec::new(),
                task: Some(Task::StopNetwork(name)),
                bulk: false,
                remove_host: None,
            }));
        }
        PaletteCommand::Help => run(app, Command::Help),
        PaletteCommand::Quit => app.quit = true,
        PaletteCommand::Save { vm, path } => memory::save_to(app, vm, path),
        PaletteCommand::Restore(path) => memory::restore(app, path),
        PaletteCommand::ManagedSaveRemove(vm) => memory::discard(app, vm),
        PaletteCommand::SetMemory { vm, bytes, flags } => {
            memory::setmem(app, vm, bytes, flags.live, flags.config);
        }
        PaletteCommand::MemoryStats(vm) => memory::show_stats(app, vm),
        PaletteCommand::SetVcpus { vm, count, flags } => {
            let name = vm.or_else(|| app.list.selected.clone()).unwrap_or_default();
            let Some(entry) = app.entry(&name) else {
                app.set_status(StatusKind::Error, format!("there is no VM named '{name}'"));
                return;
            };
            if let Some(why) = entry.broken_refusal("change its vCPUs") {
                app.set_status(StatusKind::Error, why);
                return;
            }
            let scope = palette_scope(flags, entry.is_live());
            let config_vcpus = entry.config().map_or(1, |c| c.vcpus);
            let from = if scope.live {
                entry.vcpus_now().unwrap_or(config_vcpus)
            } else {
                config_vcpus
            };
            run_ops(
                app,
                vec![HostOp::SetVcpus {
                    vm: name,
                    from,
                    count,
                    scope,
                }],
            );
        }
        PaletteCommand::AttachDisk { vm, disk, flags } => {
            let Some(entry) = app.entry(&vm) else {
                app.set_status(StatusKind::Error, format!("there is no VM named '{vm}'"));
                return;
            };
            let scope = palette_scope(flags, entry.is_live());
            run_ops(
                app,
                vec![HostOp::AttachDisk {
                    vm,
                    disk,
                    new_volume: None,
                    scope,
                }],
            );
        }
        PaletteCommand::DetachDisk { vm, target, flags } => {
            let Some(entry) = app.entry(&vm) else {
                app.set_status(StatusKind::Error, format!("there is no VM named '{vm}'"));
                return;
            };
            let scope = palette_scope(flags, entry.is_live());
            run_ops(
                app,
                vec![HostOp::DetachDisk {
                    vm,
                    target,
                    scope,
                    force: false,
                }],
            );
        }
        PaletteCommand::Unsupported(verb) => app.set_status(
            StatusKind::Error,
            format!("'{verb}' is not supported yet in vmux; nothing was changed"),
        ),
        PaletteCommand::Invalid(message) => app.set_status(StatusKind::Error, message),
    }
}

/// Where a palette change applies: as flagged, else (as in the CLI) the running VM when it
/// runs and the definition when it does not.
fn palette_scope(flags: palette::ScopeFlags, live: bool) -> crate::client::ChangeScope {
    match (flags.live, flags.config) {
        (false, false) if live => crate::client::ChangeScope::LIVE,
        (false, false) => crate::client::ChangeScope::CONFIG,
        (live, config) => crate::client::ChangeScope { live, config },
    }
}

/// Finds the next match of the focused console's search.
pub(super) fn find(app: &mut App, direction: Direction) {
    let Some(console) = app.focused_console_mut() else {
        return;
    };
    let Some(query) = console.search.as_ref().map(|s| s.input.text().to_string()) else {
        return;
    };
    let hit = console.find(&query, direction);
    if let Some(search) = console.search.as_mut().filter(|_| hit.is_some()) {
        search.line = hit;
    }
    match hit {
        Some(line) => app.set_status(
            StatusKind::Info,
            format!(
                "'{query}' found on line {}; n older, N newer, Esc live",
                line + 1
            ),
        ),
        None => {
            let side = match direction {
                Direction::Older => "above",
                Direction::Newer => "below",
            };
            app.set_status(
                StatusKind::Info,
                format!("no more matches of '{query}' {side}"),
            );
        }
    }
}

/// Copies the focused console's selection, or its visible screen, to the clipboard.
pub(super) fn copy(app: &mut App) {
    let Some(console) = app.focused_console_mut() else {
        return;
    };
    let text = console
        .selected_text()
        .unwrap_or_else(|| console.visible_text());
    console.selection = None;
    if text.is_empty() {
        app.set_status(StatusKind::Info, "nothing to copy");
        return;
    }
    let count = text.chars().count();
    app.push_effect(Effect::Clipboard(text));
    app.set_status(
        StatusKind::Ok,
        format!("copied {count} characters to the clipboard (OSC 52; the terminal must allow it)"),
    );
}
