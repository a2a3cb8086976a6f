//! Why a remote host cannot be used: the connection could not be made (each way it fails gets
//! its own message with ssh's words and the fix) or it dropped.

/// A connection to a remote host that failed or dropped. Messages name the host, what went
/// wrong (ssh's own words where ssh said it) and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// `ssh` could not be run here.
    #[error(
        "cannot run ssh to reach {host}: {detail}; install the OpenSSH client (apt-get install openssh-client)"
    )]
    NoSsh {
        /// The host.
        host: String,
        /// Why it could not be run.
        detail: String,
    },
    /// ssh could not reach the host.
    #[error(
        "cannot reach {host}: {ssh}; check the address and that sshd runs there (`ssh {host}` says the same)"
    )]
    Unreachable {
        /// The host.
        host: String,
        /// ssh's message.
        ssh: String,
    },
    /// ssh reached the host but could not log in (or could not verify its key).
    #[error(
        "ssh could not log in to {host}: {ssh}; check `ssh {host}` works without vmux (ssh-copy-id, ssh-agent, known_hosts)"
    )]
    AuthFailed {
        /// The host.
        host: String,
        /// ssh's message.
        ssh: String,
    },
    /// The remote shell has no `vmux`.
    #[error(
        "vmux is not installed on {host} ({detail}); install vmux on {host}, on the PATH of its non-interactive shell, or set VMUX_REMOTE_VMUX to its path there"
    )]
    VmuxMissing {
        /// The host.
        host: String,
        /// What the remote shell said.
        detail: String,
    },
    /// The remote vmux has no `agent` verb.
    #[error("vmux on {host} is too old to be reached over SSH (it has no `vmux agent`: {detail}); install vmux {} or later on {host}", env!("CARGO_PKG_VERSION"))]
    TooOld {
        /// The host.
        host: String,
        /// What it said.
        detail: String,
    },
    /// The remote vmux speaks another version of the host protocol.
    #[error("vmux {version} on {host} speaks host protocol {theirs}, this vmux {} speaks {ours}; install the same vmux version on both", env!("CARGO_PKG_VERSION"))]
    VersionMismatch {
        /// The host.
        host: String,
        /// Its vmux version.
        version: String,
        /// Its protocol.
        theirs: u32,
        /// Ours.
        ours: u32,
    },
    /// The remote side said something that is not the host protocol.
    #[error(
        "{host} did not answer in the vmux host protocol ({detail}); check that `vmux agent --stdio` runs there and that the shell prints nothing for non-interactive logins"
    )]
    Protocol {
        /// The host.
        host: String,
        /// What was wrong.
        detail: String,
    },
    /// No hello in time.
    #[error(
        "{host} did not answer within {seconds} s; check the network, or that ssh is not waiting for input"
    )]
    Timeout {
        /// The host.
        host: String,
        /// How long we waited.
        seconds: u64,
    },
    /// The connection dropped (or was closed).
    #[error(
        "the connection to {host} was lost ({reason}); run the command again once {host} is reachable"
    )]
    Lost {
        /// The host.
        host: String,
        /// ssh's last words, or what happened.
        reason: String,
    },
}
