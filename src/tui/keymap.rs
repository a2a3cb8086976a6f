//! The data-driven keymap: which key runs which [`Command`] in which [`Context`].
//!
//! Defaults live in one table ([`COMMANDS`]); the settings file's `[keys]` table replaces the
//! keys of any command by name (`force_off = "ctrl-k"`, `quit = ["q", "f10"]`). The footer and
//! the `?` overlay are generated from the same table, so what is shown is what is bound.
//!
//! In the live console every printable key belongs to the guest, so bindings that are plain
//! characters are ignored there: only keys like `ctrl-]`, `f2` or `pgup` reach the TUI.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeMap;
use std::fmt;

/// Where the user is; decides which bindings apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    /// The VM list (home).
    List,
    /// The details pane of one VM.
    Details,
    /// An attached console, keys going to the guest.
    Console,
    /// A console in scrollback mode (keys drive scrolling and search).
    Scroll,
    /// The first-run welcome screen.
    Welcome,
    /// The storage pane (pools and volumes).
    Storage,
    /// The networks pane.
    Networks,
    /// The hosts pane.
    Hosts,
}

impl Context {
    /// Name shown in the help overlay.
    pub fn label(self) -> &'static str {
        match self {
            Context::List => "VM list",
            Context::Details => "VM details",
            Context::Console => "console",
            Context::Scroll => "console scrollback",
            Context::Welcome => "welcome",
            Context::Storage => "storage",
            Context::Networks => "networks",
            Context::Hosts => "hosts",
        }
    }
}

/// Everything a key can do outside text fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Command {
    /// Leave the TUI; VMs keep running.
    Quit,
    /// Show the keys of the current pane.
    Help,
    /// Open the `:` command palette.
    Palette,
    /// Filter the VM list.
    Filter,
    /// Open the creation wizard.
    New,
    /// Create, start and attach the built-in demo VM (welcome screen).
    Demo,
    /// Attach the console of the selected (or two marked) VMs.
    Attach,
    /// Toggle the details pane.
    Details,
    /// Start the VM(s).
    Start,
    /// Ask the guest to power off (ACPI power button).
    Shutdown,
    /// Stop at once (confirmed).
    ForceOff,
    /// Graceful reboot.
    Reboot,
    /// Hard reset.
    Reset,
    /// Pause or resume.
    Pause,
    /// Toggle autostart.
    Autostart,
    /// Edit the definition.
    Edit,
    /// Delete the definition (confirmed).
    Delete,
    /// Mark or unmark the selected VM for a bulk action.
    Mark,
    /// Mark every listed VM, or clear all marks.
    MarkAll,
    /// Sort by the next column.
    Sort,
    /// Reverse the sort order.
    SortReverse,
    /// Move up one row.
    Up,
    /// Move down one row.
    Down,
    /// Move up one page.
    PageUp,
    /// Move down one page.
    PageDown,
    /// Go to the first row.
    Top,
    /// Go to the last row.
    Bottom,
    /// Go back (close details, leave scrollback, clear marks and filter).
    Back,
    /// Leave the console; the VM keeps running.
    Detach,
    /// Enter scrollback and go up a page.
    Scrollback,
    /// Search the scrollback.
    Search,
    /// Next search match (older).
    NextMatch,
    /// Previous search match (newer).
    PrevMatch,
    /// Copy the selection (or the visible screen) to the clipboard (OSC 52).
    Copy,
    /// Move focus to the other console of a split view.
    OtherConsole,
    /// Show the VM list.
    ShowVms,
    /// Show the storage pane.
    ShowStorage,
    /// Show the networks pane.
    ShowNetworks,
    /// Show the hosts pane.
    ShowHosts,
    /// Add a remote host (form).
    HostAdd,
    /// Remove the selected remote host (asks first).
    HostRemove,
    /// Connect the selected remote host.
    HostConnect,
    /// Disconnect the selected remote host.
    HostDisconnect,
    /// Show the running tasks (progress; cancel one).
    Tasks,
    /// Move the keys to the other list of the pane (pools / volumes).
    FocusNext,
    /// New volume (dialog).
    VolNew,
    /// Resize the selected volume (dialog).
    VolResize,
    /// Clone the selected volume (dialog).
    VolClone,
    /// Convert the selected volume to another format (dialog).
    VolConvert,
    /// Replace the selected volume's content with an image file's (dialog).
    VolUpload,
    /// Overwrite the selected volume with zeroes (asks first).
    VolWipe,
    /// Delete the selected volume (asks first).
    VolDelete,
    /// Start the selected pool.
    PoolStart,
    /// Stop the selected pool (asks first).
    PoolStop,
    /// Toggle the selected pool's autostart.
    PoolAutostart,
    /// Define a network (dialog).
    NetNew,
    /// Start the selected network.
    NetStart,
    /// Stop the selected network (asks first).
    NetStop,
    /// Delete the selected network's definition (asks first).
    NetDelete,
    /// Toggle the selected network's autostart.
    NetAutostart,
    /// One vCPU more (running VMs: hot-add).
    VcpuAdd,
    /// One vCPU fewer (running VMs: the guest ejects it).
    VcpuRemove,
    /// Add a disk (dialog; running VMs: hot-add).
    DiskAdd,
    /// Remove a disk (dialog; running VMs: the guest ejects it).
    DiskRemove,
    /// Save a running VM to disk and stop it (asks first); starting it resumes it.
    Save,
    /// Less memory for the guest (running VMs: through the balloon).
    MemoryDown,
    /// More memory for the guest, up to its defined memory.
    MemoryUp,
}

