//! Other hosts, over SSH: `vmux agent --stdio` serves this host's API to one client on
//! stdin/stdout ([`agent`]); a client reaches a remote host by running the system `ssh` with
//! that agent on the other side ([`ssh`], [`Link`]) and sees it through the same host API as
//! the local one ([`RemoteHost`]). The frames are JSON lines ([`wire`], [`calls`];
//! docs/host-protocol.md), versioned by [`HOST_PROTOCOL`].
//!
//! Threads, not an async runtime: one reader thread per connection hands every frame to the
//! call or console waiting for it, and the agent runs each call on its own thread. A host has a
//! handful of calls and consoles in flight; blocking calls into the storage, network and vmd
//! code (all synchronous) would need `spawn_blocking` under a runtime anyway.

pub mod agent;
pub mod calls;
mod error;
mod host;
mod link;
mod link_error;
pub mod ssh;
mod target;
pub mod wire;

pub use error::{ErrorKind, RemoteError, WireError};
pub use host::RemoteHost;
pub use link::{CallError, Link};
pub use link_error::LinkError;
pub use ssh::Prompts;
pub use target::{Target, TargetError};
pub use wire::HOST_PROTOCOL;
