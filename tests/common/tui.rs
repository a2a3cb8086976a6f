//! Shared by the TUI integration tests: a headless harness that drives `update` with actions
//! and carries out its effects synchronously against a `FakeHost` (what the runtime's
//! threads do, minus the threads), plus the standard fixture and rendering helpers.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};
use vmux::client::Host;
use vmux::client::HostApi;
use vmux::client::fake::FakeHost;
use vmux::client::{FakeNetworks, FakeStorage};
use vmux::config::{BootConfig, MacAddr, NicConfig, VmConfig};
use vmux::progress::Progress;
use vmux::tui::action::{Action, DirEntry, Effect, HostMemory, Routed};
use vmux::tui::console::ConsoleId;
use vmux::tui::error_text::error_chain;
use vmux::tui::hosts::id::HostId;
use vmux::tui::hosts::state::HostState;
use vmux::tui::keymap::Keymap;
use vmux::tui::tasks::TaskId;
use vmux::tui::theme::Theme;
use vmux::tui::{App, ui, update};

/// An open fake console: guest input, and guest output collected by a reader thread.
struct Link {
    input: Box<dyn Write + Send>,
    output: Receiver<Vec<u8>>,
}

/// Drives an [`App`] headless.
pub struct Harness {
    /// The host the effects run against.
    pub host: Arc<FakeHost>,
    /// The storage the effects run against.
    pub storage: Arc<FakeStorage>,
    /// The networks the effects run against.
    pub networks: Arc<FakeNetworks>,
    /// Storage and network tasks are held here instead of run, while set (to look at a
    /// screen with a task in flight).
    pub hold_tasks: bool,
    /// Tasks held back.
    pub held: Vec<Routed>,
    /// The remote hosts whose link is up: their backends by name (what the runtime's
    /// connected-hosts table holds).
    pub remotes: HashMap<String, HostApi>,
    /// Hosts written by the hosts pane (`Effect::SaveHosts`) go to this settings file.
    pub settings_path: Option<std::path::PathBuf>,
    /// The app under test.
    pub app: App,
    /// Text sent to the clipboard, in order.
    pub clipboard: Vec<String>,
    /// Directory listings the file picker gets (path → entries).
    pub dirs: HashMap<std::path::PathBuf, Vec<DirEntry>>,
    /// The progress handles of tasks started and not yet run (held), as the runtime keeps
    /// them: `Effect::CancelTask` cancels through them.
    pub progress: HashMap<TaskId, Progress>,
    consoles: HashMap<ConsoleId, Link>,
}

/// The status line's text, empty when there is none.
pub fn status_text(harness: &Harness) -> String {
    harness
        .app
        .status
        .as_ref()
        .map(|s| s.text.clone())
        .unwrap_or_default()
}

impl Harness {
    /// An app of `width`×`height` over `host`, the default storage pool and no networks,
    /// after the first poll.
    pub fn sized(host: FakeHost, width: u16, height: u16) -> Harness {
        Harness::with_backends(host, FakeStorage::new(), FakeNetworks::new(), width, height)
    }

    /// An app of `width`×`height` over all three fakes, after the first poll.
    pub fn with_backends(
        host: FakeHost,
        storage: FakeStorage,
        networks: FakeNetworks,
        width: u16,
        height: u16,
    ) -> Harness {
        let theme = Theme::builtin("dark").expect("built in");
        let mut harness = Harness {
            host: Arc::new(host),
            storage: Arc::new(storage),
            networks: Arc::new(networks),
            hold_tasks: false,
            held: Vec::new(),
            remotes: HashMap::new(),
            settings_path: None,
            app: App::new(theme, Keymap::default()),
            clipboard: Vec::new(),
            dirs: HashMap::new(),
            progress: HashMap::new(),
            consoles: HashMap::new(),
        };
        harness.act(Action::Resize { width, height });
        harness.act(Action::HostMemory(HostMemory {
            total: 32 << 30,
            available: 20 << 30,
        }));
        harness.refresh();
        harness
    }

    /// An 80×24 app over `host`.
    pub fn new(host: FakeHost) -> Harness {
        Harness::sized(host, 80, 24)
    }

    /// Applies `action` and carries out every effect that follows from it.
    pub fn act(&mut self, action: Action) {
        update(&mut self.app, action);
        self.run_effects();
    }

    fn run_effects(&mut self) {
        loop {
            let effects = self.app.take_routed();
            if effects.is_empty() {
                return;
            }
            for effect in effects {
                self.run_effect(effect);
            }
        }
    }

    /// Applies `action` as a reply from `host` (wrapped as the runtime wraps a remote
    /// host's replies) and carries out what follows.
    pub fn reply(&mut self, host: &HostId, action: Action) {
        let action = match host {
            HostId::Local => action,
            HostId::Remote(_) => Action::OnHost {
                host: host.clone(),
                action: Box::new(action),
            },
        };
        update(&mut self.app, action);
    }

