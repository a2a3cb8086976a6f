//! The wizard's disk and network steps: a [`Checklist`] of existing volumes (from active
//! pools) and of defined networks, built from the storage and network snapshots and rebuilt
//! when fresh ones arrive without losing what the user ticked.

use crate::config::format_size;
use crate::tui::backends::{NetworkSnapshot, StorageSnapshot};

/// One line of a checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckItem {
    /// Stable identity (`pool/volume`, or the network name).
    pub key: String,
    /// What is shown.
    pub label: String,
    /// Facts shown after the label.
    pub note: String,
    /// Why choosing it would fail (shown in the error colour); choosing it is refused.
    pub problem: Option<String>,
    /// Ticked.
    pub checked: bool,
}

/// A list of things to tick, with a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checklist {
    /// The items.
    pub items: Vec<CheckItem>,
    /// The highlighted item.
    pub cursor: usize,
}

impl Checklist {
    /// Replaces the items, keeping ticks and the cursor on items that are still there.
    pub fn replace(&mut self, mut items: Vec<CheckItem>) {
        let current = self.items.get(self.cursor).map(|i| i.key.clone());
        for item in &mut items {
            item.checked = self
                .items
                .iter()
                .any(|old| old.key == item.key && old.checked);
        }
        self.cursor = current
            .and_then(|key| items.iter().position(|i| i.key == key))
            .unwrap_or(0);
        self.items = items;
    }

    /// Ticks or unticks the highlighted item; says whether anything changed.
    pub fn toggle(&mut self) -> bool {
        match self.items.get_mut(self.cursor) {
            Some(item) => {
                item.checked = !item.checked;
                true
            }
            None => false,
        }
    }

    /// Moves the cursor by `delta`; says whether it moved (false at either end).
    pub fn move_cursor(&mut self, delta: isize) -> bool {
        let target = self.cursor.saturating_add_signed(delta);
        if self.items.is_empty() || target >= self.items.len() || (delta < 0 && self.cursor == 0) {
            return false;
        }
        self.cursor = target;
        true
    }

    /// The keys of the ticked items, in list order.
    pub fn checked(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter(|i| i.checked)
            .map(|i| i.key.as_str())
            .collect()
    }

    /// The first ticked item that cannot be used, with why.
    pub fn problem(&self) -> Option<String> {
        self.items
            .iter()
            .filter(|i| i.checked)
            .find_map(|i| i.problem.as_ref().map(|p| format!("{}: {p}", i.label)))
    }
}

/// The volumes of active pools a new VM can use, as checklist items.
pub fn volume_items(storage: &StorageSnapshot) -> Vec<CheckItem> {
    storage
        .pools
        .iter()
        .filter(|p| p.active())
        .flat_map(|pool| {
            pool.volumes.iter().filter_map(move |row| {
                let info = row.info.as_ref().ok()?;
                let mut note = format!("{} {}", info.format, format_size(info.capacity));
                if !info.used_by.is_empty() {
                    let users: Vec<String> = info
                        .used_by
                        .iter()
                        .map(|vm| {
                            if info.running.contains(vm) {
                                format!("{vm} (running)")
                            } else {
                                vm.clone()
                            }
                        })
                        .collect();
                    note.push_str(&format!(", used by {}", users.join(", ")));
                }
                let problem = if let Some(vm) = info.running.first() {
                    Some(format!(
                        "running VM {vm} has it open; two VMs cannot write one disk"
                    ))
                } else if !info.backing_of.is_empty() {
                    Some(
                        "other images use it as their backing file; writing it would corrupt them (clone it instead)"
                            .to_string(),
                    )
                } else {
                    None
                };
                Some(CheckItem {
                    key: format!("{}/{}", pool.name(), row.name),
                    label: format!("{}/{}", pool.name(), row.name),
                    note,
                    problem,
                    checked: false,
                })
            })
        })
        .collect()
}

/// The defined networks, as checklist items.
pub fn network_items(networks: &NetworkSnapshot) -> Vec<CheckItem> {
    networks
        .networks
        .iter()
        .map(|n| {
            let config = &n.config;
            let mut note = config.mode.to_string();
            if let Some(subnet) = config.subnet {
                note.push_str(&format!(" {subnet}"));
            } else {
                note.push_str(&format!(" on {}", config.bridge));
            }
            note.push_str(if n.active.is_some() {
                ", active"
            } else {
                ", inactive (start it before the VM)"
            });
            CheckItem {
                key: config.name.clone(),
                label: config.name.clone(),
                note,
                problem: None,
                checked: false,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str) -> CheckItem {
        CheckItem {
            key: key.into(),
            label: key.into(),
            note: String::new(),
            problem: None,
            checked: false,
        }
    }

    #[test]
    fn replacing_items_keeps_ticks_and_cursor() {
        let mut list = Checklist::default();
        list.replace(vec![item("a"), item("b")]);
        list.move_cursor(1);
        list.toggle();
        list.replace(vec![item("new"), item("a"), item("b")]);
        assert_eq!(list.checked(), ["b"]);
        assert_eq!(list.cursor, 2);
    }

    #[test]
    fn the_cursor_reports_the_ends() {
        let mut list = Checklist::default();
        list.replace(vec![item("a"), item("b")]);
        assert!(!list.move_cursor(-1));
        assert!(list.move_cursor(1));
        assert!(!list.move_cursor(1));
    }
}