/// One row of the defaults table.
pub struct CommandSpec {
    /// The command.
    pub command: Command,
    /// Its name in the settings file's `[keys]` table and in messages.
    pub name: &'static str,
    /// What it does, for the help overlay.
    pub description: &'static str,
    /// Where it applies.
    pub contexts: &'static [Context],
    /// Default keys, in the syntax of [`KeyCombo::parse`].
    pub keys: &'static [&'static str],
}

use Context::{
    Console, Details as DetailsPane, Hosts as HostsPane, List, Networks as NetworksPane, Scroll,
    Storage as StoragePane, Welcome,
};

/// Where the pane-switching keys work: every top-level pane.
const EVERY_PANE: &[Context] = &[
    List,
    DetailsPane,
    Welcome,
    StoragePane,
    NetworksPane,
    HostsPane,
];

/// The defaults; order is the order of the footer and the help overlay.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        Command::Demo,
        "demo",
        "create, start and attach the demo VM",
        &[Welcome],
        &["enter"],
    ),
    spec(
        Command::Attach,
        "attach",
        "attach console (marked VMs: theirs, two side by side)",
        &[List, DetailsPane],
        &["enter", "c"],
    ),
    spec(
        Command::Start,
        "start",
        "start",
        &[List, DetailsPane],
        &["s"],
    ),
    spec(
        Command::Shutdown,
        "shutdown",
        "shut down (ACPI power button)",
        &[List, DetailsPane],
        &["d"],
    ),
    spec(
        Command::ForceOff,
        "force_off",
        "force off (asks first)",
        &[List, DetailsPane],
        &["D"],
    ),
    spec(
        Command::Reboot,
        "reboot",
        "reboot",
        &[List, DetailsPane],
        &["r"],
    ),
    spec(
        Command::Reset,
        "reset",
        "hard reset",
        &[List, DetailsPane],
        &["R"],
    ),
    spec(
        Command::Pause,
        "pause",
        "pause / resume",
        &[List, DetailsPane],
        &["p"],
    ),
    spec(
        Command::Autostart,
        "autostart",
        "toggle autostart",
        &[List, DetailsPane],
        &["a"],
    ),
    spec(
        Command::Edit,
        "edit",
        "edit definition",
        &[List, DetailsPane],
        &["e"],
    ),
    spec(
        Command::Delete,
        "delete",
        "delete definition (asks first)",
        &[List, DetailsPane],
        &["delete", "U"],
    ),
    spec(
        Command::VcpuAdd,
        "vcpu_add",
        "one vCPU more (running: hot-add, also at next boot)",
        &[List, DetailsPane],
        &["+"],
    ),
    spec(
        Command::VcpuRemove,
        "vcpu_remove",
        "one vCPU fewer (running: the guest ejects it)",
        &[List, DetailsPane],
        &["-"],
    ),
    spec(
        Command::DiskAdd,
        "disk_add",
        "add a disk (running: hot-add)",
        &[List, DetailsPane],
        &["A"],
    ),
    spec(
        Command::DiskRemove,
        "disk_remove",
        "remove a disk (asks first)",
        &[List, DetailsPane],
        &["X"],
    ),
    spec(
        Command::Save,
        "save",
        "save to disk and stop (asks first); start resumes it",
        &[List, DetailsPane],
        &["S"],
    ),
    spec(
        Command::MemoryDown,
        "memory_down",
        "less memory (running: the balloon takes it back)",
        &[List, DetailsPane],
        &["["],
    ),
    spec(
        Command::MemoryUp,
        "memory_up",
        "more memory, up to the defined memory",
        &[List, DetailsPane],
        &["]"],
    ),
    spec(
        Command::New,
        "new",
        "new VM (wizard)",
        &[List, Welcome, HostsPane],
        &["n"],
    ),
    spec(
        Command::Details,
        "details",
        "details pane on/off",
        &[List, DetailsPane],
        &["tab", "i"],
    ),
    spec(
        Command::Mark,
        "mark",
        "mark for a bulk action (each asks first)",
        &[List],
        &["space"],
    ),
    spec(
        Command::MarkAll,
        "mark_all",
        "mark all / clear marks",
        &[List],
        &["*"],
    ),
    spec(
        Command::Filter,
        "filter",
        "filter by name or state",
        &[List],
        &["/"],
    ),
    spec(
        Command::Sort,
        "sort",
        "sort by next column",
        &[List],
        &["o"],
    ),
    spec(
        Command::SortReverse,
        "sort_reverse",
        "reverse sort order",
        &[List],
        &["O"],
    ),
    spec(
        Command::VolNew,
        "vol_new",
        "new volume",
        &[StoragePane],
        &["n"],
    ),
    spec(
        Command::VolResize,
        "vol_resize",
        "resize volume",
        &[StoragePane],
        &["r"],
    ),
    spec(
        Command::VolClone,
        "vol_clone",
        "clone volume (full or linked)",
        &[StoragePane],
        &["c"],
    ),
    spec(
        Command::VolConvert,
        "vol_convert",
        "convert volume (raw / qcow2)",
        &[StoragePane],
        &["v"],
    ),
    spec(
        Command::VolUpload,
        "vol_upload",
        "upload an image file into the volume (asks first)",
        &[StoragePane],
        &["u"],
    ),
    spec(
        Command::VolWipe,
        "vol_wipe",
        "wipe volume: overwrite with zeroes (asks first)",
        &[StoragePane],
        &["W"],
    ),
    spec(
        Command::VolDelete,
        "vol_delete",
        "delete volume (asks first)",
        &[StoragePane],
        &["delete", "U"],
    ),
    spec(
        Command::PoolStart,
        "pool_start",
        "start pool",
        &[StoragePane],
        &["s"],
    ),
    spec(
        Command::PoolStop,
        "pool_stop",
        "stop pool (asks first; volumes are kept)",
        &[StoragePane],
        &["d"],
    ),
    spec(
        Command::PoolAutostart,
        "pool_autostart",
        "toggle pool autostart",
        &[StoragePane],
        &["a"],
    ),
    spec(
        Command::FocusNext,
        "focus_next",
        "switch between pools and volumes",
        &[StoragePane],
        &["tab", "left", "right"],
    ),
    spec(
        Command::NetNew,
        "net_new",
        "define a network",
        &[NetworksPane],
        &["n"],
    ),
    spec(
        Command::NetStart,
        "net_start",
        "start network (needs CAP_NET_ADMIN)",
        &[NetworksPane],
        &["s"],
    ),
    spec(
        Command::NetStop,
        "net_stop",
        "stop network (asks first)",
        &[NetworksPane],
        &["d"],
    ),
    spec(
        Command::NetDelete,
        "net_delete",
        "delete network definition (asks first)",
        &[NetworksPane],
        &["delete", "U"],
    ),
    spec(
        Command::NetAutostart,
        "net_autostart",
        "toggle network autostart",
        &[NetworksPane],
        &["a"],
    ),
    spec(Command::ShowVms, "show_vms", "VM list", EVERY_PANE, &["1"]),
    spec(
        Command::ShowStorage,
        "show_storage",
        "storage pools and volumes",
        EVERY_PANE,
        &["2"],
    ),
    spec(
        Command::ShowNetworks,
        "show_networks",
        "networks",
        EVERY_PANE,
        &["3"],
    ),
    spec(
        Command::ShowHosts,
        "show_hosts",
        "hosts: add, remove, connect, disconnect",
        EVERY_PANE,
        &["H", "4"],
    ),
    spec(
        Command::HostAdd,
        "host_add",
        "add a remote host (ssh://)",
        &[HostsPane],
        &["a"],
    ),
    spec(
        Command::HostConnect,
        "host_connect",
        "connect host",
        &[HostsPane],
        &["c", "enter"],
    ),
    spec(
        Command::HostDisconnect,
        "host_disconnect",
        "disconnect host",
        &[HostsPane],
        &["d"],
    ),
    spec(
        Command::HostRemove,
        "host_remove",
        "remove host (asks first)",
        &[HostsPane],
        &["delete", "U"],
    ),
    spec(
        Command::Tasks,
        "tasks",
        "running tasks: progress, x cancels one",
        &[List, DetailsPane, StoragePane, NetworksPane, HostsPane],
        &["T"],
    ),
    spec(
        Command::Detach,
        "detach",
        "detach (VM keeps running)",
        &[Console, Scroll],
        &["ctrl-]"],
    ),
    spec(
        Command::Scrollback,
        "scrollback",
        "scroll back (then / search)",
        &[Console],
        &["pgup", "shift-up"],
    ),
    spec(
        Command::OtherConsole,
        "other_console",
        "switch split console",
        &[Console, Scroll],
        &["f2"],
    ),
    spec(
        Command::Search,
        "search",
        "search scrollback",
        &[Scroll],
        &["/"],
    ),
    spec(
        Command::NextMatch,
        "next_match",
        "next match (older)",
        &[Scroll],
        &["n"],
    ),
    spec(
        Command::PrevMatch,
        "prev_match",
        "previous match (newer)",
        &[Scroll],
        &["N"],
    ),
    spec(
        Command::Copy,
        "copy",
        "copy selection or screen (OSC 52)",
        &[Scroll],
        &["y"],
    ),
    spec(
        Command::Up,
        "up",
        "up",
        &[
            List,
            DetailsPane,
            Scroll,
            StoragePane,
            NetworksPane,
            HostsPane,
        ],
        &["up", "k"],
    ),
    spec(
        Command::Down,
        "down",
        "down",
        &[
            List,
            DetailsPane,
            Scroll,
            StoragePane,
            NetworksPane,
            HostsPane,
        ],
        &["down", "j"],
    ),
    spec(
        Command::PageUp,
        "page_up",
        "page up",
        &[List, Scroll, StoragePane, NetworksPane, HostsPane],
        &["pgup"],
    ),
    spec(
        Command::PageDown,
        "page_down",
        "page down",
        &[List, Scroll, StoragePane, NetworksPane, HostsPane],
        &["pgdn"],
    ),
    spec(
        Command::Top,
        "top",
        "first / oldest",
        &[
            List,
            DetailsPane,
            Scroll,
            StoragePane,
            NetworksPane,
            HostsPane,
        ],
        &["home", "g"],
    ),
    spec(
        Command::Bottom,
        "bottom",
        "last / newest",
        &[
            List,
            DetailsPane,
            Scroll,
            StoragePane,
            NetworksPane,
            HostsPane,
        ],
        &["end", "G"],
    ),
    spec(
        Command::Back,
        "back",
        "back",
        &[
            List,
            DetailsPane,
            Scroll,
            StoragePane,
            NetworksPane,
            HostsPane,
        ],
        &["esc"],
    ),
    spec(
        Command::Palette,
        "palette",
        "command palette (:start web1)",
        &[List, DetailsPane, StoragePane, NetworksPane, HostsPane],
        &[":"],
    ),
    spec(
        Command::Help,
        "help",
        "help",
        &[
            List,
            DetailsPane,
            Console,
            Scroll,
            Welcome,
            StoragePane,
            NetworksPane,
            HostsPane,
        ],
        &["?", "f1"],
    ),
    spec(
        Command::Quit,
        "quit",
        "quit (VMs keep running)",
        EVERY_PANE,
        &["q", "ctrl-c"],
    ),
];