    /// Remote host `name`'s link came up with `backends`: what its worker reports (the
    /// state, then a poll).
    pub fn connect_remote(&mut self, name: &str, backends: HostApi) {
        self.remotes.insert(name.to_string(), backends);
        self.act(Action::HostState {
            name: name.to_string(),
            state: HostState::Connected,
        });
        self.refresh_host(&HostId::Remote(name.to_string()));
    }

    /// The backends of `host`, or why it cannot be reached (as the runtime says it).
    fn backends_of(&self, host: &HostId) -> Result<HostApi, String> {
        match host {
            HostId::Local => Ok(self.backends()),
            HostId::Remote(name) => self
                .remotes
                .get(name)
                .cloned()
                .ok_or_else(|| format!("host {name} is not connected")),
        }
    }

    /// One poll of `host` as its poller does it: the list, then stats of live VMs.
    pub fn refresh_host(&mut self, host: &HostId) {
        let Ok(backends) = self.backends_of(host) else {
            return;
        };
        self.reply(host, Action::Listed(backends.vms.list()));
        for status in backends.vms.list().into_iter().filter_map(Result::ok) {
            if status.pid.is_none() {
                continue;
            }
            let vm = status.config.name;
            if let Ok(info) = backends.vms.info(&vm) {
                self.reply(
                    host,
                    Action::Info {
                        vm: vm.clone(),
                        info,
                    },
                );
            }
            if let Ok(stats) = backends.vms.stats(&vm) {
                self.reply(host, Action::Stats { vm, stats });
            }
        }
        self.run_effects();
    }

    /// The backends the effects run against.
    pub fn backends(&self) -> HostApi {
        HostApi {
            vms: self.host.clone(),
            storage: self.storage.clone(),
            networks: self.networks.clone(),
        }
    }

    /// Runs the tasks held back by `hold_tasks`.
    pub fn release_tasks(&mut self) {
        self.hold_tasks = false;
        for routed in std::mem::take(&mut self.held) {
            self.run_effect(routed);
        }
        self.run_effects();
    }

