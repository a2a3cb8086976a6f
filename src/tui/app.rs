//! The TUI's whole state, [`App`], and the read-only questions `draw` and `update` ask of it
//! (which VMs are listed in what order, which is selected, which keys apply now).
//!
//! `App` is owned by the UI thread. It changes only in `update` (src/tui/update.rs); `draw`
//! (src/tui/ui/) reads it. It holds no host handle: work for other threads leaves through
//! [`App::take_effects`].

use super::action::{Effect, HostMemory, HostOp, Routed};
use super::confirm::Confirm;
use super::console::{ConsoleId, ConsoleSession};
use super::dialogs::Dialog;
use super::history::History;
use super::hosts::id::HostId;
use super::hosts::state::{HostState, RemoteHost};
use super::input::LineInput;
use super::keymap::{Context, Keymap};
use super::networks::state::NetworkState;
use super::storage::state::StorageState;
use super::tasks::{Task, TaskId, TaskProgress};
use super::theme::Theme;
use super::wizard::Wizard;
use crate::client::{BrokenVm, VmState, VmStatus};
use crate::config::VmConfig;
use crate::protocol::{RunState, VmInfo, VmStats};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Status messages of these kinds disappear after this many ticks (seconds).
const INFO_TICKS: u64 = 6;
/// Errors stay longer: they may need reading twice.
const ERROR_TICKS: u64 = 30;

/// One defined VM as the TUI knows it. A VM whose definition file is broken is an entry too
/// (its live state comes from vmd), so a running VM never disappears from the list because of
/// a typo in its file.
#[derive(Debug, Clone, PartialEq)]
pub struct VmEntry {
    /// The host it is defined on.
    pub host: HostId,
    /// Definition and state from the last poll, or the broken definition with the live state.
    pub status: Result<VmStatus, BrokenVm>,
    /// Live facts (running VMs; cleared when it stops).
    pub info: Option<VmInfo>,
    /// The latest stats sample (running VMs; cleared when it stops).
    pub stats: Option<VmStats>,
    /// The last minute of samples.
    pub history: History,
}

impl VmEntry {
    /// A VM seen for the first time.
    pub fn new(status: Result<VmStatus, BrokenVm>) -> VmEntry {
        VmEntry {
            host: HostId::Local,
            status,
            info: None,
            stats: None,
            history: History::default(),
        }
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        match &self.status {
            Ok(status) => &status.config.name,
            Err(broken) => &broken.name,
        }
    }

    /// Its definition, when the file is usable.
    pub fn config(&self) -> Option<&VmConfig> {
        self.status.as_ref().ok().map(|s| &s.config)
    }

    /// Why its definition file cannot be used, when it cannot.
    pub fn broken(&self) -> Option<&BrokenVm> {
        self.status.as_ref().err()
    }

    /// Its live state (known with or without a usable definition).
    pub fn live(&self) -> VmState {
        match &self.status {
            Ok(status) => status.live(),
            Err(broken) => broken.live.clone(),
        }
    }

    /// Its state.
    pub fn state(&self) -> RunState {
        match &self.status {
            Ok(status) => status.state,
            Err(broken) => broken.live.state,
        }
    }

