//! Runs a parsed grub.cfg the way GRUB would up to its menu, without side effects: `set`,
//! `unset`, assignments, `if` with `[`/`test` conditions, `search` (answered from the disk's
//! partitions through [`Host`]), and `menuentry`/`submenu` definitions. Loops and functions are
//! never run, `source`/`configfile` are not followed (a note says so), and a step limit ends a
//! run that would take too long. Then [`boot_commands`] runs the chosen entry's body to find
//! its `linux` and `initrd` commands.

use super::lexer::{Part, Word};
use super::parser::Stmt;
use std::collections::BTreeMap;

/// Most statements run in one evaluation.
pub const MAX_STEPS: usize = 100_000;
/// Longest variable value or argument.
pub const MAX_VALUE: usize = 64 * 1024;
/// Most variables.
pub const MAX_VARS: usize = 4096;
/// Most menu items (entries and submenus, all levels).
pub const MAX_ITEMS: usize = 4096;

/// What the evaluator asks about the disk.
pub trait Host {
    /// The GRUB device (`hd0,gpt2`) of the filesystem with this UUID.
    fn find_uuid(&self, uuid: &str) -> Option<String>;
    /// The device of the filesystem with this label.
    fn find_label(&self, label: &str) -> Option<String>;
    /// The first device holding this file.
    fn find_file(&self, path: &str) -> Option<String>;
    /// Whether `path` exists on `device` (`test -e` and friends).
    fn file_exists(&self, device: &str, path: &str) -> bool;
}

/// A `menuentry`.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its title.
    pub title: String,
    /// Its `--id`.
    pub id: Option<String>,
    /// Its body, run when it is chosen.
    pub body: Vec<Stmt>,
}

/// A menu item.
#[derive(Debug, Clone)]
pub enum Item {
    /// A boot entry.
    Entry(Entry),
    /// A submenu.
    Submenu {
        /// Its title.
        title: String,
        /// Its `--id`.
        id: Option<String>,
        /// Its items.
        items: Vec<Item>,
    },
}

impl Item {
    fn matches(&self, key: &str) -> bool {
        let (title, id) = match self {
            Item::Entry(e) => (&e.title, &e.id),
            Item::Submenu { title, id, .. } => (title, id),
        };
        id.as_deref() == Some(key) || title == key
    }
}

/// Why evaluation stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    /// 1-based line.
    pub line: usize,
    /// What went wrong.
    pub reason: String,
}

/// Variables, with the limits applied.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
    status: bool,
}

impl Env {
    /// An environment holding `vars`.
    pub fn new(vars: BTreeMap<String, String>) -> Env {
        Env { vars, status: true }
    }

    /// The value of `name` ("" when unset).
    pub fn get(&self, name: &str) -> &str {
        match name {
            "?" => {
                if self.status {
                    "0"
                } else {
                    "1"
                }
            }
            _ => self.vars.get(name).map_or("", String::as_str),
        }
    }

    fn set(&mut self, name: &str, value: String, line: usize) -> Result<(), EvalError> {
        if value.len() > MAX_VALUE {
            return Err(EvalError {
                line,
                reason: format!("variable {name} grows past {MAX_VALUE} bytes"),
            });
        }
        if self.vars.len() >= MAX_VARS && !self.vars.contains_key(name) {
            return Err(EvalError {
                line,
                reason: format!("more than {MAX_VARS} variables"),
            });
        }
        self.vars.insert(name.to_string(), value);
        Ok(())
    }
}

/// The result of running grub.cfg's top level.
#[derive(Debug)]
pub struct Menu {
    /// Top-level items.
    pub items: Vec<Item>,
    /// Variables at the end (`default` among them).
    pub env: Env,
    /// How `default` was last written, unexpanded (`${saved_entry}`), for messages.
    pub default_source: Option<String>,
    /// Remarks for the user.
    pub notes: Vec<String>,
}

