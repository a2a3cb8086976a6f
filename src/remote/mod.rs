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
mod resource_calls;
mod resources;
pub mod ssh;
mod target;
pub mod wire;

pub use error::{ErrorKind, RemoteError, WireError};
pub use host::RemoteHost;
pub use link::{CallError, Link};
pub use link_error::LinkError;
pub use resources::{RemoteNetworks, RemoteStorage};
pub use ssh::Prompts;
pub use target::{Target, TargetError};
pub use wire::HOST_PROTOCOL;

use crate::client::HostApi;
use std::sync::Arc;

/// The host API of the host behind `link`: its VMs, storage and networks, each a call over it.
pub fn api(link: &Link) -> HostApi {
    HostApi {
        vms: Arc::new(RemoteHost::new(link.clone())),
        storage: Arc::new(RemoteStorage::new(link.clone())),
        networks: Arc::new(RemoteNetworks::new(link.clone())),
    }
}

/// Connects to `target` over ssh and returns the link and the host API behind it.
pub fn connect(target: &Target, prompts: Prompts) -> Result<(Link, HostApi), LinkError> {
    let link = Link::connect(target, prompts)?;
    let api = api(&link);
    Ok((link, api))
}