    /// vmd's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        match &self.status {
            Ok(status) => status.pid,
            Err(broken) => broken.live.pid,
        }
    }

    /// For `crashed`: why.
    pub fn reason(&self) -> Option<&str> {
        match &self.status {
            Ok(status) => status.reason.as_deref(),
            Err(broken) => broken.live.reason.as_deref(),
        }
    }

    /// Whether vmd runs for it (running or paused).
    pub fn is_live(&self) -> bool {
        matches!(self.state(), RunState::Running | RunState::Paused)
    }

    /// vCPUs present now (live VMs), else the boot count (`None` for a stopped VM whose
    /// definition is broken).
    pub fn vcpus_now(&self) -> Option<u32> {
        let live = match &self.status {
            Ok(status) => status.vcpus,
            Err(broken) => broken.live.vcpus,
        };
        live.or(self.info.as_ref().map(|i| i.vcpus))
            .or(self.config().map(|c| c.vcpus))
    }

    /// Most vCPUs: vmd's figure while it runs, else the definition's.
    pub fn max_vcpus(&self) -> Option<u32> {
        self.info
            .as_ref()
            .filter(|_| self.is_live())
            .map(|i| i.max_vcpus)
            .or(self.config().map(|c| c.max_vcpus))
    }

    /// Guest memory, bytes: vmd's figure while it runs, else the definition's.
    pub fn memory(&self) -> Option<u64> {
        self.info
            .as_ref()
            .filter(|_| self.is_live())
            .map(|i| i.memory_bytes)
            .or(self.config().map(|c| c.memory))
    }

    /// Whether it is marked to start with `vmux autostart-all` (false when unknown).
    pub fn autostart(&self) -> bool {
        self.config().is_some_and(|c| c.autostart)
    }

    /// Why `doing` (something that needs the definition, like "edit it") cannot be done now,
    /// naming the fix; `None` when the definition is usable.
    pub fn broken_refusal(&self, doing: &str) -> Option<String> {
        self.broken().map(|broken| {
            format!(
                "cannot {doing}: the definition of {} is broken ({}); repair it with `{}` in a shell",
                self.name(),
                broken.error.reason,
                broken.fix()
            )
        })
    }

    /// Latest CPU use in percent of one host CPU (live VMs).
    pub fn cpu_percent(&self) -> Option<f64> {
        self.is_live()
            .then(|| self.stats.as_ref().map(|s| s.cpu_percent))
            .flatten()
    }

    /// vmd's resident memory (live VMs), bytes.
    pub fn used_bytes(&self) -> Option<u64> {
        self.is_live()
            .then(|| self.stats.as_ref().map(|s| s.rss_bytes))
            .flatten()
    }
}

/// The main pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    /// The VM list (home; the welcome screen when nothing is defined).
    List,
    /// Details and charts of the selected VM.
    Details,
    /// One or two attached consoles.
    Console,
    /// Storage pools and their volumes.
    Storage,
    /// Guest networks.
    Networks,
    /// Remote hosts.
    Hosts,
}

/// List columns that can be sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    /// By name.
    Name,
    /// Running first, then paused, crashed, shut off.
    State,
    /// By vCPUs now.
    Vcpus,
    /// By defined memory.
    Memory,
    /// By CPU use.
    Cpu,
    /// By resident memory.
    Used,
}

impl SortColumn {
    /// Every column, in the order `o` cycles through them.
    pub const ALL: [SortColumn; 6] = [
        SortColumn::Name,
        SortColumn::State,
        SortColumn::Vcpus,
        SortColumn::Memory,
        SortColumn::Cpu,
        SortColumn::Used,
    ];

    /// The next column for `o`.
    pub fn next(self) -> SortColumn {
        let i = SortColumn::ALL.iter().position(|c| *c == self).unwrap_or(0);
        SortColumn::ALL[(i + 1) % SortColumn::ALL.len()]
    }

    /// Word used in messages.
    pub fn label(self) -> &'static str {
        match self {
            SortColumn::Name => "name",
            SortColumn::State => "state",
            SortColumn::Vcpus => "vCPUs",
            SortColumn::Memory => "memory",
            SortColumn::Cpu => "CPU",
            SortColumn::Used => "memory used",
        }
    }
}

