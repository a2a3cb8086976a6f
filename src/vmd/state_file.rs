//! `state.json`: what vmd last said about its VM, for clients that find no vmd to ask.
//!
//! vmd rewrites it atomically on every state change (running, paused, and the final shut off
//! or crashed). A client that reads "running" but finds the pid lock free knows vmd died
//! without writing its final state, and reports the VM as crashed.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::write_atomic;
use crate::engine::control::RunState;

/// The contents of `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateFile {
    /// The VM's state when written.
    pub state: RunState,
    /// The vmd that wrote it.
    pub pid: u32,
    /// vCPUs present (running VMs).
    pub vcpus: u32,
    /// Boots in that vmd (1 + reboots and resets).
    pub boots: u32,
    /// Seconds since the Unix epoch when the current (or last) boot started.
    pub started_at: u64,
    /// For `crashed`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl StateFile {
    /// Writes `path` atomically.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let mut text = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        text.push(b'\n');
        write_atomic(path, &text)
    }

    /// Reads `path`; `None` when there is no file. A file that does not parse (hand-edited,
    /// from an incompatible version) is an error.
    pub fn read(path: &Path) -> io::Result<Option<StateFile>> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let state = StateFile {
            state: RunState::Crashed,
            pid: 12,
            vcpus: 2,
            boots: 3,
            started_at: 1_700_000_000,
            reason: Some("triple fault at rip 0x1000".into()),
        };
        state.write(&path).expect("write");
        assert_eq!(StateFile::read(&path).expect("read"), Some(state));
    }

    #[test]
    fn a_missing_file_reads_as_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            StateFile::read(&dir.path().join("state.json")).expect("read"),
            None
        );
    }
}
