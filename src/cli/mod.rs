//! The virsh-like command line, one file per verb group. On this branch only the network
//! verbs exist; the full CLI (and its `Args`) comes from the `cli` branch.

pub mod network;
