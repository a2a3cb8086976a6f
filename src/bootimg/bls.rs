//! Boot Loader Specification type #1 entries (`/loader/entries/*.conf`, Fedora's and
//! systemd-boot's layout): parsing, the specification's sort order, and the default choice.
//!
//! Default: GRUB's `saved_entry` from grubenv when it names an entry (Fedora's
//! `grub2-set-default`), else `default` of `/loader/loader.conf` (a glob over entry names,
//! systemd-boot's rule), else the first entry in sort order. Sort order (systemd-boot's):
//! entries out of boot-counting tries last; entries with a `sort-key` first, by sort-key, then
//! machine-id, then version newest first; then by file name newest first.

use super::version;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Largest entry file read.
pub const MAX_ENTRY_SIZE: u64 = 64 * 1024;
/// Most entry files read from the directory.
pub const MAX_ENTRIES: usize = 256;

/// One parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlsEntry {
    /// The file name without `.conf` and without a boot-counting suffix (`+3-0`).
    pub id: String,
    /// `title`.
    pub title: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// `machine-id`.
    pub machine_id: Option<String>,
    /// `sort-key`.
    pub sort_key: Option<String>,
    /// `linux`: the kernel path relative to the entries' partition.
    pub linux: Option<String>,
    /// `initrd` lines, in order (each may name several files).
    pub initrds: Vec<String>,
    /// `options` lines joined with spaces, grubenv variables expanded.
    pub options: String,
    /// `architecture`.
    pub architecture: Option<String>,
    /// Boot-counting tries left (`name+LEFT-DONE.conf`).
    pub tries_left: Option<u32>,
}

impl BlsEntry {
    /// What messages call it: "BLS entry 'Fedora Linux (6.11.4...)'".
    pub fn describe(&self) -> String {
        format!("BLS entry '{}'", self.display_title())
    }

    /// The title, else the version, else the id.
    pub fn display_title(&self) -> &str {
        self.title
            .as_deref()
            .or(self.version.as_deref())
            .unwrap_or(&self.id)
    }
}

/// Parses entry file `file_name` (`text` is its content); `$name` and `${name}` in values are
/// replaced from `vars` (grubenv), unknown names by nothing.
pub fn parse_entry(file_name: &str, text: &str, vars: &BTreeMap<String, String>) -> BlsEntry {
    let stem = file_name.strip_suffix(".conf").unwrap_or(file_name);
    let (id, tries_left) = split_counter(stem);
    let mut entry = BlsEntry {
        id: id.to_string(),
        title: None,
        version: None,
        machine_id: None,
        sort_key: None,
        linux: None,
        initrds: Vec::new(),
        options: String::new(),
        architecture: None,
        tries_left,
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(|c: char| c.is_ascii_whitespace())
            .map(|(k, v)| (k, v.trim()))
            .unwrap_or((line, ""));
        let value = expand(value, vars);
        match key {
            "title" => entry.title = Some(value),
            "version" => entry.version = Some(value),
            "machine-id" => entry.machine_id = Some(value),
            "sort-key" => entry.sort_key = Some(value),
            "linux" => entry.linux = Some(value),
            "initrd" => entry
                .initrds
                .extend(value.split_ascii_whitespace().map(str::to_string)),
            "options" if !value.is_empty() => {
                if !entry.options.is_empty() {
                    entry.options.push(' ');
                }
                entry.options.push_str(&value);
            }
            "architecture" => entry.architecture = Some(value.to_ascii_lowercase()),
            _ => {}
        }
    }
    entry
}

/// `name+3-1` → (`name`, Some(3)); `name+0` → (`name`, Some(0)).
fn split_counter(stem: &str) -> (&str, Option<u32>) {
    if let Some((name, counter)) = stem.rsplit_once('+') {
        let left = counter.split_once('-').map_or(counter, |(l, _)| l);
        let done_ok = counter
            .split_once('-')
            .is_none_or(|(_, d)| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()));
        if let (Ok(left), true) = (left.parse::<u32>(), done_ok) {
            return (name, Some(left));
        }
    }
    (stem, None)
}

/// Replaces `$name` / `${name}` with `vars[name]` (or nothing).
fn expand(value: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], &inner[end + 1..]),
                None => ("", inner),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            out.push('$');
        } else if let Some(v) = vars.get(name) {
            out.push_str(v);
        }
        rest = tail;
    }
    out.push_str(rest);
    out.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// Sorts `entries` into boot-menu order (the default candidate first).
pub fn sort(entries: &mut [BlsEntry]) {
    entries.sort_by(compare);
}

fn compare(a: &BlsEntry, b: &BlsEntry) -> Ordering {
    let exhausted = |e: &BlsEntry| e.tries_left == Some(0);
    exhausted(a)
        .cmp(&exhausted(b))
        .then_with(|| a.sort_key.is_none().cmp(&b.sort_key.is_none()))
        .then_with(|| match (&a.sort_key, &b.sort_key) {
            (Some(ka), Some(kb)) => ka
                .cmp(kb)
                .then_with(|| a.machine_id.cmp(&b.machine_id))
                .then_with(|| {
                    version::compare(
                        b.version.as_deref().unwrap_or(""),
                        a.version.as_deref().unwrap_or(""),
                    )
                }),
            _ => Ordering::Equal,
        })
        .then_with(|| version::compare(&b.id, &a.id))
}