const fn spec(
    command: Command,
    name: &'static str,
    description: &'static str,
    contexts: &'static [Context],
    keys: &'static [&'static str],
) -> CommandSpec {
    CommandSpec {
        command,
        name,
        description,
        contexts,
        keys,
    }
}

/// Problems in the `[keys]` table of the settings file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeymapError {
    /// The table names an action that does not exist.
    #[error("unknown action '{name}' in [keys]; known actions: {known}")]
    UnknownAction {
        /// The name given.
        name: String,
        /// Every valid name.
        known: String,
    },
    /// A key could not be parsed.
    #[error("[keys] {action}: {reason}")]
    BadKey {
        /// The action whose key is wrong.
        action: String,
        /// Why.
        reason: String,
    },
    /// Two actions share a key where both apply.
    #[error(
        "key {key} is bound to both '{first}' and '{second}' in the {context}; change one in [keys]"
    )]
    Conflict {
        /// The key.
        key: String,
        /// One action.
        first: &'static str,
        /// The other.
        second: &'static str,
        /// Where both apply.
        context: &'static str,
    },
}

/// A key with modifiers, normalized so that a configured key and a pressed key compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyCombo {
    /// The key.
    pub code: KeyCode,
    /// Ctrl / Alt (Shift is folded into the character for printable keys).
    pub modifiers: KeyModifiers,
}

