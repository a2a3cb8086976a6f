//! `vmux agent --stdio`: this host's API served on stdin/stdout for a vmux on another machine
//! (which runs it through ssh for `--connect`). Nothing else may write to stdout: logging goes
//! to stderr, which ssh carries back to the client for its messages.

use crate::client::HostApi;
use crate::remote::agent;
use std::io::BufReader;

/// Serves this host until the client goes.
pub fn serve() -> anyhow::Result<()> {
    let api = HostApi::from_env()?;
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|text| text.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    agent::serve(
        api,
        BufReader::new(std::io::stdin()),
        Box::new(std::io::stdout()),
        name,
    )?;
    Ok(())
}
