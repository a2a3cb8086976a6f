//! Each remote host's connection state as the TUI shows it, and the backoff between tries.
//!
//! connecting → connected → (link lost) reconnecting, retried after 1 s, 2 s, 4 s … at most
//! 30 s → connected; a first connection that fails is unreachable (with the connector's
//! words) until the user connects again; disconnected is the user's doing.

use std::time::Duration;

/// The longest wait between two reconnection tries.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Where a remote host's connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostState {
    /// The first connection is being made.
    Connecting,
    /// Up: its VMs are listed.
    Connected,
    /// The link dropped (or a reconnection failed); the next try is `retry_in` away.
    Reconnecting {
        /// Why the link dropped or the last try failed.
        reason: String,
        /// How long until the next try.
        retry_in: Duration,
    },
    /// The connection could not be made; the connector's message (ssh's words).
    Unreachable(String),
    /// Closed by the user (or never opened: autoconnect off).
    Disconnected,
}

impl HostState {
    /// The state in a few words, as the list row and the hosts pane show it.
    pub fn describe(&self) -> String {
        match self {
            HostState::Connecting => "connecting…".to_string(),
            HostState::Connected => "connected".to_string(),
            HostState::Reconnecting { reason, retry_in } => {
                format!("reconnecting in {} s: {reason}", retry_in.as_secs().max(1))
            }
            HostState::Unreachable(message) => format!("unreachable: {message}"),
            HostState::Disconnected => "disconnected".to_string(),
        }
    }

    /// Whether a worker is trying to connect (connecting or reconnecting).
    pub fn trying(&self) -> bool {
        matches!(self, HostState::Connecting | HostState::Reconnecting { .. })
    }
}

/// A remote host as the TUI knows it: its settings entry and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteHost {
    /// The settings entry (name, uri, autoconnect).
    pub entry: super::config::HostEntry,
    /// Its connection state.
    pub state: HostState,
}

/// The wait before reconnection try number `attempt` (0-based): `first` doubled each time,
/// at most `max`.
pub fn backoff(attempt: u32, first: Duration, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_thirty() {
        let waits: Vec<u64> = (0..8)
            .map(|n| backoff(n, Duration::from_secs(1), BACKOFF_MAX).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(
            backoff(1000, Duration::from_secs(1), BACKOFF_MAX),
            BACKOFF_MAX
        );
    }

    #[test]
    fn unreachable_shows_the_connectors_words() {
        let state = HostState::Unreachable("ssh: connect to host h2 port 22: refused".into());
        assert_eq!(
            state.describe(),
            "unreachable: ssh: connect to host h2 port 22: refused"
        );
    }
}
