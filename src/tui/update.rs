//! `update`: the one place the TUI's state changes. Each [`Action`] is applied to the
//! [`App`]; work for other threads is queued as [`Effect`]s; `dirty` is set only when
//! something visible changed, so an idle TUI sends nothing over the wire.
//!
//! Keys go to the overlay first (help, palette, confirmation, wizard), then to the pane's
//! keymap context. VM commands and the palette live in `commands.rs`.

use super::action::{Action, Effect, HostOp};
use super::app::{App, Overlay, Pane, StatusKind, VmEntry};
use super::commands;
use super::console;
use super::dialogs::DialogOutcome;
use super::hosts::id::HostId;
use super::keymap::{Command, Context};
use super::palette;
use super::queue;
use super::ui::layout;
use super::vms::hotplug;
use super::vms::selection::{
    console_panes, ensure_selection, move_selection, relayout_consoles, scroll_selection_into_view,
};
use super::wizard::Outcome;
use super::{hosts, networks, storage, task_list};
use crate::client::{BrokenVm, VmStatus};
use crate::protocol::RunState;
use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Rect;

/// Lines the mouse wheel scrolls a console by.
const WHEEL_LINES: isize = 3;

/// Applies one action to the app.
pub fn update(app: &mut App, action: Action) {
    match action {
        Action::Key(key) if key.kind != KeyEventKind::Release => on_key(app, key),
        Action::Key(_) => {}
        Action::Mouse(mouse) => on_mouse(app, mouse),
        Action::Paste(text) => on_paste(app, &text),
        Action::Resize { width, height } => {
            app.width = width;
            app.height = height;
            relayout_consoles(app);
            scroll_selection_into_view(app);
            app.dirty = true;
        }
        Action::Tick => {
            app.ticks += 1;
            app.now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(app.now, |d| d.as_secs());
            // The details of a VM whose guest is asked to eject a disk count the seconds.
            let counting = app.pane == Pane::Details
                && app
                    .selected()
                    .and_then(|vm| vm.info.as_ref())
                    .is_some_and(|info| info.disks.iter().any(|d| d.removing));
            if counting {
                app.dirty = true;
            }
            if app.expire_status() {
                app.dirty = true;
            }
            if app.loaded {
                storage::pane::on_tick(app);
                networks::pane::on_tick(app);
            }
            hotplug::on_tick(app);
            // Running tasks show their elapsed time.
            if !app.tasks.is_empty() {
                app.dirty = true;
            }
        }
        Action::StorageLoaded(result) => {
            app.storage_host = app.reply_host();
            storage::pane::on_loaded(app, result);
        }
        Action::NetworksLoaded(result) => {
            app.networks_host = app.reply_host();
            networks::pane::on_loaded(app, result);
        }
        Action::TaskProgress { id, progress } => {
            if let Some(task) = app.tasks.get_mut(&id) {
                task.progress = Some(progress);
                app.dirty = true;
            }
        }
        Action::TaskDone { id, outcome } => commands::task_done(app, id, outcome),
        Action::Listed(listed) => on_listed(app, listed),
        Action::Stats { vm, stats } => {
            let host = app.reply_host();
            if let Some(entry) = app
                .vms
                .iter_mut()
                .find(|e| e.name() == vm && e.host == host)
            {
                entry.history.record(&stats);
                entry.stats = Some(stats);
                // Consoles show no stats: no redraw (and no bytes on a slow link) for them.
                if app.pane != Pane::Console {
                    app.dirty = true;
                }
            }
        }
        Action::Info { vm, info } => {
            hotplug::on_info(app, &vm, &info);
            let host = app.reply_host();
            if let Some(entry) = app
                .vms
                .iter_mut()
                .find(|e| e.name() == vm && e.host == host)
            {
                entry.info = Some(info);
                app.dirty = true;
            }
        }
        Action::OnHost { host, action } => {
            let previous = app.scope_host.replace(host);
            update(app, *action);
            app.scope_host = previous;
        }
        Action::HostState { name, state } => hosts::pane::on_state(app, &name, state),
        Action::HostsSaved(result) => hosts::pane::on_saved(app, result),
        Action::HostMemory(memory) => {
            if app.host_memory != Some(memory) {
                app.host_memory = Some(memory);
                app.dirty = true;
            }
        }
        Action::OpDone { op, result } => on_op_done(app, op, result),
        Action::ConsoleOpened(id) => {
            if let Some(console) = app.console_mut(id) {
                console.link = console::Link::Live;
                app.dirty = true;
            }
        }
        Action::ConsoleOutput { id, bytes } => {
            if let Some(console) = app.console_mut(id) {
                console.feed(&bytes);
                app.dirty = true;
            }
        }
        Action::ConsoleClosed { id, reason } => {
            if let Some(console) = app.console_mut(id) {
                console.link = console::Link::Closed(reason);
                app.dirty = true;
            }
        }
        Action::DirListed { dir, result } => {
            if let Some(Overlay::Wizard(wizard)) = &mut app.overlay {
                wizard.listed(&dir, result);
                app.dirty = true;
            }
        }
    }
}