/// The list's view state.
#[derive(Debug, Clone, PartialEq)]
pub struct ListState {
    /// Selected VM by name (stable across re-sorting and polling), on `selected_host`.
    pub selected: Option<String>,
    /// The host of the selected VM.
    pub selected_host: HostId,
    /// First row shown.
    pub offset: usize,
    /// Sort column.
    pub sort: SortColumn,
    /// Descending instead of ascending.
    pub reverse: bool,
    /// Filter text (case-insensitive substring of name or state).
    pub filter: LineInput,
    /// The filter is being typed.
    pub filtering: bool,
    /// VMs marked for a bulk action, all on `marked_host` (marks are per host: marking a
    /// VM of another host starts over).
    pub marked: BTreeSet<String>,
    /// The host of the marked VMs.
    pub marked_host: HostId,
}

/// Something drawn over the panes that takes the keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    /// Key help for the pane underneath; `scroll` in lines.
    Help {
        /// Lines scrolled.
        scroll: u16,
    },
    /// The `:` palette.
    Palette(LineInput),
    /// A yes/no question.
    Confirm(Confirm),
    /// The creation wizard or the edit form.
    Wizard(Box<Wizard>),
    /// A storage or network dialog.
    Dialog(Box<Dialog>),
    /// The running tasks, with their progress; the selected one can be cancelled.
    Tasks {
        /// Index of the selected task (oldest first).
        selected: usize,
    },
}

/// A storage or network task in flight.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningTask {
    /// What it does.
    pub task: Task,
    /// Tick when it started.
    pub started: u64,
    /// How far it has got, for the long tasks (from their progress handle).
    pub progress: Option<TaskProgress>,
    /// The user asked to cancel it; it is cleaning up.
    pub cancelling: bool,
    /// The host it runs against.
    pub host: HostId,
}

impl RunningTask {
    /// What it does in a few words ("cloning a volume"), naming its host when remote
    /// ("host2: cloning a volume").
    pub fn words(&self) -> String {
        match &self.host {
            HostId::Local => self.task.progress_words(),
            HostId::Remote(name) => format!("{name}: {}", self.task.progress_words()),
        }
    }
}

/// Kinds of status-line message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    /// Neutral information.
    Info,
    /// Something worked.
    Ok,
    /// Something is under way.
    Progress,
    /// Something failed.
    Error,
}

/// The status line's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Kind (colour and lifetime).
    pub kind: StatusKind,
    /// The text.
    pub text: String,
    /// Tick when it was set.
    pub since: u64,
}

/// The TUI's state. See the module docs for who may change it.
pub struct App {
    /// Styles.
    pub theme: Theme,
    /// Key bindings.
    pub keymap: Keymap,
    /// Where user themes live (`<config>/themes`), for `:theme`.
    pub theme_dir: Option<PathBuf>,
    /// The directory vmux was started in: where the wizard's file browser opens.
    pub cwd: PathBuf,
    /// Every defined VM (broken definitions included), in the host's order.
    pub vms: Vec<VmEntry>,
    /// The first poll has answered (until then nothing is known, not "no VMs").
    pub loaded: bool,
    /// The main pane.
    pub pane: Pane,
    /// The list's view state.
    pub list: ListState,
    /// The overlay, if any.
    pub overlay: Option<Overlay>,
    /// Attached consoles (one, or two side by side).
    pub consoles: Vec<ConsoleSession>,
    /// Index of the focused console.
    pub focus: usize,
    /// The status-line message.
    pub status: Option<Status>,
    /// VMs (host, name) with an operation in flight, and its progress words.
    pub busy: BTreeMap<(HostId, String), &'static str>,
    /// The storage pane.
    pub storage: StorageState,
    /// The networks pane (and guest addresses for the VM list).
    pub networks: NetworkState,
    /// Storage and network tasks in flight, oldest first.
    pub tasks: BTreeMap<TaskId, RunningTask>,
    /// VM creations waiting for the task that copies their disk image into a pool (by that
    /// task's id): queued when it is done, dropped when it fails or is cancelled.
    pub after_import: BTreeMap<TaskId, HostOp>,
    /// Live changes waiting for the guest to act on them.
    pub watches: Vec<super::watch::Watch>,
    /// Host memory, when known.
    pub host_memory: Option<HostMemory>,
    /// The remote hosts of the settings file, in its order, with their states (empty: only
    /// the local host, and no HOST column).
    pub hosts: Vec<RemoteHost>,
    /// Selected row of the hosts pane.
    pub hosts_selected: usize,
    /// Why the hosts cannot be changed now: the settings file could not be read, and
    /// rewriting it from what the TUI knows would lose what it says.
    pub hosts_locked: Option<String>,
    /// The host the storage pane's snapshot came from.
    pub storage_host: HostId,
    /// The host the networks pane's snapshot came from.
    pub networks_host: HostId,
    /// Terminal width in cells.
    pub width: u16,
    /// Terminal height in cells.
    pub height: u16,
    /// Seconds since start (one per [`super::action::Action::Tick`]).
    pub ticks: u64,
    /// The host's clock at the last tick, Unix seconds (for "being removed for 23 s").
    pub now: u64,
    pub(super) next_console: ConsoleId,
    pub(super) next_task: TaskId,
    pub(super) effects: Vec<Routed>,
    /// While a reply from a host is applied ([`super::action::Action::OnHost`]): that host.
    pub(super) scope_host: Option<HostId>,
    pub(super) dirty: bool,
    pub(super) quit: bool,
}

