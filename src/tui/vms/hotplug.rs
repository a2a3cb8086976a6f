//! Hot-add from the TUI: `+`/`-` change a VM's vCPU count, the add-disk and remove-disk
//! dialogs (their kinds are in `dialogs::disks`) attach (an existing or a new volume) and detach disks, and the palette's
//! `setvcpus` / `attach-disk` / `detach-disk` do the same with virsh's flags.
//!
//! Every change says where it applies (now, at the next boot, or both: `client::ChangeScope`)
//! and then what the guest did: after a live change the VM's live facts are re-read each
//! second ([`Watch`]) until the guest has brought the vCPUs online or ejected what was
//! removed, or until [`WATCH_TICKS`] pass, which is said too (a guest without hot-plug
//! support ignores the request).

use crate::config::assign_targets;
use crate::protocol::VmInfo;
use crate::tui::action::{Effect, HostOp};
use crate::tui::app::{App, Overlay, StatusKind};
use crate::tui::dialogs::Dialog;
use crate::tui::dialogs::disks::{AddDisk, DiskChoice, RemoveDisk, active_pools, attachable};
use crate::tui::hosts::id::HostId;
use crate::tui::queue::run_ops;
use crate::tui::scope::default_scope;
use crate::tui::watch::{Expect, WATCH_TICKS, Watch};

/// Starts waiting for the guest after a live change that worked.
pub(crate) fn watch(app: &mut App, op: &HostOp) {
    let (vm, expect) = match op {
        HostOp::SetVcpus {
            vm,
            from,
            count,
            scope,
        } if scope.live && from != count => (
            vm,
            Expect::Vcpus {
                from: *from,
                count: *count,
            },
        ),
        HostOp::DetachDisk {
            vm,
            target,
            scope,
            force: false,
        } if scope.live => (vm, Expect::DiskGone(target.clone())),
        // A forced removal is done when the host answers: re-read the VM's disks once.
        HostOp::DetachDisk {
            vm, force: true, ..
        } => {
            app.push_effect(Effect::ReadInfo(vm.clone()));
            return;
        }
        // A hot-added disk is plugged when the host answers: re-read the VM's disks once.
        HostOp::AttachDisk { vm, scope, .. } if scope.live => {
            app.push_effect(Effect::ReadInfo(vm.clone()));
            return;
        }
        _ => return,
    };
    let host = app.current_host();
    app.watches
        .retain(|w| w.vm != *vm || w.host != host || w.expect != expect);
    app.watches.push(Watch {
        host,
        vm: vm.clone(),
        expect,
        until: app.ticks + WATCH_TICKS,
    });
    app.push_effect(Effect::ReadInfo(vm.clone()));
}

/// Each second: re-read the live facts of VMs with changes pending, and give up on those
/// that took too long, saying so.
pub(crate) fn on_tick(app: &mut App) {
    let now = app.ticks;
    let (expired, waiting): (Vec<Watch>, Vec<Watch>) = std::mem::take(&mut app.watches)
        .into_iter()
        .partition(|w| now > w.until);
    app.watches = waiting;
    for watch in expired {
        let online = app
            .vms
            .iter()
            .find(|vm| vm.name() == watch.vm && vm.host == watch.host)
            .and_then(|vm| vm.info.as_ref())
            .map(|info| info.vcpus);
        let message = match &watch.expect {
            Expect::Vcpus { count, .. } => format!(
                "{}: the guest has {} vCPUs online, not {count}, after {WATCH_TICKS} s; a guest without CPU hot-plug support ignores the request",
                watch.vm,
                online.map_or("?".to_string(), |n| n.to_string())
            ),
            Expect::DiskGone(target) => format!(
                "{}: the guest has not ejected {target} after {WATCH_TICKS} s; unmount it in the guest, or press X and tick Force to take it away without the guest's consent",
                watch.vm
            ),
        };
        // An error, so a long one wraps over the rows above: the way out is at its end.
        app.set_status(StatusKind::Error, message);
    }
    let mut vms: Vec<(HostId, String)> = app
        .watches
        .iter()
        .map(|w| (w.host.clone(), w.vm.clone()))
        .collect();
    vms.dedup();
    for (host, vm) in vms {
        app.push_effect_to(host, Effect::ReadInfo(vm));
    }
}

/// Fresh live facts of `vm`: say what the guest has done.
pub(crate) fn on_info(app: &mut App, vm: &str, info: &VmInfo) {
    let host = app.reply_host();
    let (done, waiting): (Vec<Watch>, Vec<Watch>) =
        std::mem::take(&mut app.watches).into_iter().partition(|w| {
            w.vm == vm
                && w.host == host
                && match &w.expect {
                    Expect::Vcpus { count, .. } => info.vcpus == *count,
                    Expect::DiskGone(target) => !info.disks.iter().any(|d| &d.target == target),
                }
        });
    app.watches = waiting;
    for watch in done {
        let message = match watch.expect {
            Expect::Vcpus { from, count } if count > from => {
                format!("{vm}: the guest brought its new vCPUs online ({count} online)")
            }
            Expect::Vcpus { count, .. } => {
                format!("{vm}: the guest ejected the removed vCPUs ({count} online)")
            }
            Expect::DiskGone(target) => {
                format!("{vm}: the guest ejected {target}; its image is closed")
            }
        };
        app.set_status(StatusKind::Ok, message);
    }
}