/// Runs `stmts` (grub.cfg's top level) in `env`.
pub fn run_menu(stmts: &[Stmt], env: Env, host: &dyn Host) -> Result<Menu, EvalError> {
    let mut interp = Interp {
        env,
        host,
        steps: 0,
        items_seen: 0,
        default_source: None,
        notes: Vec::new(),
        boot: None,
    };
    let items = interp.block(stmts)?;
    Ok(Menu {
        items,
        env: interp.env,
        default_source: interp.default_source,
        notes: interp.notes,
    })
}

/// A file a boot command names: the GRUB device it is on and its path there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileArg {
    /// `hd0,gpt1` (or whatever the config wrote, e.g. `lvm/vg-root`).
    pub device: String,
    /// The path, as written after the device.
    pub path: String,
}

/// What a chosen entry's body does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootCommands {
    /// The last `linux` command: kernel file and its arguments (the command line).
    pub linux: Option<(FileArg, Vec<String>)>,
    /// Files of the last `initrd` command.
    pub initrds: Vec<FileArg>,
    /// A loader command that is not Linux (`chainloader`, `multiboot2`, ...).
    pub other: Option<String>,
}

/// Runs `entry`'s body in (a copy of) `env` and returns its boot commands.
pub fn boot_commands(entry: &Entry, env: &Env, host: &dyn Host) -> Result<BootCommands, EvalError> {
    let mut interp = Interp {
        env: env.clone(),
        host,
        steps: 0,
        items_seen: 0,
        default_source: None,
        notes: Vec::new(),
        boot: Some(BootCommands::default()),
    };
    interp.block(&entry.body)?;
    Ok(interp.boot.unwrap_or_default())
}

struct Interp<'h> {
    env: Env,
    host: &'h dyn Host,
    steps: usize,
    items_seen: usize,
    default_source: Option<String>,
    notes: Vec<String>,
    /// `Some` while running a chosen entry's body.
    boot: Option<BootCommands>,
}