impl App {
    /// A fresh app for an 80×24 terminal; the runtime sends the real size first.
    pub fn new(theme: Theme, keymap: Keymap) -> App {
        App {
            theme,
            keymap,
            theme_dir: None,
            cwd: PathBuf::from("/"),
            vms: Vec::new(),
            loaded: false,
            pane: Pane::List,
            list: ListState {
                selected: None,
                offset: 0,
                sort: SortColumn::Name,
                reverse: false,
                filter: LineInput::default(),
                filtering: false,
                marked: BTreeSet::new(),
                selected_host: HostId::Local,
                marked_host: HostId::Local,
            },
            overlay: None,
            consoles: Vec::new(),
            focus: 0,
            status: None,
            busy: BTreeMap::new(),
            storage: StorageState::default(),
            networks: NetworkState::default(),
            tasks: BTreeMap::new(),
            after_import: BTreeMap::new(),
            watches: Vec::new(),
            host_memory: None,
            hosts: Vec::new(),
            hosts_selected: 0,
            hosts_locked: None,
            storage_host: HostId::Local,
            networks_host: HostId::Local,
            width: 80,
            height: 24,
            ticks: 0,
            now: 0,
            next_console: 1,
            next_task: 1,
            effects: Vec::new(),
            scope_host: None,
            dirty: true,
            quit: false,
        }
    }

    /// Work queued for other threads since the last call (without the hosts they are for;
    /// see [`App::take_routed`]).
    pub fn take_effects(&mut self) -> Vec<Effect> {
        self.take_routed().into_iter().map(|r| r.effect).collect()
    }

    /// Work queued for other threads since the last call, each with its host.
    pub fn take_routed(&mut self) -> Vec<Routed> {
        std::mem::take(&mut self.effects)
    }

    /// Queues `effect` for `host`.
    pub fn push_effect_to(&mut self, host: HostId, effect: Effect) {
        self.effects.push(Routed { host, effect });
    }

    /// Queues `effect` for the [current host](App::current_host).
    pub fn push_effect(&mut self, effect: Effect) {
        let host = self.current_host();
        self.effects.push(Routed { host, effect });
    }

    /// The host actions apply to now: while a host's reply is applied, that host; while the
    /// wizard is open, its host; else the host of the marked VMs, else of the selected VM
    /// (the local host when none is).
    pub fn current_host(&self) -> HostId {
        if let Some(host) = &self.scope_host {
            return host.clone();
        }
        if let Some(Overlay::Wizard(wizard)) = &self.overlay {
            return wizard.host.clone();
        }
        if self.list.marked.is_empty() {
            self.list.selected_host.clone()
        } else {
            self.list.marked_host.clone()
        }
    }