/// `+` / `-`: one vCPU more or fewer on the selected VM (running: now and at the next boot;
/// stopped: at the next boot).
pub(crate) fn change_vcpus(app: &mut App, delta: i32) {
    let Some(vm) = app.selected() else {
        app.set_status(StatusKind::Error, "no VM selected");
        return;
    };
    let name = vm.name().to_string();
    if let Some(doing) = app.busy_with(&name) {
        app.set_status(StatusKind::Error, format!("{name} is busy {doing}"));
        return;
    }
    if let Some(why) = vm.broken_refusal("change its vCPUs") {
        app.set_status(StatusKind::Error, why);
        return;
    }
    let live = vm.is_live();
    let config_vcpus = vm.config().map_or(1, |c| c.vcpus);
    let from = if live {
        vm.vcpus_now().unwrap_or(config_vcpus)
    } else {
        config_vcpus
    };
    let max = vm.max_vcpus().unwrap_or(from);
    let count = from.saturating_add_signed(delta);
    if count == 0 {
        app.set_status(
            StatusKind::Error,
            format!("{name} has 1 vCPU, the least a VM can have"),
        );
        return;
    }
    if count > max {
        app.set_status(
            StatusKind::Error,
            format!(
                "{name} has {from} vCPUs, its maximum (max_vcpus {max}); raise it with e (edit) and restart {name} to hot-add more"
            ),
        );
        return;
    }
    run_ops(
        app,
        vec![HostOp::SetVcpus {
            vm: name,
            from,
            count,
            scope: default_scope(live),
        }],
    );
}

/// `A`: the add-disk dialog for the selected VM.
pub(crate) fn add_disk(app: &mut App) {
    let Some(vm) = app.selected() else {
        app.set_status(StatusKind::Error, "no VM selected");
        return;
    };
    if let Some(why) = vm.broken_refusal("add a disk") {
        app.set_status(StatusKind::Error, why);
        return;
    }
    let add = AddDisk {
        vm: vm.name().to_string(),
        running: vm.is_live(),
        own: vm
            .config()
            .map(|c| c.disks.iter().map(|d| d.source.to_string()).collect())
            .unwrap_or_default(),
        volumes: attachable(&app.storage.snapshot),
        pools: active_pools(&app.storage.snapshot),
        loaded: app.storage.loaded,
    };
    app.overlay = Some(Overlay::Dialog(Box::new(Dialog::add_disk(add))));
    crate::tui::storage::pane::request_load(app);
}

/// `X`: the remove-disk dialog for the selected VM.
pub(crate) fn remove_disk(app: &mut App) {
    let Some(vm) = app.selected() else {
        app.set_status(StatusKind::Error, "no VM selected");
        return;
    };
    let name = vm.name().to_string();
    let Some(config) = vm.config() else {
        let why = vm.broken_refusal("remove a disk").unwrap_or_default();
        app.set_status(StatusKind::Error, why);
        return;
    };
    let targets = assign_targets(&config.disks).unwrap_or_default();
    let mut disks: Vec<DiskChoice> = config
        .disks
        .iter()
        .zip(targets)
        .map(|(disk, target)| DiskChoice {
            target,
            label: disk.source.to_string(),
            in_config: true,
            live: false,
            removing_for: None,
        })
        .collect();
    let running = vm.is_live();
    let now = app.now;
    let pending = |live: &crate::protocol::DiskInfo| {
        live.removing
            .then(|| now.saturating_sub(live.removal_requested_at.unwrap_or(now)))
    };
    let live_disks = vm
        .info
        .as_ref()
        .filter(|_| running)
        .map(|i| i.disks.clone());
    if running && live_disks.is_none() {
        // Live facts not read yet: the definition's disks were plugged at boot.
        for disk in &mut disks {
            disk.live = true;
        }
    }
    for live in live_disks.unwrap_or_default() {
        match disks.iter_mut().find(|d| d.target == live.target) {
            Some(known) => {
                known.live = true;
                known.removing_for = pending(&live);
            }
            None => disks.push(DiskChoice {
                target: live.target.clone(),
                label: live.path.display().to_string(),
                in_config: false,
                live: true,
                removing_for: pending(&live),
            }),
        }
    }
    if disks.is_empty() {
        app.set_status(StatusKind::Error, format!("{name} has no disks"));
        return;
    }
    disks.sort_by(|a, b| a.target.cmp(&b.target));
    let remove = RemoveDisk {
        vm: name,
        running: vm.is_live(),
        disks,
    };
    app.overlay = Some(Overlay::Dialog(Box::new(Dialog::remove_disk(remove))));
}