impl KeyCombo {
    /// Normalizes a pressed key: Shift is dropped from characters (the case says it), and the
    /// legacy encodings of ctrl-\ ] ^ _ (reported as ctrl-4..7) are mapped back.
    pub fn from_event(event: &KeyEvent) -> KeyCombo {
        let mut modifiers = event.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        let code = match event.code {
            KeyCode::Char(c) if modifiers.contains(KeyModifiers::CONTROL) => {
                KeyCode::Char(match c {
                    '4' => '\\',
                    '5' => ']',
                    '6' => '^',
                    '7' => '_',
                    c => c.to_ascii_lowercase(),
                })
            }
            KeyCode::Char(c) => KeyCode::Char(c),
            KeyCode::BackTab => {
                modifiers |= KeyModifiers::SHIFT;
                KeyCode::Tab
            }
            other => {
                modifiers |= event.modifiers & KeyModifiers::SHIFT;
                other
            }
        };
        KeyCombo { code, modifiers }
    }

    /// Parses `s`, `S`, `ctrl-]`, `alt-x`, `shift-up`, `enter`, `space`, `f2`, `pgup`, `del`.
    pub fn parse(text: &str) -> Result<KeyCombo, String> {
        let mut modifiers = KeyModifiers::NONE;
        let mut rest = text;
        loop {
            let lower = rest.to_ascii_lowercase();
            let (prefix, flag) = if lower.starts_with("ctrl-") && rest.len() > 5 {
                ("ctrl-", KeyModifiers::CONTROL)
            } else if lower.starts_with("alt-") && rest.len() > 4 {
                ("alt-", KeyModifiers::ALT)
            } else if lower.starts_with("shift-") && rest.len() > 6 {
                ("shift-", KeyModifiers::SHIFT)
            } else {
                break;
            };
            modifiers |= flag;
            rest = &rest[prefix.len()..];
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => {
                if modifiers.contains(KeyModifiers::SHIFT) {
                    return Err(format!(
                        "'{text}': write shifted characters as the character itself ('{}')",
                        c.to_ascii_uppercase()
                    ));
                }
                if modifiers.contains(KeyModifiers::CONTROL) {
                    KeyCode::Char(c.to_ascii_lowercase())
                } else {
                    KeyCode::Char(c)
                }
            }
            _ => named_key(&rest.to_ascii_lowercase()).ok_or_else(|| {
                format!(
                    "'{text}' is not a key; use a character, a name (enter, esc, tab, space, \
                     up, down, left, right, pgup, pgdn, home, end, delete, insert, backspace, \
                     f1..f12) and ctrl-/alt-/shift- prefixes"
                )
            })?,
        };
        Ok(KeyCombo { code, modifiers })
    }