fn on_listed(app: &mut App, listed: Vec<Result<VmStatus, BrokenVm>>) {
    let host = app.reply_host();
    let first = !app.loaded && host == HostId::Local;
    let (mut old, others): (Vec<VmEntry>, Vec<VmEntry>) = std::mem::take(&mut app.vms)
        .into_iter()
        .partition(|e| e.host == host);
    let changed =
        first || listed.len() != old.len() || listed.iter().zip(&old).any(|(s, e)| *s != e.status);
    let fresh: Vec<VmEntry> = listed
        .into_iter()
        .map(|status| {
            let mut fresh = VmEntry::new(status);
            fresh.host = host.clone();
            match old.iter().position(|e| e.name() == fresh.name()) {
                Some(i) => {
                    let mut entry = old.swap_remove(i);
                    // Another vmd (or none) means another boot: its charts start afresh.
                    if entry.pid() != fresh.pid() {
                        entry.history.clear();
                        entry.stats = None;
                        entry.info = None;
                    }
                    entry.status = fresh.status;
                    entry
                }
                None => fresh,
            }
        })
        .collect();
    // The local host's VMs first, then each remote host's.
    app.vms = others;
    let at = app.vms.iter().take_while(|e| e.host < host).count();
    app.vms.splice(at..at, fresh);
    if host == HostId::Local {
        app.loaded = true;
    }
    if app.list.marked_host == host {
        let names = app.names_on(&host);
        app.list.marked.retain(|n| names.contains(n));
    }
    ensure_selection(app);
    if changed {
        app.dirty = true;
    }
    // Guest addresses for the list come from the networks' DHCP leases.
    if first {
        networks::pane::request_load(app);
    }
}

fn on_op_done(app: &mut App, op: HostOp, result: Result<String, String>) {
    app.busy.remove(&(app.reply_host(), op.vm().to_string()));
    match result {
        Ok(message) => {
            app.set_status(StatusKind::Ok, message);
            hotplug::watch(app, &op);
            if let HostOp::Create {
                config,
                start,
                attach,
                ..
            } = &op
            {
                // Show the new VM at once rather than at the next poll, which corrects it. A
                // poll that ran between the define and the end of the start listed it as shut
                // off; the start's success is newer, and the console must open.
                let host = app.reply_host();
                match app
                    .vms
                    .iter_mut()
                    .find(|e| e.name() == config.name && e.host == host)
                {
                    Some(entry) => {
                        if *start
                            && !entry.is_live()
                            && let Ok(status) = &mut entry.status
                        {
                            status.state = RunState::Running;
                            status.reason = None;
                        }
                    }
                    None => {
                        let mut entry = VmEntry::new(Ok(VmStatus {
                            config: (**config).clone(),
                            state: if *start {
                                RunState::Running
                            } else {
                                RunState::ShutOff
                            },
                            reason: None,
                            pid: None,
                            vcpus: None,
                        }));
                        entry.host = host.clone();
                        app.vms.push(entry);
                    }
                }
                app.list.selected = Some(config.name.clone());
                app.list.selected_host = host;
                ensure_selection(app);
                if *start && *attach {
                    commands::attach(app, vec![config.name.clone()]);
                }
            }
        }
        Err(message) => app.set_status(StatusKind::Error, message),
    }
    if let HostOp::Create {
        new_volume,
        networks,
        image,
        ..
    } = &op
    {
        // A failed creation deleted the image volume it was given.
        if new_volume.is_some() || image.as_ref().is_some_and(|s| s.import.is_some()) {
            storage::pane::request_load(app);
        }
        if !networks.is_empty() {
            networks::pane::request_load(app);
        }
    }
    app.push_effect(Effect::Refresh);
}

