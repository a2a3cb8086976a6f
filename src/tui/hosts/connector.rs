//! The seam to remote hosts: a [`Connector`] opens a [`Link`], and a link hands out the same
//! [`HostApi`] bundle the TUI uses for the local host. The real connector runs the system
//! `ssh` with `vmux agent --stdio` on the other side; tests use fakes.

use crate::client::HostApi;
use std::sync::Arc;

/// Opens connections to remote hosts (the real one runs ssh; tests use fakes).
pub trait Connector: Send + Sync {
    /// Connects to `uri` (`ssh://[user@]host[:port]`); blocking, call on a worker thread.
    /// The error is the whole user-facing message (unreachable with ssh's words,
    /// "vmux is not installed on host2: …", protocol too old with the version found).
    fn connect(&self, uri: &str) -> Result<Arc<dyn Link>, String>;
}

/// One live connection.
pub trait Link: Send + Sync {
    /// The host's API over this connection.
    fn backends(&self) -> HostApi;
    /// `None` while the connection is up; why it dropped once it has.
    fn lost(&self) -> Option<String>;
    /// Closes the connection (disconnect).
    fn close(&self);
}

/// A connector for builds without remote hosts: every connect fails saying so.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRemoteHosts;

impl Connector for NoRemoteHosts {
    fn connect(&self, _uri: &str) -> Result<Arc<dyn Link>, String> {
        Err("remote hosts are not available in this build".to_string())
    }
}
