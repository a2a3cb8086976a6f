//! What the TUI talks to: the host API of `client` ([`crate::client::HostApi`]), re-exported
//! under the names the panes, dialogs and tests use. [`Backends`] is the bundle the runtime's
//! worker threads share; every method of its traits blocks, so call them on worker threads
//! only, never from `update` or `draw`.

pub use crate::client::{
    ImageSource, NetworkHost, NetworkSnapshot, PoolView, StorageHost, StorageSnapshot, VolumeView,
};

/// The host's VMs, storage and networks, shared by the runtime's threads.
pub type Backends = crate::client::HostApi;

/// The in-memory storage and networks the TUI's tests run on.
pub mod fake {
    pub use crate::client::{FakeNetworks, FakeStorage};
}

/// The real storage and networks of this machine.
pub mod local {
    pub use crate::client::{LocalNetworks, LocalStorage};
}