fn on_key(app: &mut App, key: KeyEvent) {
    if app.overlay.is_some() {
        on_overlay_key(app, key);
        app.dirty = true;
        return;
    }
    if app.list.filtering && app.pane == Pane::List {
        on_filter_key(app, &key);
        app.dirty = true;
        return;
    }
    let context = app.context();
    match context {
        Context::Console => on_console_key(app, key),
        Context::Scroll => on_scroll_key(app, key),
        _ => {
            if let Some(command) = app.keymap.lookup(context, &key) {
                commands::run(app, command);
            }
        }
    }
    app.dirty = true;
}

fn on_filter_key(app: &mut App, key: &KeyEvent) {
    match key.code {
        KeyCode::Esc => {
            app.list.filter.set("");
            app.list.filtering = false;
        }
        KeyCode::Enter => app.list.filtering = false,
        KeyCode::Up => move_selection(app, -1),
        KeyCode::Down => move_selection(app, 1),
        _ => {
            app.list.filter.handle(key);
        }
    }
    app.list.offset = 0;
    ensure_selection(app);
}

fn on_overlay_key(app: &mut App, key: KeyEvent) {
    let Some(overlay) = app.overlay.take() else {
        return;
    };
    app.overlay = match overlay {
        Overlay::Help { scroll } => match key.code {
            KeyCode::Down | KeyCode::Char('j') => Some(Overlay::Help {
                scroll: scroll.saturating_add(1),
            }),
            KeyCode::Up | KeyCode::Char('k') => Some(Overlay::Help {
                scroll: scroll.saturating_sub(1),
            }),
            KeyCode::PageDown => Some(Overlay::Help {
                scroll: scroll.saturating_add(10),
            }),
            KeyCode::PageUp => Some(Overlay::Help {
                scroll: scroll.saturating_sub(10),
            }),
            _ => None,
        },
        Overlay::Palette(mut input) => match key.code {
            KeyCode::Esc => None,
            KeyCode::Enter => {
                commands::palette(app, input.text());
                // The command may have opened another overlay (wizard, help).
                return;
            }
            KeyCode::Tab => {
                let names = app.names();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                if let Some(done) = palette::complete(input.text(), &refs) {
                    input.set(&done);
                }
                Some(Overlay::Palette(input))
            }
            KeyCode::Char(c) if palette::redundant_space(input.text(), input.cursor(), c) => {
                Some(Overlay::Palette(input))
            }
            _ => {
                input.handle(&key);
                Some(Overlay::Palette(input))
            }
        },
        // A change to marked VMs takes `y`: Enter after stray typing must not confirm it.
        Overlay::Confirm(confirm) if confirm.bulk && key.code == KeyCode::Enter => {
            Some(Overlay::Confirm(confirm))
        }
        Overlay::Confirm(confirm) => match key.code {
            KeyCode::Char('y' | 'Y') | KeyCode::Enter => {
                queue::run_ops(app, confirm.ops);
                if let Some(task) = confirm.task {
                    queue::run_task(app, task);
                }
                if let Some(name) = confirm.remove_host {
                    hosts::pane::remove(app, &name);
                }
                None
            }
            KeyCode::Char('n' | 'N' | 'q') | KeyCode::Esc => {
                app.set_status(StatusKind::Info, "cancelled; nothing was changed");
                None
            }
            _ => Some(Overlay::Confirm(confirm)),
        },
        Overlay::Wizard(mut wizard) => match wizard.handle_key(&key) {
            // The wizard's VM is made on its host, whatever the list selects meanwhile.
            outcome @ (Outcome::Create { .. } | Outcome::Save(_)) => {
                let previous = app.scope_host.replace(wizard.host.clone());
                let keep = on_wizard_done(app, outcome);
                app.scope_host = previous;
                keep
            }
            Outcome::None => Some(Overlay::Wizard(wizard)),
            Outcome::Cancel => None,
            Outcome::ListDir(dir) => {
                app.push_effect(Effect::ListDir(dir));
                Some(Overlay::Wizard(wizard))
            }
        },
        Overlay::Dialog(mut dialog) => match dialog.handle_key(&key) {
            DialogOutcome::None => Some(Overlay::Dialog(dialog)),
            DialogOutcome::Cancel => None,
            DialogOutcome::Run(task) => {
                queue::run_task(app, task);
                None
            }
            DialogOutcome::Host(op) => {
                let new_volume = matches!(
                    &op,
                    HostOp::AttachDisk {
                        new_volume: Some(_),
                        ..
                    }
                );
                queue::run_ops(app, vec![op]);
                if new_volume {
                    storage::pane::request_load(app);
                }
                None
            }
            DialogOutcome::Confirm(confirm) => Some(Overlay::Confirm(confirm)),
            DialogOutcome::AddHost(entry) => {
                hosts::pane::add(app, entry);
                None
            }
        },
        Overlay::Tasks { selected } => task_list::on_key(app, selected, &key),
    };
}

