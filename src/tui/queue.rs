//! Hands work to the runtime: VM operations and storage/network tasks are queued as
//! [`Effect`]s and their progress shown on the status line; a wizard's creation whose image is
//! copied into a pool waits for that copy, a task of its own. Every handler that starts work
//! calls these; they call no handler back.

use super::action::{Effect, HostOp};
use super::app::{App, RunningTask, StatusKind};
use super::image_setup::ImageSetup;
use super::tasks::{Task, TaskId};

/// Hands operations to the runtime and shows their progress.
pub(super) fn run_ops(app: &mut App, ops: Vec<HostOp>) {
    let Some(first) = ops.first() else {
        return;
    };
    let text = if ops.len() == 1 {
        format!("{} {}…", first.progress(), first.vm())
    } else {
        format!("{} {} VMs…", first.progress(), ops.len())
    };
    for op in ops {
        let key = (app.current_host(), op.vm().to_string());
        app.busy.insert(key, op.progress());
        app.push_effect(Effect::Host(op));
    }
    app.set_status(StatusKind::Progress, text);
}

/// Hands the creation wizard's work to the runtime. A disk image file to bring into a pool
/// (copied, or linked on a base volume copied from it) is a long task of its own, first
/// (progress in the task list, `x` cancels it); the creation is queued when it is done
/// ([`after_import`]). Everything else, an overlay on a pool volume included, goes in one
/// [`HostOp`].
pub(super) fn create(app: &mut App, op: HostOp) {
    let import = match &op {
        HostOp::Create {
            config,
            image: Some(setup),
            ..
        } => setup
            .import
            .as_ref()
            .filter(|import| import.copies() && !setup.imported)
            .map(|import| Task::ImportImage {
                vm: config.name.clone(),
                import: import.clone(),
            }),
        _ => None,
    };
    match import {
        Some(task) => {
            let id = run_task(app, task);
            app.after_import.insert(id, op);
        }
        None => run_ops(app, vec![op]),
    }
}

/// Task `id` ended: the creation waiting for its image (if it was one) goes on when the
/// image is in its pool, and is dropped otherwise (the import left nothing behind; the
/// status line says so already).
pub(super) fn after_import(app: &mut App, id: TaskId, imported: bool) {
    let Some(mut op) = app.after_import.remove(&id) else {
        return;
    };
    if !imported {
        return;
    }
    if let HostOp::Create {
        image: Some(setup), ..
    } = &mut op
    {
        setup.imported = true;
    }
    run_ops(app, vec![op]);
}

/// The TUI quits and task `id` copied an image for a creation that will not run now: that
/// creation's image setup, marked imported, for the runtime to delete its volume
/// ([`super::image_setup::abandon`]); `None` when no creation waited for `id`.
pub(super) fn orphaned_image(app: &mut App, id: TaskId) -> Option<ImageSetup> {
    match app.after_import.remove(&id)? {
        HostOp::Create {
            image: Some(mut setup),
            ..
        } => {
            setup.imported = true;
            Some(*setup)
        }
        _ => None,
    }
}

/// Hands a storage or network task to the runtime and shows its progress; returns its id.
pub(super) fn run_task(app: &mut App, task: Task) -> TaskId {
    let id = app.next_task;
    app.next_task += 1;
    app.set_status(StatusKind::Progress, format!("{}…", task.progress_words()));
    app.tasks.insert(
        id,
        RunningTask {
            task: task.clone(),
            started: app.ticks,
            progress: None,
            cancelling: false,
            host: app.current_host(),
        },
    );
    app.push_effect(Effect::Task { id, task });
    id
}
