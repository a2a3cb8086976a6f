//! The wizard's disk and network steps: the items of the form's checklists of existing
//! volumes (from active pools) and of defined networks, built from the storage and network
//! snapshots (a [`Checklist`](crate::tui::form::checklist::Checklist) keeps what the user
//! ticked when fresh ones arrive).

use crate::client::{NetworkSnapshot, StorageSnapshot};
use crate::config::format_size;
use crate::tui::form::checklist::CheckItem;

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