impl Interp<'_> {
    /// Runs a block; returns the menu items it defined.
    fn block(&mut self, stmts: &[Stmt]) -> Result<Vec<Item>, EvalError> {
        let mut items = Vec::new();
        for stmt in stmts {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Err(EvalError {
                    line: stmt_line(stmt),
                    reason: format!("running it takes more than {MAX_STEPS} steps"),
                });
            }
            match stmt {
                Stmt::Command { words, line } => {
                    self.env.status = self.command(words, *line)?;
                }
                Stmt::If {
                    branches,
                    otherwise,
                } => {
                    let mut taken = false;
                    for (cond, body) in branches {
                        items.extend(self.block(cond)?);
                        if self.env.status {
                            items.extend(self.block(body)?);
                            taken = true;
                            break;
                        }
                    }
                    if !taken {
                        items.extend(self.block(otherwise)?);
                    }
                }
                Stmt::Menu {
                    submenu,
                    args,
                    body,
                    line,
                } => {
                    self.items_seen += 1;
                    if self.items_seen > MAX_ITEMS {
                        return Err(EvalError {
                            line: *line,
                            reason: format!("more than {MAX_ITEMS} menu entries"),
                        });
                    }
                    let (title, id) = self.menu_args(args, *line)?;
                    if *submenu {
                        let saved = self.env.clone();
                        let sub = self.block(body)?;
                        self.env = saved;
                        items.push(Item::Submenu {
                            title,
                            id,
                            items: sub,
                        });
                    } else {
                        items.push(Item::Entry(Entry {
                            title,
                            id,
                            body: body.clone(),
                        }));
                    }
                }
                Stmt::Function | Stmt::Loop => {}
            }
        }
        Ok(items)
    }

    /// Title and `--id` of a menuentry/submenu.
    fn menu_args(
        &mut self,
        args: &[Word],
        line: usize,
    ) -> Result<(String, Option<String>), EvalError> {
        let fields = self.expand_all(args, line)?;
        let mut title = None;
        let mut id = None;
        let mut i = 0;
        while i < fields.len() {
            let f = &fields[i];
            if let Some(value) = f.strip_prefix("--id=") {
                id = Some(value.to_string());
            } else if matches!(
                f.as_str(),
                "--id" | "--class" | "--users" | "--hotkey" | "--source"
            ) {
                if f == "--id" {
                    id = fields.get(i + 1).cloned();
                }
                i += 1;
            } else if f.starts_with("--") {
                // --unrestricted and other flags without a value.
            } else if title.is_none() {
                title = Some(f.clone());
            }
            i += 1;
        }
        Ok((title.unwrap_or_default(), id))
    }

    fn command(&mut self, words: &[Word], line: usize) -> Result<bool, EvalError> {
        let fields = self.expand_all(words, line)?;
        let Some(name) = fields.first() else {
            return Ok(true);
        };
        if let Some((var, value)) = assignment(name) {
            if var == "default" {
                self.default_source = words.first().map(|w| {
                    source_text(w)
                        .split_once('=')
                        .map_or(String::new(), |(_, v)| v.to_string())
                });
            }
            self.env.set(var, value.to_string(), line)?;
            return Ok(true);
        }
        let args = &fields[1..];
        match name.as_str() {
            "set" => {
                for (i, arg) in args.iter().enumerate() {
                    if let Some((var, value)) = arg.split_once('=') {
                        if var == "default" {
                            self.default_source = words.get(i + 1).map(|w| {
                                source_text(w)
                                    .split_once('=')
                                    .map_or(String::new(), |(_, v)| v.to_string())
                            });
                        }
                        self.env.set(var, value.to_string(), line)?;
                    }
                }
                Ok(true)
            }
            "unset" => {
                for arg in args {
                    self.env.vars.remove(arg);
                }
                Ok(true)
            }
            "true" => Ok(true),
            "false" | "keystatus" => Ok(false),
            "[" => {
                let inner = match args.split_last() {
                    Some((last, inner)) if last == "]" => inner,
                    _ => args,
                };
                Ok(self.test(inner))
            }
            "test" => Ok(self.test(args)),
            "search" => self.search(args, line),
            "search.fs_uuid" | "search.fs_label" | "search.file" => {
                let kind = match name.as_str() {
                    "search.fs_uuid" => "--fs-uuid",
                    "search.fs_label" => "--label",
                    _ => "--file",
                };
                let Some(key) = args.first() else {
                    return Ok(false);
                };
                let var = args
                    .get(1)
                    .filter(|v| !v.starts_with("--"))
                    .map_or("root", String::as_str);
                self.search_for(kind, key, Some(var), line)
            }
            "source" | "configfile" | "." | "extract_entries_source" => {
                self.notes.push(format!(
                    "grub.cfg line {line} reads {}, which vmux does not follow",
                    args.first().map_or("another file", String::as_str)
                ));
                Ok(true)
            }
            "blscfg" => {
                self.notes
                    .push("grub.cfg runs blscfg, but the image has no usable BLS entry".into());
                Ok(true)
            }
            "linux" | "linux16" | "linuxefi" => {
                let root = self.env.get("root").to_string();
                if let (Some(boot), Some(path)) = (self.boot.as_mut(), args.first()) {
                    boot.linux = Some((split_device(path, &root), args[1..].to_vec()));
                }
                Ok(true)
            }
            "initrd" | "initrd16" | "initrdefi" => {
                let root = self.env.get("root").to_string();
                if let Some(boot) = self.boot.as_mut() {
                    boot.initrds = args
                        .iter()
                        .filter(|a| !a.starts_with("--"))
                        .map(|a| split_device(a, &root))
                        .collect();
                }
                Ok(true)
            }
            "chainloader" | "multiboot" | "multiboot2" | "kfreebsd" | "knetbsd" | "kopenbsd"
            | "appleloader" | "xnu_kernel" | "xnu_kernel64" | "legacy_kernel" => {
                if let Some(boot) = self.boot.as_mut() {
                    boot.other
                        .get_or_insert_with(|| format!("it runs `{name}`"));
                }
                Ok(true)
            }
            _ => Ok(true),
        }
    }

    /// `search [--fs-uuid|--label|--file] [--set[=VAR]] [--no-floppy] [--hint...] KEY`.
    fn search(&mut self, args: &[String], line: usize) -> Result<bool, EvalError> {
        let mut kind = "--file";
        let mut var = None;
        let mut key = None;
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            match a {
                "--fs-uuid" | "-u" => kind = "--fs-uuid",
                "--label" | "-l" => kind = "--label",
                "--file" | "-f" => kind = "--file",
                "--set" | "-s" => var = Some("root".to_string()),
                _ if a.starts_with("--set=") => var = Some(a["--set=".len()..].to_string()),
                _ if a.starts_with("--hint") => {
                    if !a.contains('=') {
                        i += 1;
                    }
                }
                _ if a.starts_with('-') => {}
                _ => {
                    if key.is_none() {
                        key = Some(a.to_string());
                    }
                }
            }
            i += 1;
        }
        let Some(key) = key else { return Ok(false) };
        self.search_for(kind, &key, var.as_deref(), line)
    }

    fn search_for(
        &mut self,
        kind: &str,
        key: &str,
        var: Option<&str>,
        line: usize,
    ) -> Result<bool, EvalError> {
        let found = match kind {
            "--fs-uuid" => self.host.find_uuid(key),
            "--label" => self.host.find_label(key),
            _ => self.host.find_file(key),
        };
        match (found, var) {
            (Some(device), Some(var)) => {
                self.env.set(var, device, line)?;
                Ok(true)
            }
            (Some(_), None) => Ok(true),
            (None, _) => {
                self.notes.push(format!(
                    "grub.cfg line {line} searches for {} {key}, which no partition of the image has",
                    match kind {
                        "--fs-uuid" => "filesystem UUID",
                        "--label" => "filesystem label",
                        _ => "file",
                    }
                ));
                Ok(false)
            }
        }
    }

    /// `[ ... ]`: `!`, `-a`/`-o`, string and number comparisons, `-n`/`-z`, file tests.
    fn test(&self, args: &[String]) -> bool {
        if let Some(pos) = args.iter().position(|a| a == "-o") {
            return self.test(&args[..pos]) || self.test(&args[pos + 1..]);
        }
        if let Some(pos) = args.iter().position(|a| a == "-a") {
            return self.test(&args[..pos]) && self.test(&args[pos + 1..]);
        }
        match args {
            [bang, rest @ ..] if bang == "!" => !self.test(rest),
            [] => false,
            [s] => !s.is_empty(),
            [op, s] if op == "-n" => !s.is_empty(),
            [op, s] if op == "-z" => s.is_empty(),
            [op, path] if matches!(op.as_str(), "-e" | "-f" | "-s" | "-d") => {
                let file = split_device(path, self.env.get("root"));
                self.host.file_exists(&file.device, &file.path)
            }
            [a, op, b] => match op.as_str() {
                "=" | "==" => a == b,
                "!=" => a != b,
                "<" => a < b,
                ">" => a > b,
                "-eq" | "-ne" | "-lt" | "-le" | "-gt" | "-ge" => {
                    let (Ok(x), Ok(y)) = (a.parse::<i64>(), b.parse::<i64>()) else {
                        return false;
                    };
                    match op.as_str() {
                        "-eq" => x == y,
                        "-ne" => x != y,
                        "-lt" => x < y,
                        "-le" => x <= y,
                        "-gt" => x > y,
                        _ => x >= y,
                    }
                }
                _ => false,
            },
            _ => false,
        }
    }

    fn expand_all(&self, words: &[Word], line: usize) -> Result<Vec<String>, EvalError> {
        let mut out = Vec::new();
        for word in words {
            expand(word, &self.env, &mut out).map_err(|reason| EvalError { line, reason })?;
        }
        Ok(out)
    }
}