/// Makes or saves the wizard's VM (on the current host: the caller scopes it to the wizard's).
fn on_wizard_done(app: &mut App, outcome: Outcome) -> Option<Overlay> {
    match outcome {
        Outcome::Create {
            config,
            start,
            attach,
            new_volume,
            networks,
            start_networks,
            image,
        } => {
            queue::create(
                app,
                HostOp::Create {
                    config,
                    start,
                    attach,
                    new_volume,
                    networks,
                    start_networks,
                    image,
                },
            );
            None
        }
        Outcome::Save(config) => {
            queue::run_ops(app, vec![HostOp::Update(config)]);
            None
        }
        _ => None,
    }
}

fn on_console_key(app: &mut App, key: KeyEvent) {
    if let Some(command) = app.keymap.lookup(Context::Console, &key) {
        match command {
            Command::Scrollback => {
                let page = console_page(app);
                if let Some(console) = app.focused_console_mut() {
                    console.scroll_by(page);
                }
            }
            other => commands::run(app, other),
        }
        return;
    }
    let Some(console) = app.focused_console_mut() else {
        return;
    };
    if console.link != console::Link::Live {
        // Say why the key went nowhere.
        let (link, vm) = (console.link.clone(), console.vm.clone());
        let detach = app
            .keymap
            .label(Context::Console, Command::Detach)
            .unwrap_or_else(|| "the detach key".into());
        let message = match &link {
            console::Link::Closed(reason) => {
                format!("the console of {vm} is closed ({reason}); {detach} returns to the list")
            }
            _ => format!("still connecting to the console of {vm}; keys are sent once it is open"),
        };
        app.set_status(StatusKind::Error, message);
        return;
    }
    console.selection = None;
    let app_cursor = console.screen().application_cursor();
    let id = console.id;
    if let Some(bytes) = console::key_bytes(&key, app_cursor) {
        app.push_effect(Effect::ConsoleInput { id, bytes });
    }
}

fn console_page(app: &App) -> isize {
    app.focused_console()
        .map_or(1, |c| c.size().0.saturating_sub(1).max(1) as isize)
}

fn on_scroll_key(app: &mut App, key: KeyEvent) {
    let editing = app
        .focused_console()
        .and_then(|c| c.search.as_ref())
        .is_some_and(|s| s.editing);
    if editing {
        on_search_key(app, &key);
        return;
    }
    let Some(command) = app.keymap.lookup(Context::Scroll, &key) else {
        // Anything unbound is swallowed: in scrollback no key reaches the guest unasked.
        return;
    };
    let page = console_page(app);
    let Some(console) = app.focused_console_mut() else {
        return;
    };
    match command {
        Command::Up => console.scroll_by(1),
        Command::Down => console.scroll_by(-1),
        Command::PageUp => console.scroll_by(page),
        Command::PageDown => console.scroll_by(-page),
        Command::Top => console.scroll_to_top(),
        Command::Bottom | Command::Back => console.go_live(),
        Command::Search => {
            let search = console.search.get_or_insert_with(Default::default);
            search.editing = true;
            search.input.set("");
            search.line = None;
        }
        Command::NextMatch | Command::PrevMatch => {
            let direction = if command == Command::NextMatch {
                console::Direction::Older
            } else {
                console::Direction::Newer
            };
            commands::find(app, direction);
        }
        Command::Copy => commands::copy(app),
        other => commands::run(app, other),
    }
}

fn on_search_key(app: &mut App, key: &KeyEvent) {
    let Some(console) = app.focused_console_mut() else {
        return;
    };
    let Some(search) = console.search.as_mut() else {
        return;
    };
    match key.code {
        KeyCode::Esc => {
            console.search = None;
        }
        KeyCode::Enter => {
            search.editing = false;
            commands::find(app, console::Direction::Older);
        }
        _ => {
            search.input.handle(key);
        }
    }
}

