//! The event loop and its threads. The UI thread owns the [`App`] and the terminal; every
//! other thread only sends messages to it:
//!
//! - **input**: crossterm events → `Action::Key/Mouse/Paste/Resize`;
//! - **poller**: `Host::list` and, for running VMs, `stats`/`info` once per second (sooner
//!   after an operation), plus `/proc/meminfo`;
//! - **one worker per remote host** (`hosts::worker`): connects through the connector, polls
//!   that host like the poller, reconnects with backoff; while its link is up its `HostApi`
//!   are in the shared table, where every effect stamped with that host finds them (an effect
//!   for a host that is not connected fails at once saying so, it never waits);
//! - **one thread per host operation** (start may take seconds), per storage or network
//!   task (a clone may take minutes; a watcher thread beside a long one reads its progress
//!   handle a few times a second and measures rate and time left) and per storage or network
//!   read; `Effect::CancelTask` cancels a task through the same handle, and quitting cancels
//!   every task still running and waits briefly for them to clean up (an image the wizard's
//!   import task copied for a VM that will not be made now is deleted too);
//! - **per console** a reader (guest output into a bounded inbox) and a writer (guest input).
//!
//! Render coalescing: the loop applies everything that is waiting, then draws at most once
//! per frame (~30 fps) and only when something visible changed. A chatty guest cannot starve
//! the keyboard: console bytes wait in a bounded inbox per console (its reader blocks when
//! it is full, vmd keeps the rest), only a wake-up message goes through the channel, and each
//! loop turn parses at most [`PARSE_BUDGET`] bytes after handling all input.