/// Expands one word into zero or more fields (unquoted variables split on white space).
fn expand(word: &Word, env: &Env, out: &mut Vec<String>) -> Result<(), String> {
    let mut cur = String::new();
    let mut have = false;
    let too_long = || format!("an argument grows past {MAX_VALUE} bytes");
    for part in &word.parts {
        match part {
            Part::Lit { text, quoted } => {
                cur.push_str(text);
                have |= *quoted || !text.is_empty();
            }
            Part::Var { name, quoted: true } => {
                cur.push_str(env.get(name));
                have = true;
            }
            Part::Var {
                name,
                quoted: false,
            } => {
                let value = env.get(name);
                if value.is_empty() {
                    continue;
                }
                if value.starts_with(char::is_whitespace) && have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
                for (i, piece) in value.split_whitespace().enumerate() {
                    if i > 0 {
                        out.push(std::mem::take(&mut cur));
                    }
                    cur.push_str(piece);
                    have = true;
                }
                if value.ends_with(char::is_whitespace) && have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
        }
        if cur.len() > MAX_VALUE {
            return Err(too_long());
        }
    }
    if have {
        out.push(cur);
    }
    Ok(())
}

/// `NAME=VALUE` as a command word.
fn assignment(field: &str) -> Option<(&str, &str)> {
    let (name, value) = field.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then_some((name, value))
}

/// A word as it was written (variables as `${name}`), for messages.
fn source_text(word: &Word) -> String {
    word.parts
        .iter()
        .map(|p| match p {
            Part::Lit { text, .. } => text.clone(),
            Part::Var { name, .. } => format!("${{{name}}}"),
        })
        .collect()
}

/// `(hd0,gpt2)/vmlinuz` → device `hd0,gpt2`, path `/vmlinuz`; a path without a device is on
/// `root`.
pub fn split_device(path: &str, root: &str) -> FileArg {
    if let Some(rest) = path.strip_prefix('(')
        && let Some(end) = rest.find(')')
    {
        let path = &rest[end + 1..];
        return FileArg {
            device: rest[..end].to_string(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.to_string()
            },
        };
    }
    let root = root
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(root);
    FileArg {
        device: root.to_string(),
        path: path.to_string(),
    }
}

fn stmt_line(stmt: &Stmt) -> usize {
    match stmt {
        Stmt::Command { line, .. } | Stmt::Menu { line, .. } => *line,
        _ => 0,
    }
}

/// Finds the entry `default` names: `N`, an id, a title, or a `>`-separated path of those
/// through submenus. Falls back to the first entry with a note.
pub fn resolve_default<'m>(
    items: &'m [Item],
    default: &str,
    source: Option<&str>,
) -> (Option<&'m Entry>, Option<String>) {
    let describe = || match source {
        Some(src) if src != default && src.contains('$') => {
            format!("'{default}' (from {src})")
        }
        _ => format!("'{default}'"),
    };
    if default.is_empty() {
        let note = source.filter(|s| s.contains('$')).map(|src| {
            format!("grub.cfg's default is {src}, which is not set; vmux took the first entry")
        });
        return (first_entry(items), note);
    }
    let mut level = items;
    let parts: Vec<&str> = default.split('>').collect();
    for (i, key) in parts.iter().enumerate() {
        let found = match key.parse::<usize>() {
            Ok(index) => level.get(index),
            Err(_) => level.iter().find(|item| item.matches(key)),
        };
        let last = i + 1 == parts.len();
        match found {
            Some(Item::Entry(e)) if last => return (Some(e), None),
            Some(Item::Submenu { items, .. }) if !last => level = items,
            Some(Item::Submenu { items, .. }) => {
                return (
                    first_entry(items),
                    Some(format!(
                        "grub.cfg's default {} is a submenu; vmux took its first entry",
                        describe()
                    )),
                );
            }
            _ => {
                return (
                    first_entry(items),
                    Some(format!(
                        "grub.cfg's default {} names no menu entry; vmux took the first entry",
                        describe()
                    )),
                );
            }
        }
    }
    (first_entry(items), None)
}

/// The first boot entry, looking into submenus.
fn first_entry(items: &[Item]) -> Option<&Entry> {
    items.iter().find_map(|item| match item {
        Item::Entry(e) => Some(e),
        Item::Submenu { items, .. } => first_entry(items),
    })
}