fn on_paste(app: &mut App, text: &str) {
    match &mut app.overlay {
        Some(Overlay::Wizard(wizard)) => wizard.paste(text),
        Some(Overlay::Dialog(dialog)) => dialog.paste(text),
        Some(Overlay::Palette(input)) => {
            input.insert_str(text);
        }
        Some(_) => return,
        None if app.list.filtering => {
            app.list.filter.insert_str(text);
            ensure_selection(app);
        }
        None if app.pane == Pane::Console => {
            let Some(console) = app.focused_console_mut() else {
                return;
            };
            if let Some(search) = console.search.as_mut().filter(|s| s.editing) {
                search.input.insert_str(text);
            } else if console.link == console::Link::Live && !console.scrolling {
                let bytes = console::paste_bytes(text, console.screen().bracketed_paste());
                let id = console.id;
                app.push_effect(Effect::ConsoleInput { id, bytes });
            }
        }
        None => return,
    }
    app.dirty = true;
}

fn on_mouse(app: &mut App, mouse: MouseEvent) {
    if app.overlay.is_some() || layout::too_small(Rect::new(0, 0, app.width, app.height)) {
        return;
    }
    let click = mouse.kind == MouseEventKind::Down(MouseButton::Left);
    if click && mouse.row == 0 && app.pane != Pane::Console {
        match layout::tab_at(mouse.column) {
            Some(0) => app.pane = Pane::List,
            Some(1) => storage::pane::show(app),
            Some(2) => networks::pane::show(app),
            Some(3) if app.show_hosts() || app.pane == Pane::Hosts => hosts::pane::show(app),
            _ => return,
        }
        app.dirty = true;
        return;
    }
    match app.pane {
        Pane::Console => on_console_mouse(app, mouse),
        Pane::List if !app.welcome() => on_list_mouse(app, mouse),
        Pane::Storage => on_storage_mouse(app, mouse),
        Pane::Networks => on_networks_mouse(app, mouse),
        Pane::List | Pane::Details | Pane::Hosts => {}
    }
}

/// The row of a list drawn in `rows` (scrolled to keep `selected` visible) under the mouse.
fn clicked_row(mouse: &MouseEvent, rows: Rect, selected: usize) -> Option<usize> {
    rows.contains(ratatui::layout::Position::new(mouse.column, mouse.row))
        .then(|| {
            layout::scroll_offset(selected, usize::from(rows.height))
                + usize::from(mouse.row - rows.y)
        })
}

fn on_storage_mouse(app: &mut App, mouse: MouseEvent) {
    use super::storage::state::StorageFocus;
    let body = layout::main(Rect::new(0, 0, app.width, app.height)).body;
    let state = &mut app.storage;
    match mouse.kind {
        MouseEventKind::ScrollDown => state.move_selection(1),
        MouseEventKind::ScrollUp => state.move_selection(-1),
        MouseEventKind::Down(MouseButton::Left) => {
            let extra = state.snapshot.broken.len() + usize::from(state.error.is_some());
            let [pools, volumes] = layout::storage(body, state.snapshot.pools.len() + extra);
            let pool_rows = layout::table_rows(pools, 0);
            let volume_rows = layout::table_rows(volumes, layout::volume_details_height(volumes));
            let pool_row = state.pool_row().unwrap_or(0);
            let volume_row = state.volume_row().unwrap_or(0);
            if let Some(row) = clicked_row(&mouse, pool_rows, pool_row) {
                state.focus = StorageFocus::Pools;
                if let Some(pool) = state.snapshot.pools.get(row) {
                    state.pool = Some(pool.name().to_string());
                    state.volume = None;
                    state.fix_selection();
                }
            } else if let Some(row) = clicked_row(&mouse, volume_rows, volume_row) {
                state.focus = StorageFocus::Volumes;
                let name = state
                    .selected_pool()
                    .and_then(|p| p.volumes.get(row))
                    .map(|v| v.name.clone());
                if name.is_some() {
                    state.volume = name;
                }
            } else {
                return;
            }
        }
        _ => return,
    }
    app.dirty = true;
}