    fn run_effect(&mut self, routed: Routed) {
        let Routed { host, effect } = routed;
        let backends = self.backends_of(&host);
        match effect {
            Effect::Host(op) => {
                let result = backends.and_then(|b| op.run(&b));
                self.reply(&host, Action::OpDone { op, result });
            }
            Effect::Task { id, .. } if self.hold_tasks => {
                self.progress.entry(id).or_default();
                self.held.push(Routed { host, effect });
            }
            Effect::Task { id, task } => {
                let progress = self.progress.remove(&id).unwrap_or_default();
                let outcome = match backends {
                    Ok(backends) => task.run(&backends, &progress),
                    Err(e) => vmux::tui::tasks::TaskOutcome::Failed(e),
                };
                self.reply(&host, Action::TaskDone { id, outcome });
            }
            Effect::CancelTask(id) => {
                if let Some(progress) = self.progress.get(&id) {
                    progress.cancel();
                }
            }
            Effect::ReadInfo(vm) => {
                if let Ok(info) =
                    backends.and_then(|b| b.vms.info(&vm).map_err(|e| error_chain(&e)))
                {
                    self.reply(&host, Action::Info { vm, info });
                }
            }
            Effect::LoadStorage => {
                let result =
                    backends.and_then(|b| b.storage.snapshot().map_err(|e| error_chain(&e)));
                self.reply(&host, Action::StorageLoaded(result));
            }
            Effect::LoadNetworks => {
                let result =
                    backends.and_then(|b| b.networks.snapshot().map_err(|e| error_chain(&e)));
                self.reply(&host, Action::NetworksLoaded(result));
            }
            Effect::Refresh if host == HostId::Local => self.poll(),
            Effect::Refresh => {
                if let Ok(backends) = backends {
                    self.reply(&host, Action::Listed(backends.vms.list()));
                }
            }
            Effect::Connect { .. } | Effect::Disconnect(_) => {}
            Effect::SaveHosts(hosts) => {
                let path = self
                    .settings_path
                    .clone()
                    .expect("a settings path for the hosts pane");
                let result = vmux::tui::hosts::config::save(&path, &hosts)
                    .map(|()| "hosts saved".to_string())
                    .map_err(|e| error_chain(&e));
                update(&mut self.app, Action::HostsSaved(result));
            }
            Effect::OpenConsole { id, vm, history } => match backends
                .and_then(|b| b.vms.console(&vm, history).map_err(|e| error_chain(&e)))
            {
                Ok(console) => {
                    let (tx, rx) = channel();
                    let mut output = console.output;
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = output.read(&mut buf) {
                            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                                return;
                            }
                        }
                    });
                    self.consoles.insert(
                        id,
                        Link {
                            input: console.input,
                            output: rx,
                        },
                    );
                    update(&mut self.app, Action::ConsoleOpened(id));
                }
                Err(reason) => update(&mut self.app, Action::ConsoleClosed { id, reason }),
            },
            Effect::ConsoleInput { id, bytes } => {
                if let Some(link) = self.consoles.get_mut(&id) {
                    link.input.write_all(&bytes).expect("fake console input");
                }
            }
            Effect::CloseConsole(id) => {
                self.consoles.remove(&id);
            }
            Effect::Clipboard(text) => self.clipboard.push(text),
            Effect::ListDir(dir) => {
                let result = self
                    .dirs
                    .get(&dir)
                    .cloned()
                    .ok_or_else(|| format!("cannot read {}", dir.display()));
                update(&mut self.app, Action::DirListed { dir, result });
            }
        }
    }

    fn poll(&mut self) {
        update(&mut self.app, Action::Listed(self.host.list()));
    }

    /// One poll as the runtime does it each second: list, then the live facts of VMs that
    /// started since the last poll, then stats of live VMs.
    pub fn refresh(&mut self) {
        self.poll();
        let live: Vec<(String, Option<u32>)> = self
            .host
            .list()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|s| s.pid.is_some())
            .map(|s| (s.config.name, s.pid))
            .collect();
        for (vm, pid) in live {
            let known = self
                .app
                .entry(&vm)
                .and_then(|e| e.info.as_ref())
                .is_some_and(|info| Some(info.pid) == pid);
            if !known && let Ok(info) = self.host.info(&vm) {
                self.act(Action::Info {
                    vm: vm.clone(),
                    info,
                });
            }
            if let Ok(stats) = self.host.stats(&vm) {
                self.act(Action::Stats { vm, stats });
            }
        }
        self.run_effects();
    }

    /// Presses a key.
    pub fn key(&mut self, code: KeyCode) {
        self.act(Action::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }

    /// Presses a character key (uppercase characters come with Shift, as terminals send).
    pub fn char(&mut self, c: char) {
        let modifiers = if c.is_ascii_uppercase() {
            KeyModifiers::SHIFT
        } else {
            KeyModifiers::NONE
        };
        self.act(Action::Key(KeyEvent::new(KeyCode::Char(c), modifiers)));
    }

    /// Presses Ctrl and `c`.
    pub fn ctrl(&mut self, c: char) {
        self.act(Action::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::CONTROL,
        )));
    }

    /// Types `text` one key at a time.
    pub fn type_text(&mut self, text: &str) {
        for c in text.chars() {
            self.char(c);
        }
    }

    /// Feeds guest output that has arrived to the app until the focused console shows
    /// `text` (or two seconds pass); says whether it appeared.
    pub fn wait_console(&mut self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let shown = self
                .app
                .focused_console()
                .is_some_and(|c| c.visible_text().contains(text));
            if shown {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            let ids: Vec<ConsoleId> = self.consoles.keys().copied().collect();
            for id in ids {
                let received = self
                    .consoles
                    .get(&id)
                    .map(|l| l.output.recv_timeout(Duration::from_millis(20)));
                if let Some(Ok(bytes)) = received {
                    self.act(Action::ConsoleOutput { id, bytes });
                }
            }
        }
    }

    /// The screen as text, one line per row (trailing spaces kept).
    pub fn screen(&self) -> String {
        render(&self.app, self.app.width, self.app.height)
    }
}

/// Renders `app` at `width`×`height` and returns the cells as text.
pub fn render(app: &App, width: u16, height: u16) -> String {
    let buffer = render_buffer(app, width, height);
    let mut text = String::new();
    for y in 0..buffer.area.height {
        for x in 0..buffer.area.width {
            text.push_str(buffer[(x, y)].symbol());
        }
        text.push('\n');
    }
    text
}

/// Renders `app` into a buffer of `width`×`height`.
pub fn render_buffer(app: &App, width: u16, height: u16) -> ratatui::buffer::Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    terminal
        .draw(|frame| ui::draw(app, frame))
        .expect("draw on a test backend");
    terminal.backend().buffer().clone()
}