    /// The host a reply being applied came from (unwrapped replies are the local host's).
    pub fn reply_host(&self) -> HostId {
        self.scope_host.clone().unwrap_or_default()
    }

    /// ` on host2` for a remote host, empty for the local one (pane and dialog titles).
    pub fn on_host(host: &HostId) -> String {
        match host {
            HostId::Local => String::new(),
            HostId::Remote(name) => format!(" on {name}"),
        }
    }

    /// Whether the list has a HOST column: a remote host is configured.
    pub fn show_hosts(&self) -> bool {
        !self.hosts.is_empty()
    }

    /// The remote host named `name`.
    pub fn remote(&self, name: &str) -> Option<&RemoteHost> {
        self.hosts.iter().find(|h| h.entry.name == name)
    }

    /// Remote hosts that are not connected: the list shows a row with their state instead
    /// of their VMs.
    pub fn unavailable_hosts(&self) -> Vec<&RemoteHost> {
        self.hosts
            .iter()
            .filter(|h| h.state != HostState::Connected)
            .collect()
    }

    /// Whether something visible changed since the last call (then the screen is redrawn).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::replace(&mut self.dirty, false)
    }

    /// Whether the user asked to quit.
    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// Whether the welcome screen replaces the empty list.
    pub fn welcome(&self) -> bool {
        self.loaded && self.vms.is_empty() && self.hosts.is_empty() && self.pane == Pane::List
    }

    /// The keymap context of what has the keys now (overlays aside).
    pub fn context(&self) -> Context {
        match self.pane {
            Pane::Console => match self.focused_console() {
                Some(c) if c.scrolling => Context::Scroll,
                _ => Context::Console,
            },
            Pane::Details => Context::Details,
            Pane::Storage => Context::Storage,
            Pane::Networks => Context::Networks,
            Pane::Hosts => Context::Hosts,
            Pane::List if self.welcome() => Context::Welcome,
            Pane::List => Context::List,
        }
    }

    /// The focused console.
    pub fn focused_console(&self) -> Option<&ConsoleSession> {
        self.consoles.get(self.focus)
    }

    /// The focused console, mutably.
    pub fn focused_console_mut(&mut self) -> Option<&mut ConsoleSession> {
        self.consoles.get_mut(self.focus)
    }

    /// The console with id `id`.
    pub fn console_mut(&mut self, id: ConsoleId) -> Option<&mut ConsoleSession> {
        self.consoles.iter_mut().find(|c| c.id == id)
    }

    /// Indexes into `vms` of the listed VMs: filtered, then sorted.
    pub fn visible(&self) -> Vec<usize> {
        let filter = self.list.filter.text().to_lowercase();
        let mut rows: Vec<usize> = (0..self.vms.len())
            .filter(|&i| {
                let vm = &self.vms[i];
                filter.is_empty()
                    || vm.name().to_lowercase().contains(&filter)
                    || vm.state().label().contains(&filter)
            })
            .collect();
        let key = |vm: &VmEntry| -> (f64, u64) {
            match self.list.sort {
                SortColumn::Name => (0.0, 0),
                SortColumn::State => (0.0, state_rank(vm.state())),
                SortColumn::Vcpus => (0.0, u64::from(vm.vcpus_now().unwrap_or(0))),
                SortColumn::Memory => (0.0, vm.memory().unwrap_or(0)),
                SortColumn::Cpu => (vm.cpu_percent().unwrap_or(-1.0), 0),
                SortColumn::Used => (0.0, vm.used_bytes().unwrap_or(0)),
            }
        };
        rows.sort_by(|&a, &b| {
            let (va, vb) = (&self.vms[a], &self.vms[b]);
            let primary = key(va)
                .partial_cmp(&key(vb))
                .unwrap_or(std::cmp::Ordering::Equal);
            // Names, then hosts, break ties so the order is stable between polls.
            let ordered = primary
                .then_with(|| va.name().cmp(vb.name()))
                .then_with(|| va.host.cmp(&vb.host));
            if self.list.reverse {
                ordered.reverse()
            } else {
                ordered
            }
        });
        rows
    }

    /// Position of the selected VM among the listed ones.
    pub fn selected_row(&self) -> Option<usize> {
        let name = self.list.selected.as_deref()?;
        let host = &self.list.selected_host;
        self.visible()
            .iter()
            .position(|&i| self.vms[i].name() == name && self.vms[i].host == *host)
    }

    /// The selected VM.
    pub fn selected(&self) -> Option<&VmEntry> {
        let name = self.list.selected.as_deref()?;
        let host = &self.list.selected_host;
        self.vms
            .iter()
            .find(|vm| vm.name() == name && vm.host == *host)
    }

    /// Selects the VM at `index` of `vms` (its name and host).
    pub fn select_index(&mut self, index: usize) {
        if let Some(vm) = self.vms.get(index) {
            self.list.selected = Some(vm.name().to_string());
            self.list.selected_host = vm.host.clone();
        }
    }

    /// The VM named `name` on the [current host](App::current_host).
    pub fn entry(&self, name: &str) -> Option<&VmEntry> {
        let host = self.current_host();
        self.vms
            .iter()
            .find(|vm| vm.name() == name && vm.host == host)
    }

    /// VMs a bulk-capable action applies to: the marked ones (in list order), else the
    /// selected one.
    pub fn targets(&self) -> Vec<String> {
        if self.list.marked.is_empty() {
            return self.list.selected.iter().cloned().collect();
        }
        self.visible()
            .into_iter()
            .filter(|&i| self.vms[i].host == self.list.marked_host)
            .map(|i| self.vms[i].name().to_string())
            .filter(|n| self.list.marked.contains(n))
            .collect()
    }

    /// What VM `name` on the [current host](App::current_host) is busy doing, if anything.
    pub fn busy_with(&self, name: &str) -> Option<&'static str> {
        self.busy
            .get(&(self.current_host(), name.to_string()))
            .copied()
    }

    /// What `vm` is busy doing, if anything.
    pub fn busy_of(&self, vm: &VmEntry) -> Option<&'static str> {
        self.busy
            .get(&(vm.host.clone(), vm.name().to_string()))
            .copied()
    }

    /// Sets the status-line message.
    pub fn set_status(&mut self, kind: StatusKind, text: impl Into<String>) {
        self.status = Some(Status {
            kind,
            text: text.into(),
            since: self.ticks,
        });
        self.dirty = true;
    }

    /// Drops an expired status message; says whether one was dropped.
    pub(super) fn expire_status(&mut self) -> bool {
        let expired = self.status.as_ref().is_some_and(|s| {
            let lifetime = match s.kind {
                StatusKind::Progress => return false,
                StatusKind::Error => ERROR_TICKS,
                StatusKind::Info | StatusKind::Ok => INFO_TICKS,
            };
            self.ticks.saturating_sub(s.since) >= lifetime
        });
        if expired {
            self.status = None;
        }
        expired
    }

    /// Names of the VMs defined on the [current host](App::current_host).
    pub fn names(&self) -> Vec<String> {
        self.names_on(&self.current_host())
    }

    /// Names of the VMs defined on `host`.
    pub fn names_on(&self, host: &HostId) -> Vec<String> {
        self.vms
            .iter()
            .filter(|vm| vm.host == *host)
            .map(|vm| vm.name().to_string())
            .collect()
    }

    /// Marks the screen for redrawing.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }
}

fn state_rank(state: RunState) -> u64 {
    match state {
        RunState::Running => 0,
        RunState::Paused => 1,
        RunState::Crashed => 2,
        RunState::Saved => 3,
        RunState::ShutOff => 4,
    }
}