    /// Whether this key types a character (which the live console gives to the guest).
    pub fn is_printable(&self) -> bool {
        matches!(self.code, KeyCode::Char(_))
            && !self
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
    }
}

fn named_key(name: &str) -> Option<KeyCode> {
    Some(match name {
        "enter" | "return" => KeyCode::Enter,
        "esc" | "escape" => KeyCode::Esc,
        "tab" => KeyCode::Tab,
        "space" => KeyCode::Char(' '),
        "backspace" => KeyCode::Backspace,
        "delete" | "del" => KeyCode::Delete,
        "insert" | "ins" => KeyCode::Insert,
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "pgup" | "pageup" => KeyCode::PageUp,
        "pgdn" | "pgdown" | "pagedown" => KeyCode::PageDown,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        f if f.starts_with('f') => {
            let n: u8 = f[1..].parse().ok()?;
            if !(1..=12).contains(&n) {
                return None;
            }
            KeyCode::F(n)
        }
        _ => return None,
    })
}

impl fmt::Display for KeyCombo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            f.write_str("Ctrl-")?;
        }
        if self.modifiers.contains(KeyModifiers::ALT) {
            f.write_str("Alt-")?;
        }
        if self.modifiers.contains(KeyModifiers::SHIFT) {
            f.write_str("Shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::Backspace => f.write_str("Bksp"),
            KeyCode::Delete => f.write_str("Del"),
            KeyCode::Insert => f.write_str("Ins"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::F(n) => write!(f, "F{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Keys a user may give for one action: one string or a list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(untagged)]
pub enum KeyList {
    /// `start = "s"`
    One(String),
    /// `quit = ["q", "f10"]`
    Many(Vec<String>),
}

impl KeyList {
    fn items(&self) -> Vec<&str> {
        match self {
            KeyList::One(key) => vec![key.as_str()],
            KeyList::Many(keys) => keys.iter().map(String::as_str).collect(),
        }
    }
}

/// One command with its current keys.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The defaults row (name, description, contexts).
    pub spec: &'static CommandSpec,
    /// The keys, defaults or the user's.
    pub keys: Vec<KeyCombo>,
}

/// The active keymap.
#[derive(Debug, Clone)]
pub struct Keymap {
    bindings: Vec<Binding>,
}

impl fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Default for Keymap {
    fn default() -> Keymap {
        Keymap {
            bindings: COMMANDS
                .iter()
                .map(|spec| Binding {
                    spec,
                    keys: spec
                        .keys
                        .iter()
                        .map(|k| KeyCombo::parse(k).expect("default keys parse"))
                        .collect(),
                })
                .collect(),
        }
    }
}

impl Keymap {
    /// The defaults with the user's `[keys]` applied; refuses unknown actions, bad keys and
    /// keys that would run two actions in one place.
    pub fn with_overrides(overrides: &BTreeMap<String, KeyList>) -> Result<Keymap, KeymapError> {
        let mut keymap = Keymap::default();
        for (name, keys) in overrides {
            let binding = keymap
                .bindings
                .iter_mut()
                .find(|b| b.spec.name == name.as_str())
                .ok_or_else(|| KeymapError::UnknownAction {
                    name: name.clone(),
                    known: COMMANDS
                        .iter()
                        .map(|c| c.name)
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            binding.keys = keys
                .items()
                .into_iter()
                .map(|k| {
                    KeyCombo::parse(k).map_err(|reason| KeymapError::BadKey {
                        action: name.clone(),
                        reason,
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        keymap.check_conflicts()?;
        Ok(keymap)
    }

    fn check_conflicts(&self) -> Result<(), KeymapError> {
        for (i, a) in self.bindings.iter().enumerate() {
            for b in &self.bindings[i + 1..] {
                for key in a.keys.iter().filter(|k| b.keys.contains(k)) {
                    // Printable keys never apply in the live console, so they cannot clash
                    // there.
                    let shared = a.spec.contexts.iter().copied().find(|c| {
                        b.spec.contexts.contains(c)
                            && !(*c == Context::Console && key.is_printable())
                    });
                    if let Some(context) = shared {
                        return Err(KeymapError::Conflict {
                            key: key.to_string(),
                            first: a.spec.name,
                            second: b.spec.name,
                            context: context.label(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The command `key` runs in `context`, if any.
    pub fn lookup(&self, context: Context, key: &KeyEvent) -> Option<Command> {
        let combo = KeyCombo::from_event(key);
        if context == Context::Console && combo.is_printable() {
            return None;
        }
        self.bindings
            .iter()
            .find(|b| b.spec.contexts.contains(&context) && b.keys.contains(&combo))
            .map(|b| b.spec.command)
    }

    /// The keys of `command` usable in `context` (empty when it has none there).
    pub fn keys(&self, context: Context, command: Command) -> Vec<KeyCombo> {
        self.bindings
            .iter()
            .filter(|b| b.spec.command == command && b.spec.contexts.contains(&context))
            .flat_map(|b| b.keys.iter().copied())
            .filter(|k| !(context == Context::Console && k.is_printable()))
            .collect()
    }

    /// The first key of `command` in `context`, as shown in the footer.
    pub fn label(&self, context: Context, command: Command) -> Option<String> {
        self.keys(context, command).first().map(ToString::to_string)
    }

    /// Every binding of `context`: (keys joined, description), in table order.
    pub fn help(&self, context: Context) -> Vec<(String, &'static str)> {
        self.bindings
            .iter()
            .filter(|b| b.spec.contexts.contains(&context))
            .filter_map(|b| {
                let keys = self.keys(context, b.spec.command);
                (!keys.is_empty()).then(|| {
                    let joined: Vec<String> = keys.iter().map(ToString::to_string).collect();
                    (joined.join(" "), b.spec.description)
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn default_table_has_no_conflicts() {
        assert_eq!(Keymap::default().check_conflicts(), Ok(()));
    }

    #[test]
    fn legacy_ctrl_5_is_the_detach_key() {
        let keymap = Keymap::default();
        let pressed = key(KeyCode::Char('5'), KeyModifiers::CONTROL);
        assert_eq!(
            keymap.lookup(Context::Console, &pressed),
            Some(Command::Detach)
        );
    }

    #[test]
    fn shifted_letter_matches_uppercase_binding() {
        let keymap = Keymap::default();
        let pressed = key(KeyCode::Char('D'), KeyModifiers::SHIFT);
        assert_eq!(
            keymap.lookup(Context::List, &pressed),
            Some(Command::ForceOff)
        );
    }

    #[test]
    fn printable_keys_go_to_the_guest_in_the_live_console() {
        let keymap = Keymap::default();
        let question = key(KeyCode::Char('?'), KeyModifiers::NONE);
        assert_eq!(keymap.lookup(Context::Console, &question), None);
        let f1 = key(KeyCode::F(1), KeyModifiers::NONE);
        assert_eq!(keymap.lookup(Context::Console, &f1), Some(Command::Help));
    }

    #[test]
    fn user_override_replaces_the_default_keys() {
        let overrides = BTreeMap::from([("start".to_string(), KeyList::One("f5".into()))]);
        let keymap = Keymap::with_overrides(&overrides).expect("valid");
        let f5 = key(KeyCode::F(5), KeyModifiers::NONE);
        assert_eq!(keymap.lookup(Context::List, &f5), Some(Command::Start));
        let s = key(KeyCode::Char('s'), KeyModifiers::NONE);
        assert_eq!(keymap.lookup(Context::List, &s), None);
    }

    #[test]
    fn unknown_action_names_the_valid_ones() {
        let overrides = BTreeMap::from([("strat".to_string(), KeyList::One("s".into()))]);
        let err = Keymap::with_overrides(&overrides).expect_err("must fail");
        assert!(err.to_string().contains("'strat'") && err.to_string().contains("start"));
    }

    #[test]
    fn override_that_collides_is_refused_with_both_names() {
        let overrides = BTreeMap::from([("start".to_string(), KeyList::One("d".into()))]);
        let err = Keymap::with_overrides(&overrides).expect_err("must fail");
        let text = err.to_string();
        assert!(
            text.contains("start") && text.contains("shutdown"),
            "{text}"
        );
    }

    #[test]
    fn key_names_parse_with_modifiers() {
        let combo = KeyCombo::parse("ctrl-alt-x").expect("parse");
        assert_eq!(combo.code, KeyCode::Char('x'));
        assert_eq!(combo.modifiers, KeyModifiers::CONTROL | KeyModifiers::ALT);
        assert!(KeyCombo::parse("hyper-x").is_err());
        assert!(KeyCombo::parse("f13").is_err());
    }

    #[test]
    fn help_lists_keys_with_descriptions() {
        let help = Keymap::default().help(Context::Console);
        assert!(help.iter().any(|(keys, _)| keys == "Ctrl-]"), "{help:?}");
    }
}
