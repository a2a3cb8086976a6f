//! The command-line faces of vmux, one file per verb group. (Minimal module root from the
//! storage branch; the CLI's own `mod.rs` replaces it when the branches are merged.)

pub mod storage;
