//! Hands work to the runtime: VM operations and storage/network tasks are queued as
//! [`Effect`]s and their progress shown on the status line. Every handler that starts work
//! calls these; they call no handler back.

use super::action::{Effect, HostOp};
use super::app::{App, RunningTask, StatusKind};
use super::tasks::Task;

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
        app.busy.insert(op.vm().to_string(), op.progress());
        app.effects.push(Effect::Host(op));
    }
    app.set_status(StatusKind::Progress, text);
}

/// Hands a storage or network task to the runtime and shows its progress.
pub(super) fn run_task(app: &mut App, task: Task) {
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
        },
    );
    app.effects.push(Effect::Task { id, task });
}
