//! A yes/no question before something destructive or bulk, and what runs on yes. A leaf
//! shared by the dialogs that build one, the handlers that ask one, and `App` that shows it.

use super::action::HostOp;
use super::tasks::Task;

/// A question before something destructive or bulk.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    /// Dialog title.
    pub title: String,
    /// The question, naming every VM affected.
    pub message: String,
    /// VM operations that run on yes.
    pub ops: Vec<HostOp>,
    /// A storage or network task that runs on yes.
    pub task: Option<Task>,
    /// A change to marked VMs: only `y` confirms (Enter does not), so keys typed at the list
    /// by mistake cannot confirm it.
    pub bulk: bool,
    /// A remote host to remove from the settings file on yes (hosts pane).
    pub remove_host: Option<String>,
}
