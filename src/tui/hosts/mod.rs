//! Many hosts: the local host and remote ones reached through a [`connector::Connector`].
//!
//! - `id`: which host a VM, an effect or a reply belongs to;
//! - `connector`: the seam to remote hosts (tests use fakes);
//! - `ssh`: the real connector, over the system `ssh` (`crate::remote`);
//! - `config`: the `[[hosts]]` entries of the settings file, checked and saved;
//! - `state`: each remote host's connection state and the backoff between tries;
//! - `worker`: the thread per remote host that connects, polls and reconnects;
//! - `pane`: the hosts pane's handlers (add, remove, connect, disconnect).
//!
//! This file only declares the files: naming them here would make edges that could close a
//! cycle (`pane` uses `App`, which uses `state`).

pub mod config;
pub mod connector;
pub mod id;
pub mod pane;
pub mod ssh;
pub mod state;
pub mod worker;
