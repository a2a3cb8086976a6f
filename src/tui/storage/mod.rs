//! The storage pane: its state (pools, volumes, the selection: [`state`]) and what its keys
//! do ([`pane`]). `App` holds the state; `update` and `commands` call the pane. Drawn by
//! `ui/storage.rs`.

pub mod pane;
pub mod state;