use super::action::{Action, DirEntry, Effect, HostMemory, HostOp, Routed};
use super::app::App;
use super::console::{ConsoleId, osc52};
use super::error_text::error_chain;
use super::hosts::config;
use super::hosts::connector::Connector;
use super::hosts::id::HostId;
use super::hosts::worker::{Connected, HostWorker, Timing, backends_of, forget};
use super::image_setup;
use super::poll::Poller;
use super::queue;
use super::tasks::{Task, TaskId, TaskOutcome, TaskProgress};
use super::ui;
use super::update::update;
use crate::client::Host;
use crate::client::HostApi;
use crate::progress::{Progress, RateMeter};
use crossterm::event::{self, Event, KeyEventKind};
use crossterm::{execute, queue, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::collections::HashMap;
use std::io::{self, BufWriter, IsTerminal, Read, Stdout, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, Once, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Shortest time between two frames (~30 fps).
const FRAME: Duration = Duration::from_millis(33);
/// Tick and poll period.
const TICK: Duration = Duration::from_secs(1);
/// Guest output parsed per loop turn, bytes.
pub const PARSE_BUDGET: usize = 256 << 10;
/// Guest output buffered per console before its reader waits, bytes.
const INBOX_CAP: usize = 1 << 20;
/// Largest directory listing the picker shows.
const MAX_DIR_ENTRIES: usize = 5000;
/// How often a long task's progress handle is read (and the task list updated).
const PROGRESS_PERIOD: Duration = Duration::from_millis(250);
/// The span over which a task's rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// How long quitting waits for cancelled tasks to clean up.
const QUIT_GRACE: Duration = Duration::from_secs(3);

/// The progress handles of the tasks that run, by id (shared with their worker threads, which
/// remove their own entry when they end).
type TaskHandles = Arc<Mutex<HashMap<TaskId, Progress>>>;

type Backend = CrosstermBackend<BufWriter<Stdout>>;

/// Where frames and clipboard requests go: the real terminal, or a recorder in tests.
trait Output {
    /// Draws a frame of `app`.
    fn draw(&mut self, app: &App) -> io::Result<()>;
    /// Asks the terminal to put `text` on the clipboard.
    fn clipboard(&mut self, text: &str) -> io::Result<()>;
}

/// The user's terminal.
struct TerminalOutput {
    terminal: Terminal<Backend>,
}

impl Output for TerminalOutput {
    fn draw(&mut self, app: &App) -> io::Result<()> {
        // Synchronized output: the terminal shows the whole frame at once, never half of it.
        queue!(
            self.terminal.backend_mut(),
            terminal::BeginSynchronizedUpdate
        )?;
        self.terminal.draw(|frame| ui::draw(app, frame))?;
        execute!(self.terminal.backend_mut(), terminal::EndSynchronizedUpdate)
    }

    fn clipboard(&mut self, text: &str) -> io::Result<()> {
        let out = self.terminal.backend_mut();
        out.write_all(osc52(text).as_bytes())?;
        out.flush()
    }
}

/// Messages to the UI thread.
enum Msg {
    /// Something for `update`.
    Action(Action),
    /// A console's stream is open; guest input goes to `input`.
    ConsoleReady {
        id: ConsoleId,
        input: Sender<Vec<u8>>,
    },
    /// A console's inbox went from empty to not empty.
    ConsoleData(ConsoleId),
    /// A console's stream ended after everything now in its inbox.
    ConsoleEnded { id: ConsoleId, reason: String },
    /// From remote host `name`'s worker number `generation`: applied only while that worker
    /// is the host's current one (a disconnected or replaced worker's last words are dropped).
    Worker {
        name: String,
        generation: u64,
        action: Action,
    },
}

/// Guest output waiting for the UI thread. Bounded: the reader waits when it is full.
#[derive(Default)]
struct Inbox {
    data: Mutex<Vec<u8>>,
    space: Condvar,
    closed: AtomicBool,
}

impl Inbox {
    /// Appends `bytes`, waiting while the inbox is full; says whether it was empty before
    /// (then the UI thread needs a wake-up). Returns `None` once closed.
    fn push(&self, bytes: &[u8]) -> Option<bool> {
        let mut data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        while data.len() >= INBOX_CAP {
            if self.is_closed() {
                return None;
            }
            data = self
                .space
                .wait_timeout(data, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if self.is_closed() {
            return None;
        }
        let was_empty = data.is_empty();
        data.extend_from_slice(bytes);
        Some(was_empty)
    }

    /// Takes up to `max` bytes; says whether more remain.
    fn take(&self, max: usize) -> (Vec<u8>, bool) {
        let mut data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        let n = max.min(data.len());
        let taken: Vec<u8> = data.drain(..n).collect();
        let more = !data.is_empty();
        self.space.notify_all();
        (taken, more)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.space.notify_all();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// The UI thread's side of one console.
struct ConsoleLink {
    inbox: Arc<Inbox>,
    input: Option<Sender<Vec<u8>>>,
    ended: Option<String>,
}

/// Whether a TUI owns the terminal now (for the panic hook), and on which thread.
static ACTIVE: Mutex<Option<thread::ThreadId>> = Mutex::new(None);
static HOOK: Once = Once::new();

/// Puts the terminal back the way the shell expects it. Safe to call twice.
pub fn restore_terminal() {
    let _ = execute!(
        io::stdout(),
        event::DisableBracketedPaste,
        event::DisableMouseCapture,
        terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = terminal::disable_raw_mode();
}

/// Raw mode and the alternate screen for as long as it lives; restored on drop, including
/// while unwinding from a panic.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        // A panic on the UI thread restores the terminal before the message is printed.
        HOOK.call_once(|| {
            let previous = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                let active = *ACTIVE.lock().unwrap_or_else(PoisonError::into_inner);
                if active == Some(thread::current().id()) {
                    restore_terminal();
                }
                previous(info);
            }));
        });
        terminal::enable_raw_mode()?;
        *ACTIVE.lock().unwrap_or_else(PoisonError::into_inner) = Some(thread::current().id());
        let guard = TerminalGuard;
        execute!(
            io::stdout(),
            terminal::EnterAlternateScreen,
            event::EnableMouseCapture,
            event::EnableBracketedPaste,
            crossterm::cursor::Hide
        )?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        *ACTIVE.lock().unwrap_or_else(PoisonError::into_inner) = None;
        restore_terminal();
    }
}

/// What the runtime needs besides the local host: how to reach remote hosts, and where the
/// hosts pane saves them.
pub struct Remotes {
    /// Opens links to remote hosts.
    pub connector: Arc<dyn Connector>,
    /// The settings file (`[[hosts]]`).
    pub settings_path: PathBuf,
}

/// Runs the TUI until the user quits. VMs are left as they are.
pub fn run(backends: HostApi, remotes: Remotes, mut app: App) -> io::Result<()> {
    // Log lines written to the terminal would tear the screen; keep them out while the TUI
    // owns it, unless stderr goes elsewhere (`vmux 2>vmux.log`).
    let log_level = log::max_level();
    if io::stderr().is_terminal() {
        log::set_max_level(log::LevelFilter::Off);
    }
    let result = run_on_terminal(backends, remotes, &mut app);
    log::set_max_level(log_level);
    result
}

fn run_on_terminal(backends: HostApi, remotes: Remotes, app: &mut App) -> io::Result<()> {
    let guard = TerminalGuard::enter()?;
    let mut output = TerminalOutput {
        terminal: Terminal::new(CrosstermBackend::new(BufWriter::with_capacity(
            1 << 16,
            io::stdout(),
        )))?,
    };
    let (width, height) = terminal::size()?;
    update(app, Action::Resize { width, height });

    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let input = spawn("vmux-input", {
        let (tx, stop) = (tx.clone(), stop.clone());
        move || input_loop(&tx, &stop)
    })?;
    let (wake, wake_rx) = mpsc::channel();
    spawn("vmux-poll", {
        let (host, tx, stop) = (backends.vms.clone(), tx.clone(), stop.clone());
        move || poll_loop(host.as_ref(), &tx, &wake_rx, &stop)
    })?;

    let mut runtime = Runtime::new(backends, remotes, tx, wake);
    let result = runtime.event_loop(app, &rx, &mut output);
    runtime.cancel_tasks(QUIT_GRACE);
    runtime.discard_orphaned_images(app, &rx);
    runtime.close_hosts();

    stop.store(true, Ordering::SeqCst);
    for link in runtime.consoles.values() {
        link.inbox.close();
    }
    // The input thread polls with a timeout; waiting for it keeps it from eating keys typed
    // into the shell after we leave.
    let _ = input.join();
    drop(guard);
    result
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<thread::JoinHandle<()>> {
    thread::Builder::new().name(name.to_string()).spawn(f)
}

struct Runtime {
    backends: HostApi,
    tx: Sender<Msg>,
    wake: Sender<()>,
    consoles: HashMap<ConsoleId, ConsoleLink>,
    /// Consoles with bytes waiting, in arrival order.
    pending: Vec<ConsoleId>,
    /// The running tasks' progress handles.
    tasks: TaskHandles,
    /// Opens links to remote hosts.
    connector: Arc<dyn Connector>,
    /// The remote hosts whose link is up, with their backends.
    connected: Connected,
    /// The worker of each remote host being connected or connected.
    workers: HashMap<String, HostWorker>,
    /// The last worker generation handed out.
    generation: u64,
    /// The settings file the hosts pane saves to.
    settings_path: PathBuf,
}

impl Runtime {
    fn new(backends: HostApi, remotes: Remotes, tx: Sender<Msg>, wake: Sender<()>) -> Runtime {
        Runtime {
            backends,
            tx,
            wake,
            consoles: HashMap::new(),
            pending: Vec::new(),
            tasks: TaskHandles::default(),
            connector: remotes.connector,
            connected: Connected::default(),
            workers: HashMap::new(),
            generation: 0,
            settings_path: remotes.settings_path,
        }
    }

    /// Stops every remote host's worker (each closes its link).
    fn close_hosts(&mut self) {
        for (name, worker) in self.workers.drain() {
            worker.stop();
            forget(&self.connected, &name);
        }
    }

    fn event_loop(
        &mut self,
        app: &mut App,
        rx: &Receiver<Msg>,
        output: &mut dyn Output,
    ) -> io::Result<()> {
        let mut next_tick = Instant::now() + TICK;
        let mut next_frame = Instant::now();
        loop {
            let now = Instant::now();
            let timeout = if !self.pending.is_empty() {
                Duration::ZERO
            } else if app.dirty {
                next_frame.saturating_duration_since(now)
            } else {
                next_tick.saturating_duration_since(now)
            };
            match rx.recv_timeout(timeout) {
                Ok(msg) => self.handle(app, msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            // Everything small that is waiting (keys first among them) before any parsing.
            while let Ok(msg) = rx.try_recv() {
                self.handle(app, msg);
            }
            self.parse_console_output(app);
            if Instant::now() >= next_tick {
                update(app, Action::Tick);
                next_tick += TICK;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + TICK;
                }
            }
            for routed in app.take_routed() {
                self.execute(routed, output)?;
            }
            if app.should_quit() {
                return Ok(());
            }
            if app.dirty && Instant::now() >= next_frame {
                app.take_dirty();
                output.draw(app)?;
                next_frame = Instant::now() + FRAME;
            }
        }
    }

    fn handle(&mut self, app: &mut App, msg: Msg) {
        match msg {
            Msg::Action(action) => update(app, action),
            Msg::Worker {
                name,
                generation,
                action,
            } => {
                if self.workers.get(&name).map(|w| w.generation) == Some(generation) {
                    update(app, action);
                }
            }
            Msg::ConsoleReady { id, input } => {
                // Detached before it opened: dropping `input` ends its writer.
                if let Some(link) = self.consoles.get_mut(&id) {
                    link.input = Some(input);
                    update(app, Action::ConsoleOpened(id));
                }
            }
            Msg::ConsoleData(id) => {
                if self.consoles.contains_key(&id) && !self.pending.contains(&id) {
                    self.pending.push(id);
                }
            }
            Msg::ConsoleEnded { id, reason } => {
                if let Some(link) = self.consoles.get_mut(&id) {
                    link.ended = Some(reason);
                    if !self.pending.contains(&id) {
                        self.pending.push(id);
                    }
                }
            }
        }
    }

    /// Feeds waiting guest output to `update`, at most [`PARSE_BUDGET`] bytes per turn.
    fn parse_console_output(&mut self, app: &mut App) {
        let mut budget = PARSE_BUDGET;
        let mut still_pending = Vec::new();
        for id in std::mem::take(&mut self.pending) {
            let Some(link) = self.consoles.get_mut(&id) else {
                continue;
            };
            let (bytes, more) = link.inbox.take(budget);
            budget -= bytes.len();
            if !bytes.is_empty() {
                update(app, Action::ConsoleOutput { id, bytes });
            }
            if more {
                still_pending.push(id);
            } else if let Some(reason) = link.ended.take() {
                self.consoles.remove(&id);
                update(app, Action::ConsoleClosed { id, reason });
            }
        }
        self.pending = still_pending;
    }

    /// The backends of `host`, or why it cannot be reached now.
    fn backends_for(&self, host: &HostId) -> Result<HostApi, String> {
        match host {
            HostId::Local => Ok(self.backends.clone()),
            HostId::Remote(name) => backends_of(&self.connected, name).ok_or_else(|| {
                format!("host {name} is not connected; connect it in the hosts pane (H)")
            }),
        }
    }

    fn execute(&mut self, routed: Routed, output: &mut dyn Output) -> io::Result<()> {
        let Routed { host, effect } = routed;
        let reply = {
            let (host, tx) = (host.clone(), self.tx.clone());
            move |action: Action| {
                let action = match &host {
                    HostId::Local => action,
                    HostId::Remote(_) => Action::OnHost {
                        host: host.clone(),
                        action: Box::new(action),
                    },
                };
                tx.send(Msg::Action(action)).is_ok()
            }
        };
        match effect {
            Effect::Host(op) => {
                let backends = self.backends_for(&host);
                let wake = self.waker(&host);
                spawn("vmux-op", move || {
                    let result = backends.and_then(|b| run_op(&b, &op));
                    reply(Action::OpDone { op, result });
                    wake();
                })?;
            }
            Effect::Refresh => self.waker(&host)(),
            Effect::OpenConsole { id, vm, history } => {
                let inbox = Arc::new(Inbox::default());
                self.consoles.insert(
                    id,
                    ConsoleLink {
                        inbox: inbox.clone(),
                        input: None,
                        ended: None,
                    },
                );
                let tx = self.tx.clone();
                match self.backends_for(&host) {
                    Ok(backends) => {
                        spawn("vmux-console", move || {
                            console_reader(backends.vms.as_ref(), id, &vm, history, &inbox, &tx);
                        })?;
                    }
                    Err(reason) => {
                        let _ = tx.send(Msg::ConsoleEnded { id, reason });
                    }
                }
            }
            Effect::ConsoleInput { id, bytes } => {
                if let Some(input) = self.consoles.get(&id).and_then(|l| l.input.as_ref()) {
                    let _ = input.send(bytes);
                }
            }
            Effect::CloseConsole(id) => {
                if let Some(link) = self.consoles.remove(&id) {
                    link.inbox.close();
                }
                self.pending.retain(|p| *p != id);
            }
            Effect::Clipboard(text) => output.clipboard(&text)?,
            Effect::ListDir(dir) => {
                let tx = self.tx.clone();
                spawn("vmux-listdir", move || {
                    let result = list_dir(&dir);
                    let _ = tx.send(Msg::Action(Action::DirListed { dir, result }));
                })?;
            }
            Effect::ReadInfo(vm) => {
                if let Ok(backends) = self.backends_for(&host) {
                    spawn("vmux-info", move || {
                        if let Ok(info) = backends.vms.info(&vm) {
                            reply(Action::Info { vm, info });
                        }
                    })?;
                }
            }
            Effect::LoadStorage => {
                let backends = self.backends_for(&host);
                spawn("vmux-storage", move || {
                    let result = backends.and_then(|b| {
                        guarded(
                            || b.storage.snapshot().map_err(|e| error_chain(&e)),
                            "reading the storage pools",
                        )
                    });
                    reply(Action::StorageLoaded(result));
                })?;
            }
            Effect::LoadNetworks => {
                let backends = self.backends_for(&host);
                spawn("vmux-networks", move || {
                    let result = backends.and_then(|b| {
                        guarded(
                            || b.networks.snapshot().map_err(|e| error_chain(&e)),
                            "reading the networks",
                        )
                    });
                    reply(Action::NetworksLoaded(result));
                })?;
            }
            Effect::Task { id, task } => match self.backends_for(&host) {
                Ok(backends) => self.start_task(id, task, backends, Box::new(reply))?,
                Err(message) => {
                    reply(Action::TaskDone {
                        id,
                        outcome: TaskOutcome::Failed(message),
                    });
                }
            },
            Effect::CancelTask(id) => {
                if let Some(progress) = lock_tasks(&self.tasks).get(&id) {
                    progress.cancel();
                }
            }
            Effect::Connect { name, uri } => self.connect(name, uri)?,
            Effect::Disconnect(name) => {
                if let Some(worker) = self.workers.remove(&name) {
                    worker.stop();
                }
                forget(&self.connected, &name);
            }
            Effect::SaveHosts(hosts) => {
                let (path, tx) = (self.settings_path.clone(), self.tx.clone());
                spawn("vmux-settings", move || {
                    let result = save_hosts(&path, &hosts);
                    let _ = tx.send(Msg::Action(Action::HostsSaved(result)));
                })?;
            }
        }
        Ok(())
    }

    /// What wakes `host`'s poller (after an operation, so the list shows its result soon).
    fn waker(&self, host: &HostId) -> Box<dyn Fn() + Send> {
        match host {
            HostId::Local => {
                let wake = self.wake.clone();
                Box::new(move || {
                    let _ = wake.send(());
                })
            }
            HostId::Remote(name) => match self.workers.get(name) {
                Some(worker) => {
                    let worker = worker.clone();
                    Box::new(move || worker.wake())
                }
                None => Box::new(|| {}),
            },
        }
    }

    /// Starts a worker that connects remote host `name` (stopping an earlier one).
    fn connect(&mut self, name: String, uri: String) -> io::Result<()> {
        if let Some(old) = self.workers.remove(&name) {
            old.stop();
        }
        self.generation += 1;
        let generation = self.generation;
        let (tx, from) = (self.tx.clone(), name.clone());
        let send = move |action| {
            tx.send(Msg::Worker {
                name: from.clone(),
                generation,
                action,
            })
            .is_ok()
        };
        let worker = HostWorker::spawn(
            name.clone(),
            uri,
            generation,
            self.connector.clone(),
            self.connected.clone(),
            Timing::default(),
            Box::new(send),
        )?;
        self.workers.insert(name, worker);
        Ok(())
    }

    /// Cancels every task still running and waits up to `grace` for them to clean up (a
    /// cancelled copy removes its temporary file; quitting must not leave one behind).
    fn cancel_tasks(&self, grace: Duration) {
        for progress in lock_tasks(&self.tasks).values() {
            progress.cancel();
        }
        let deadline = Instant::now() + grace;
        while !lock_tasks(&self.tasks).is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// After quitting: an image that an import task copied for a VM the wizard will not make
    /// now (the task ended while the TUI was quitting) is deleted, so a quit leaves no volume
    /// without its VM. Reads what is left in `rx`: call it after [`Runtime::cancel_tasks`].
    fn discard_orphaned_images(&self, app: &mut App, rx: &Receiver<Msg>) {
        while let Ok(msg) = rx.try_recv() {
            let Msg::Action(action) = msg else { continue };
            // A remote host's task ends wrapped with its host.
            let (host, action) = match action {
                Action::OnHost { host, action } => (host, *action),
                other => (HostId::Local, other),
            };
            if let Action::TaskDone {
                id,
                outcome: TaskOutcome::Done(_),
            } = action
                && let Some(setup) = queue::orphaned_image(app, id)
                && let Ok(backends) = self.backends_for(&host)
            {
                image_setup::abandon(&backends, &setup);
            }
        }
    }

    /// Runs `task` on a worker thread with a fresh progress handle, and a watcher beside it
    /// for the long ones.
    fn start_task(
        &self,
        id: TaskId,
        task: Task,
        backends: HostApi,
        reply: Box<dyn FnOnce(Action) -> bool + Send>,
    ) -> io::Result<()> {
        let progress = Progress::new();
        let done = Arc::new(AtomicBool::new(false));
        lock_tasks(&self.tasks).insert(id, progress.clone());
        if task.cancellable() {
            let (progress, tx, done) = (progress.clone(), self.tx.clone(), done.clone());
            spawn("vmux-progress", move || {
                watch_progress(&progress, id, &done, &tx);
            })?;
        }
        let tasks = self.tasks.clone();
        spawn("vmux-task", move || {
            let outcome =
                match panic::catch_unwind(AssertUnwindSafe(|| task.run(&backends, &progress))) {
                    Ok(outcome) => outcome,
                    Err(_) => super::tasks::TaskOutcome::Failed(format!(
                        "internal error while {}; see the message printed when vmux exits",
                        task.progress_words()
                    )),
                };
            done.store(true, Ordering::SeqCst);
            // Sent before the entry goes, so that once `cancel_tasks` sees no tasks left,
            // every task's end is in the channel.
            reply(Action::TaskDone { id, outcome });
            lock_tasks(&tasks).remove(&id);
        })?;
        Ok(())
    }
}

/// Writes the hosts to the settings file: what the status line says, or why it failed.
fn save_hosts(path: &Path, hosts: &[config::HostEntry]) -> Result<String, String> {
    config::save(path, hosts)
        .map(|()| format!("hosts saved to {}", path.display()))
        .map_err(|e| error_chain(&e))
}

fn lock_tasks(tasks: &TaskHandles) -> std::sync::MutexGuard<'_, HashMap<TaskId, Progress>> {
    tasks.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reports a long task's progress handle every [`PROGRESS_PERIOD`] until `done` is set, with
/// the rate over the last [`RATE_WINDOW`] and the time left at that rate. Nothing is sent
/// while the task has not measured its work or nothing changed.
fn watch_progress(progress: &Progress, id: TaskId, done: &AtomicBool, tx: &Sender<Msg>) {
    let mut meter = RateMeter::new(RATE_WINDOW);
    let mut last = None;
    while !done.load(Ordering::SeqCst) {
        thread::sleep(PROGRESS_PERIOD);
        let snapshot = progress.snapshot();
        if !snapshot.measured() {
            continue;
        }
        meter.record(Instant::now(), snapshot.done);
        let report = TaskProgress {
            snapshot,
            rate: meter.rate(),
            eta: meter.eta(&snapshot),
        };
        if last != Some(report) && !done.load(Ordering::SeqCst) {
            last = Some(report);
            if tx
                .send(Msg::Action(Action::TaskProgress {
                    id,
                    progress: report,
                }))
                .is_err()
            {
                return;
            }
        }
    }
}

/// Runs a host operation, turning a panic in the host code into an error message instead
/// of a dead worker.
fn run_op(backends: &HostApi, op: &HostOp) -> Result<String, String> {
    guarded(
        || op.run(backends),
        &format!("{} {}", op.progress(), op.vm()),
    )
}

/// Runs `f`, turning a panic into an error message naming what was being done.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>, doing: &str) -> Result<T, String> {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(_) => Err(format!(
            "internal error while {doing}; see the message printed when vmux exits"
        )),
    }
}

fn input_loop(tx: &Sender<Msg>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match event::poll(Duration::from_millis(200)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        let action = match event::read() {
            Ok(Event::Key(key)) if key.kind != KeyEventKind::Release => Action::Key(key),
            Ok(Event::Mouse(mouse)) => Action::Mouse(mouse),
            Ok(Event::Paste(text)) => Action::Paste(text),
            Ok(Event::Resize(width, height)) => Action::Resize { width, height },
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.send(Msg::Action(action)).is_err() {
            return;
        }
    }
}

fn poll_loop(host: &dyn Host, tx: &Sender<Msg>, wake: &Receiver<()>, stop: &AtomicBool) {
    let mut poller = Poller::default();
    while !stop.load(Ordering::SeqCst) {
        let mut send = |action| tx.send(Msg::Action(action)).is_ok();
        let Some(sampled) = poller.poll(host, &mut send) else {
            return;
        };
        if sampled && let Some(memory) = read_meminfo(Path::new("/proc/meminfo")) {
            send(Action::HostMemory(memory));
        }
        match wake.recv_timeout(TICK) {
            Ok(()) => while wake.try_recv().is_ok() {},
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// `MemTotal` and `MemAvailable` from a meminfo file.
fn read_meminfo(path: &Path) -> Option<HostMemory> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_meminfo(&text)
}

fn parse_meminfo(text: &str) -> Option<HostMemory> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some(HostMemory {
        total: field("MemTotal:")?,
        available: field("MemAvailable:")?,
    })
}

fn console_reader(
    host: &dyn Host,
    id: ConsoleId,
    vm: &str,
    history: bool,
    inbox: &Inbox,
    tx: &Sender<Msg>,
) {
    let console = match host.console(vm, history) {
        Ok(console) => console,
        Err(e) => {
            let _ = tx.send(Msg::ConsoleEnded {
                id,
                reason: error_chain(&e),
            });
            return;
        }
    };
    let crate::client::Console { mut output, input } = console;
    let Ok(input_tx) = crate::client::console_input::spawn_writer(input, "vmux-console-in") else {
        return;
    };
    if tx
        .send(Msg::ConsoleReady {
            id,
            input: input_tx,
        })
        .is_err()
    {
        return;
    }
    let mut buf = vec![0u8; 16 << 10];
    let reason = loop {
        match output.read(&mut buf) {
            Ok(0) => break "the console stream ended (the VM stopped or vmd exited)".to_string(),
            Ok(n) => match inbox.push(&buf[..n]) {
                Some(true) => {
                    if tx.send(Msg::ConsoleData(id)).is_err() {
                        return;
                    }
                }
                Some(false) => {}
                // Detached: stop reading; dropping the stream closes it.
                None => return,
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break format!("reading the console failed: {e}"),
        }
        if inbox.is_closed() {
            return;
        }
    };
    if !inbox.is_closed() {
        let _ = tx.send(Msg::ConsoleEnded { id, reason });
    }
}

fn list_dir(dir: &PathBuf) -> Result<Vec<DirEntry>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut out: Vec<DirEntry> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .take(MAX_DIR_ENTRIES)
        .map(|e| DirEntry {
            name: e.file_name().to_string_lossy().into_owned(),
            // Follows symlinks, so a link to a directory opens like one.
            is_dir: e.path().is_dir(),
        })
        .collect();
    out.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_read_in_bytes() {
        let text = "MemTotal:       16000000 kB\nMemFree:  1 kB\nMemAvailable:    8000000 kB\n";
        let memory = parse_meminfo(text).expect("parses");
        assert_eq!(memory.total, 16_000_000 * 1024);
        assert_eq!(memory.available, 8_000_000 * 1024);
    }

    #[test]
    fn inbox_reports_the_first_push_and_hands_out_in_budgets() {
        let inbox = Inbox::default();
        assert_eq!(inbox.push(b"abc"), Some(true));
        assert_eq!(inbox.push(b"def"), Some(false));
        let (bytes, more) = inbox.take(4);
        assert_eq!(bytes, b"abcd");
        assert!(more);
    }

    #[test]
    fn closed_inbox_refuses_more() {
        let inbox = Inbox::default();
        inbox.close();
        assert_eq!(inbox.push(b"x"), None);
    }

    #[test]
    fn directory_listing_puts_directories_first_and_hides_dotfiles() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a-file"), b"").expect("write");
        std::fs::write(dir.path().join(".hidden"), b"").expect("write");
        std::fs::create_dir(dir.path().join("z-dir")).expect("mkdir");
        let entries = list_dir(&dir.path().to_path_buf()).expect("lists");
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["z-dir", "a-file"]);
    }

    use crate::client::fake::FakeHost;
    use crate::config::{BootConfig, VmConfig};
    use crate::tui::keymap::Keymap;
    use crate::tui::theme::Theme;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    #[derive(Default)]
    struct Recorder {
        frames: usize,
        /// The frame count, for another thread to read while the loop runs.
        shared: Option<Arc<std::sync::atomic::AtomicUsize>>,
    }

    impl Output for Recorder {
        fn draw(&mut self, app: &App) -> io::Result<()> {
            let backend = ratatui::backend::TestBackend::new(80, 24);
            let mut terminal = Terminal::new(backend).expect("test backend");
            terminal
                .draw(|frame| ui::draw(app, frame))
                .expect("test backend draws");
            self.frames += 1;
            if let Some(shared) = &self.shared {
                shared.store(self.frames, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(())
        }

        fn clipboard(&mut self, _: &str) -> io::Result<()> {
            Ok(())
        }
    }

    /// No remote hosts; a settings path nothing writes to.
    fn test_remotes() -> Remotes {
        Remotes {
            connector: Arc::new(crate::tui::hosts::connector::NoRemoteHosts),
            settings_path: PathBuf::from("/nonexistent/vmux.toml"),
        }
    }

    fn key(code: KeyCode, modifiers: KeyModifiers) -> Msg {
        Msg::Action(Action::Key(KeyEvent::new(code, modifiers)))
    }

    /// A runtime over a fake host with VM `a` running and its console attached (id 1) to
    /// `inbox`; returns the message sender for the test to play the other threads.
    fn attached(inbox: &Arc<Inbox>) -> (Runtime, App, Sender<Msg>, Receiver<Msg>) {
        let host = Arc::new(FakeHost::with_vms([VmConfig::new("a", BootConfig::Demo)]));
        host.start("a").expect("start");
        let mut app = App::new(Theme::default(), Keymap::default());
        update(&mut app, Action::Listed(host.list()));
        update(
            &mut app,
            Action::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
        );
        assert!(app.take_effects().contains(&Effect::OpenConsole {
            id: 1,
            vm: "a".into(),
            history: true
        }));
        update(&mut app, Action::ConsoleOpened(1));
        let (tx, rx) = mpsc::channel();
        let (wake, _) = mpsc::channel();
        let mut runtime = Runtime::new(
            HostApi {
                vms: host,
                storage: Arc::new(crate::client::FakeStorage::new()),
                networks: Arc::new(crate::client::FakeNetworks::new()),
            },
            test_remotes(),
            tx.clone(),
            wake,
        );
        runtime.consoles.insert(
            1,
            ConsoleLink {
                inbox: inbox.clone(),
                input: None,
                ended: None,
            },
        );
        (runtime, app, tx, rx)
    }

    fn detach_and_quit(tx: &Sender<Msg>) {
        tx.send(key(KeyCode::Char(']'), KeyModifiers::CONTROL))
            .expect("send");
        tx.send(key(KeyCode::Char('q'), KeyModifiers::NONE))
            .expect("send");
    }

    #[test]
    fn keys_are_handled_before_a_backlog_of_guest_output() {
        let inbox = Arc::new(Inbox::default());
        let flood = vec![b'x'; INBOX_CAP - 1];
        inbox.push(&flood);
        let (mut runtime, mut app, tx, rx) = attached(&inbox);
        tx.send(Msg::ConsoleData(1)).expect("send");
        detach_and_quit(&tx);
        runtime
            .event_loop(&mut app, &rx, &mut Recorder::default())
            .expect("loop");
        let left = inbox.data.lock().expect("lock").len();
        assert!(app.should_quit());
        assert!(
            left >= flood.len() - PARSE_BUDGET,
            "parsed {}",
            flood.len() - left
        );
    }

    #[test]
    fn a_chatty_guest_is_drawn_at_most_30_times_a_second() {
        let inbox = Arc::new(Inbox::default());
        let (mut runtime, mut app, tx, rx) = attached(&inbox);
        let started = Instant::now();
        let guest = {
            let (inbox, tx) = (inbox.clone(), tx.clone());
            thread::spawn(move || {
                for i in 0..300 {
                    if inbox.push(format!("line {i}\r\n").as_bytes()) == Some(true) {
                        let _ = tx.send(Msg::ConsoleData(1));
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                detach_and_quit(&tx);
            })
        };
        let mut recorder = Recorder::default();
        runtime
            .event_loop(&mut app, &rx, &mut recorder)
            .expect("loop");
        guest.join().expect("guest thread");
        let elapsed = started.elapsed().as_millis() as usize;
        assert!(recorder.frames >= 2, "{} frames", recorder.frames);
        assert!(
            recorder.frames <= elapsed / 33 + 2,
            "{} frames in {elapsed} ms",
            recorder.frames
        );
    }

    #[test]
    fn an_idle_screen_is_not_redrawn() {
        let inbox = Arc::new(Inbox::default());
        let (mut runtime, mut app, tx, rx) = attached(&inbox);
        let drawn = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Counted before the detach: the detach itself may be drawn (on a busy host the loop
        // can take the detach key before the quit key is even sent), which is not idling.
        let quitter = {
            let drawn = drawn.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(1500));
                let idle = drawn.load(std::sync::atomic::Ordering::SeqCst);
                detach_and_quit(&tx);
                idle
            })
        };
        let mut recorder = Recorder {
            shared: Some(drawn),
            ..Recorder::default()
        };
        runtime
            .event_loop(&mut app, &rx, &mut recorder)
            .expect("loop");
        let idle = quitter.join().expect("quitter");
        assert_eq!(idle, 1, "frames drawn in 1.5 s of an idle console");
        assert!(recorder.frames <= 2, "{} frames", recorder.frames);
    }

    #[test]
    fn an_image_copied_while_quitting_is_deleted_with_the_vm_that_will_not_be_made() {
        let storage = Arc::new(crate::client::FakeStorage::new());
        storage.add_volume("default", "web1.qcow2", 2 << 30, 400 << 20);
        let (tx, rx) = mpsc::channel();
        let (wake, _) = mpsc::channel();
        let runtime = Runtime::new(
            HostApi {
                vms: Arc::new(FakeHost::new()),
                storage: storage.clone(),
                networks: Arc::new(crate::client::FakeNetworks::new()),
            },
            test_remotes(),
            tx.clone(),
            wake,
        );
        let mut app = App::new(Theme::default(), Keymap::default());
        let image = crate::tui::image_setup::ImageSetup {
            import: Some(crate::tui::image_setup::ImageImport {
                source: crate::client::ImageSource::File("/srv/debian.qcow2".into()),
                pool: "default".into(),
                volume: "web1.qcow2".into(),
                linked: false,
            }),
            cloud_init: None,
            imported: false,
        };
        app.after_import.insert(
            7,
            HostOp::Create {
                config: Box::new(VmConfig::new("web1", BootConfig::Demo)),
                start: true,
                attach: true,
                new_volume: None,
                networks: Vec::new(),
                start_networks: Vec::new(),
                image: Some(Box::new(image)),
            },
        );
        // The import ended as the user quit: its end is still in the channel.
        tx.send(Msg::Action(Action::TaskDone {
            id: 7,
            outcome: TaskOutcome::Done("imported".into()),
        }))
        .expect("send");

        runtime.discard_orphaned_images(&mut app, &rx);

        assert!(storage.volume("default", "web1.qcow2").is_none());
        assert!(app.after_import.is_empty());
    }

    /// A runtime over an empty local fake with remote host `h2` connected (serving VM `db`).
    fn with_remote() -> (Runtime, Arc<FakeHost>, Receiver<Msg>) {
        let (tx, rx) = mpsc::channel();
        let (wake, _) = mpsc::channel();
        let runtime = Runtime::new(
            HostApi {
                vms: Arc::new(FakeHost::with_vms([VmConfig::new("db", BootConfig::Demo)])),
                storage: Arc::new(crate::client::FakeStorage::new()),
                networks: Arc::new(crate::client::FakeNetworks::new()),
            },
            test_remotes(),
            tx,
            wake,
        );
        let remote = Arc::new(FakeHost::with_vms([VmConfig::new("db", BootConfig::Demo)]));
        let backends = HostApi {
            vms: remote.clone(),
            storage: Arc::new(crate::client::FakeStorage::new()),
            networks: Arc::new(crate::client::FakeNetworks::new()),
        };
        runtime
            .connected
            .lock()
            .expect("lock")
            .insert("h2".into(), (1, backends));
        (runtime, remote, rx)
    }

    fn op_done(rx: &Receiver<Msg>) -> Action {
        match rx.recv_timeout(Duration::from_secs(5)).expect("a reply") {
            Msg::Action(action) => action,
            _ => panic!("not an action"),
        }
    }

    #[test]
    fn an_effect_for_a_remote_host_runs_there_and_its_reply_names_the_host() {
        let (mut runtime, remote, rx) = with_remote();
        let routed = Routed {
            host: HostId::Remote("h2".into()),
            effect: Effect::Host(HostOp::Start("db".into())),
        };
        runtime
            .execute(routed, &mut Recorder::default())
            .expect("runs");
        match op_done(&rx) {
            Action::OnHost { host, action } => {
                assert_eq!(host, HostId::Remote("h2".into()));
                assert!(matches!(*action, Action::OpDone { result: Ok(_), .. }));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            remote.status("db").expect("db").state,
            crate::protocol::RunState::Running
        );
        let local = runtime.backends.vms.status("db").expect("local db");
        assert_eq!(local.state, crate::protocol::RunState::ShutOff);
    }

    #[test]
    fn an_effect_for_a_host_that_is_not_connected_fails_at_once() {
        let (mut runtime, _, rx) = with_remote();
        let routed = Routed {
            host: HostId::Remote("h3".into()),
            effect: Effect::Host(HostOp::Start("db".into())),
        };
        runtime
            .execute(routed, &mut Recorder::default())
            .expect("runs");
        match op_done(&rx) {
            Action::OnHost { action, .. } => match *action {
                Action::OpDone {
                    result: Err(message),
                    ..
                } => assert!(message.contains("h3 is not connected"), "{message}"),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_replaced_workers_last_words_are_dropped() {
        let (mut runtime, _, _rx) = with_remote();
        let mut app = App::new(Theme::default(), Keymap::default());
        crate::tui::hosts::pane::load(
            &mut app,
            vec![crate::tui::hosts::config::HostEntry {
                name: "h2".into(),
                uri: "ssh://h2".into(),
                autoconnect: false,
            }],
        );
        // No worker runs for h2 (disconnected): a late state from an old one is not shown.
        runtime.handle(
            &mut app,
            Msg::Worker {
                name: "h2".into(),
                generation: 7,
                action: Action::HostState {
                    name: "h2".into(),
                    state: crate::tui::hosts::state::HostState::Connected,
                },
            },
        );
        assert_eq!(
            app.hosts[0].state,
            crate::tui::hosts::state::HostState::Disconnected
        );
    }

    #[test]
    fn op_panics_become_errors() {
        let result: Result<(), String> = guarded(|| panic!("boom"), "starting a");
        assert!(
            result
                .expect_err("error")
                .contains("internal error while starting a")
        );
    }
}