fn on_networks_mouse(app: &mut App, mouse: MouseEvent) {
    let body = layout::main(Rect::new(0, 0, app.width, app.height)).body;
    let state = &mut app.networks;
    match mouse.kind {
        MouseEventKind::ScrollDown => state.move_selection(1),
        MouseEventKind::ScrollUp => state.move_selection(-1),
        MouseEventKind::Down(MouseButton::Left) => {
            let extra = state.snapshot.broken.len() + usize::from(state.error.is_some());
            let [list, _] = layout::networks(body, state.snapshot.networks.len() + extra);
            let selected = state.selected_row().unwrap_or(0);
            let Some(row) = clicked_row(&mouse, layout::table_rows(list, 0), selected) else {
                return;
            };
            if let Some(network) = state.snapshot.networks.get(row) {
                state.selected = Some(network.config.name.clone());
            }
        }
        _ => return,
    }
    app.dirty = true;
}

fn on_list_mouse(app: &mut App, mouse: MouseEvent) {
    let list = layout::list(layout::main(Rect::new(0, 0, app.width, app.height)).body);
    match mouse.kind {
        MouseEventKind::ScrollDown => move_selection(app, 1),
        MouseEventKind::ScrollUp => move_selection(app, -1),
        MouseEventKind::Down(MouseButton::Left) => {
            let inside =
                |r: Rect| r.contains(ratatui::layout::Position::new(mouse.column, mouse.row));
            if inside(list.header) {
                let column = layout::column_at(
                    list.header.width,
                    app.show_hosts(),
                    mouse.column - list.header.x,
                );
                if let Some(column) = column.and_then(commands::sort_column) {
                    commands::sort_by(app, column);
                }
            } else if inside(list.rows) {
                let row = app.list.offset + usize::from(mouse.row - list.rows.y);
                let visible = app.visible();
                if let Some(&i) = visible.get(row) {
                    let name = app.vms[i].name().to_string();
                    if mouse.modifiers.contains(KeyModifiers::CONTROL) {
                        let host = app.vms[i].host.clone();
                        commands::toggle_mark(app, &host, &name);
                    }
                    app.select_index(i);
                    app.dirty = true;
                }
            }
        }
        _ => {}
    }
}

fn on_console_mouse(app: &mut App, mouse: MouseEvent) {
    let panes = console_panes(app);
    let position = ratatui::layout::Position::new(mouse.column, mouse.row);
    let hit = panes.iter().position(|p| p.screen.contains(position));
    match mouse.kind {
        MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
            if let Some(i) = hit {
                app.focus = i;
            }
            let Some(console) = app.focused_console_mut() else {
                return;
            };
            if mouse.kind == MouseEventKind::ScrollUp {
                console.scroll_by(WHEEL_LINES);
            } else {
                console.scroll_by(-WHEEL_LINES);
                let searching = console.search.as_ref().is_some_and(|s| s.editing);
                if console.offset() == 0 && !searching {
                    console.go_live();
                }
            }
            app.dirty = true;
        }
        MouseEventKind::Down(MouseButton::Left) => {
            let Some(i) = hit else {
                return;
            };
            app.focus = i;
            let cell = (
                mouse.row - panes[i].screen.y,
                mouse.column - panes[i].screen.x,
            );
            if let Some(console) = app.consoles.get_mut(i) {
                console.selection = Some(console::Selection {
                    anchor: cell,
                    head: cell,
                });
            }
            app.dirty = true;
        }
        MouseEventKind::Drag(MouseButton::Left) => {
            let Some(pane) = panes.get(app.focus) else {
                return;
            };
            let screen = pane.screen;
            let row = mouse
                .row
                .clamp(screen.y, screen.bottom().saturating_sub(1).max(screen.y))
                - screen.y;
            let col = mouse
                .column
                .clamp(screen.x, screen.right().saturating_sub(1).max(screen.x))
                - screen.x;
            if let Some(selection) = app.focused_console_mut().and_then(|c| c.selection.as_mut()) {
                selection.head = (row, col);
            }
            app.dirty = true;
        }
        MouseEventKind::Up(MouseButton::Left) => {
            let selection = app.focused_console().and_then(|c| c.selection);
            match selection {
                Some(s) if s.anchor != s.head => commands::copy(app),
                Some(_) => {
                    if let Some(console) = app.focused_console_mut() {
                        console.selection = None;
                    }
                }
                None => {}
            }
            app.dirty = true;
        }
        _ => {}
    }
}