/// Five VMs in every state: web1 and db (kernel boot) running, mail paused, cache crashed,
/// build shut off; plus one broken definition file.
pub fn fleet() -> FakeHost {
    let specs: [(&str, u32, u32, u64, bool); 5] = [
        ("web1", 2, 8, 1 << 30, true),
        ("db", 4, 8, 4 << 30, true),
        ("mail", 1, 4, 512 << 20, false),
        ("cache", 2, 4, 2 << 30, false),
        ("build", 8, 16, 8 << 30, true),
    ];
    let host = FakeHost::with_vms(specs.iter().map(|(name, vcpus, max, memory, auto)| {
        let mut config = VmConfig::new(name, BootConfig::Demo);
        config.vcpus = *vcpus;
        config.max_vcpus = *max;
        config.memory = *memory;
        config.autostart = *auto;
        if *name == "db" {
            config.boot = BootConfig::Kernel {
                kernel: "/srv/vmlinuz-6.1".into(),
                initrd: Some("/srv/initrd.img".into()),
                cmdline: "console=ttyS0 root=/dev/vda".into(),
            };
        }
        // The disks and NICs that fleet_storage and fleet_networks know about.
        let (disk, network, mac) = match *name {
            "web1" => (Some("default/web1.qcow2"), Some("default"), 0x1001),
            "db" => (Some("default/db.raw"), Some("default"), 0x1002),
            "build" => (Some("default/build.qcow2"), Some("lab"), 0x1003),
            _ => (None, None, 0),
        };
        config.disks = disk.map(|d| d.parse().expect("disk")).into_iter().collect();
        config.nics = network
            .map(|network| NicConfig {
                network: network.to_string(),
                mac: MacAddr::with_vmux_prefix(mac),
            })
            .into_iter()
            .collect();
        config
    }));
    for name in ["web1", "db", "mail", "cache"] {
        host.start(name).expect("start");
    }
    host.suspend("mail").expect("pause");
    host.crash(
        "cache",
        "guest fault: KVM internal error (emulation failure) at RIP 0xffffffff8100a3c2, bytes 0f c7 0e",
    );
    host.add_broken(
        "/home/u/.config/vmux/vms/old.toml",
        "unknown field `cpu`, expected `vcpus`",
    );
    host
}

/// Storage for [`fleet`]: `default` (active) holding web1's and db's disks, a base image
/// with a linked clone, and a file vmux cannot read; `scratch` (inactive); one broken pool
/// definition.
pub fn fleet_storage() -> FakeStorage {
    let storage = FakeStorage::new();
    storage.add_volume("default", "web1.qcow2", 20 << 30, 3 << 30);
    storage.set_users("default", "web1.qcow2", &["web1"], &["web1"]);
    storage.add_volume("default", "db.raw", 50 << 30, 12 << 30);
    storage.set_users("default", "db.raw", &["db"], &["db"]);
    storage.add_volume("default", "base.qcow2", 10 << 30, 1536 << 20);
    storage.add_volume("default", "build.qcow2", 10 << 30, 196 << 10);
    storage.set_backing("default", "build.qcow2", "base.qcow2");
    storage.set_users("default", "build.qcow2", &["build"], &[]);
    storage.add_unreadable(
        "default",
        "odd.qcow2",
        "not a qcow2 image: bad magic; rename it if it is raw",
    );
    storage.add_pool("scratch", "/srv/scratch", false);
    storage.add_broken("/home/u/.config/vmux/pools/old.toml: missing field `path`");
    storage
}

/// Networks for [`fleet`]: `default` (nat, active) with web1 and db leased, `lab`
/// (isolated, inactive, autostart) with build's NIC, `lan` (bridge on br0, inactive).
pub fn fleet_networks() -> FakeNetworks {
    use std::net::Ipv4Addr;
    use vmux::config::{Ipv4Net, MacAddr, NetworkConfig, NetworkMode};
    let networks = FakeNetworks::new();
    networks.add(NetworkConfig::default_network(), true);
    let subnet = Ipv4Net::new(Ipv4Addr::new(10, 77, 0, 0), 24).expect("subnet");
    let mut lab =
        NetworkConfig::routed("lab", NetworkMode::Isolated, "vmux-lab", subnet, None, None);
    lab.autostart = true;
    networks.add(lab, false);
    networks.add(NetworkConfig::bridged("lan", "br0"), false);
    let mac = |n| MacAddr::with_vmux_prefix(n);
    networks.attach(
        "default",
        "web1",
        mac(0x1001),
        Some(Ipv4Addr::new(192, 168, 123, 45)),
        true,
    );
    networks.attach(
        "default",
        "db",
        mac(0x1002),
        Some(Ipv4Addr::new(192, 168, 123, 46)),
        true,
    );
    networks.attach("lab", "build", mac(0x1003), None, false);
    networks
}

/// [`fleet`] with [`fleet_storage`] and [`fleet_networks`], after `seconds` polls so the
/// charts have history.
pub fn fleet_app(width: u16, height: u16, seconds: usize) -> Harness {
    let mut harness =
        Harness::with_backends(fleet(), fleet_storage(), fleet_networks(), width, height);
    for _ in 1..seconds {
        harness.refresh();
    }
    harness
}
