//! The networks pane: its state (networks, the selection, guest addresses: [`state`]) and
//! what its keys do ([`pane`]). `App` holds the state; `update` and `commands` call the pane.
//! Drawn by `ui/networks.rs`.

pub mod pane;
pub mod state;