/// The entry to boot from sorted `entries`, and a remark when a recorded default was ignored.
pub fn choose<'a>(
    entries: &'a [BlsEntry],
    saved_entry: Option<&str>,
    loader_default: Option<&str>,
) -> (Option<&'a BlsEntry>, Option<String>) {
    let mut note = None;
    if let Some(saved) = saved_entry.filter(|s| !s.is_empty()) {
        if let Some(e) = entries.iter().find(|e| e.id == saved) {
            return (Some(e), None);
        }
        note = Some(format!(
            "grubenv's saved_entry '{saved}' names no BLS entry; vmux took the newest entry"
        ));
    }
    if let Some(pattern) = loader_default.filter(|p| !p.is_empty()) {
        let pattern = pattern.strip_suffix(".conf").unwrap_or(pattern);
        if let Some(e) = entries.iter().find(|e| glob(pattern, &e.id)) {
            return (Some(e), note);
        }
    }
    (entries.first(), note)
}

/// The `default` value of a loader.conf.
pub fn loader_conf_default(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.trim().split_once(|c: char| c.is_ascii_whitespace())?;
        (key == "default").then(|| value.trim().to_string())
    })
}

/// Shell-style glob with `*` and `?`, iterative (no backtracking blow-up).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(file: &str, text: &str) -> BlsEntry {
        parse_entry(file, text, &BTreeMap::new())
    }

    #[test]
    fn an_entry_gives_its_kernel_initrds_and_options() {
        let e = entry(
            "abc-6.11.4-301.fc41.x86_64.conf",
            "title Fedora Linux (6.11.4)\nversion 6.11.4-301.fc41.x86_64\nlinux /vmlinuz-6.11.4\ninitrd /initramfs-6.11.4.img\noptions root=UUID=1 ro\noptions rhgb quiet\n# comment\ngrub_users $grub_users\n",
        );
        assert_eq!(e.id, "abc-6.11.4-301.fc41.x86_64");
        assert_eq!(e.linux.as_deref(), Some("/vmlinuz-6.11.4"));
        assert_eq!(e.initrds, vec!["/initramfs-6.11.4.img"]);
        assert_eq!(e.options, "root=UUID=1 ro rhgb quiet");
        assert_eq!(e.describe(), "BLS entry 'Fedora Linux (6.11.4)'");
    }

    #[test]
    fn grubenv_variables_fill_options_and_unknown_ones_vanish() {
        let vars = BTreeMap::from([("kernelopts".to_string(), "root=UUID=9 ro".to_string())]);
        let e = parse_entry(
            "a.conf",
            "linux /k\noptions $kernelopts ${tuned_params} x\ninitrd $tuned_initrd /i\n",
            &vars,
        );
        assert_eq!(e.options, "root=UUID=9 ro x");
        assert_eq!(e.initrds, vec!["/i"]);
    }

    #[test]
    fn newest_version_sorts_first_without_sort_keys() {
        let mut entries = vec![
            entry("m-6.5.6-300.fc39.x86_64.conf", "linux /a"),
            entry("m-6.11.4-301.fc39.x86_64.conf", "linux /b"),
            entry("m-0-rescue.conf", "linux /c"),
        ];
        sort(&mut entries);
        let ids: Vec<_> = entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "m-6.11.4-301.fc39.x86_64",
                "m-6.5.6-300.fc39.x86_64",
                "m-0-rescue"
            ]
        );
    }

    #[test]
    fn sort_keys_come_first_and_exhausted_tries_last() {
        let mut entries = vec![
            entry("z.conf", "linux /z"),
            entry("b+0-3.conf", "sort-key a\nversion 9\nlinux /b"),
            entry("c.conf", "sort-key fedora\nversion 1\nlinux /c"),
            entry("d.conf", "sort-key fedora\nversion 2\nlinux /d"),
        ];
        sort(&mut entries);
        let ids: Vec<_> = entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["d", "c", "z", "b"]);
        assert_eq!(entries[3].tries_left, Some(0));
    }

    #[test]
    fn saved_entry_wins_then_loader_default_then_first() {
        let entries = vec![entry("new.conf", "linux /n"), entry("old.conf", "linux /o")];
        assert_eq!(
            choose(&entries, Some("old"), None).0.map(|e| e.id.as_str()),
            Some("old")
        );
        assert_eq!(
            choose(&entries, None, Some("ol*")).0.map(|e| e.id.as_str()),
            Some("old")
        );
        let (chosen, note) = choose(&entries, Some("gone"), None);
        assert_eq!(chosen.map(|e| e.id.as_str()), Some("new"));
        assert!(note.expect("a note").contains("gone"));
    }

    #[test]
    fn globs_match_like_the_shell_without_blowing_up() {
        assert!(glob("fedora-*", "fedora-6.1"));
        assert!(glob("a?c*", "abcdef"));
        assert!(!glob("a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac"));
        assert!(glob("*", ""));
    }

    #[test]
    fn loader_conf_default_is_read() {
        assert_eq!(
            loader_conf_default("timeout 3\ndefault  fedora-*\n").as_deref(),
            Some("fedora-*")
        );
    }
}
