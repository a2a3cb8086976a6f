//! Running the system `ssh` (the one on PATH, so ~/.ssh/config, agents, ProxyJump, known_hosts
//! and ControlMaster work as users expect) with `vmux agent --stdio` on the other side, and
//! telling from ssh's exit and its words why a connection could not be made.

use super::link_error::LinkError;
use super::target::Target;
use std::process::{Command, ExitStatus, Stdio};

/// Names the remote vmux program when it is not `vmux` on the remote PATH.
pub const REMOTE_VMUX_ENV: &str = "VMUX_REMOTE_VMUX";

/// Whether ssh may ask the user for a password or passphrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompts {
    /// The command line: ssh may ask on the terminal (it reads /dev/tty itself).
    Allowed,
    /// The full-screen interface: never (`BatchMode`), so a host that would ask fails with
    /// ssh's message instead of writing over the screen.
    Never,
}

/// The ssh command that runs the agent on `target`.
pub fn command(target: &Target, prompts: Prompts) -> Command {
    let mut ssh = Command::new("ssh");
    // No terminal on the remote side; keep-alives so a dead link is noticed within ~45 s.
    ssh.args([
        "-T",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=3",
    ]);
    if prompts == Prompts::Never {
        ssh.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]);
    }
    if let Some(port) = target.port {
        ssh.arg("-p").arg(port.to_string());
    }
    if let Some(user) = &target.user {
        ssh.arg("-l").arg(user);
    }
    let vmux = std::env::var(REMOTE_VMUX_ENV).unwrap_or_else(|_| "vmux".to_string());
    ssh.arg("--")
        .arg(&target.host)
        .arg(format!("{vmux} agent --stdio"));
    ssh.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    ssh
}

/// Why ssh ended before the agent said hello, from its exit status and what it (or the remote
/// shell) wrote on stderr.
pub fn classify(target: &Target, status: Option<ExitStatus>, stderr: &str) -> LinkError {
    let host = target.label();
    let said = last_words(stderr);
    let code = status.and_then(|s| s.code());
    let has = |needle: &str| stderr.contains(needle);
    if code == Some(255) {
        if has("Permission denied")
            || has("Host key verification failed")
            || has("Too many authentication failures")
            || has("REMOTE HOST IDENTIFICATION HAS CHANGED")
        {
            return LinkError::AuthFailed { host, ssh: said };
        }
        return LinkError::Unreachable { host, ssh: said };
    }
    if code == Some(127) || has("command not found") || has("No such file or directory") {
        return LinkError::VmuxMissing { host, detail: said };
    }
    if has("unrecognized subcommand") || has("unexpected argument") {
        return LinkError::TooOld { host, detail: said };
    }
    let ended = match status {
        Some(status) => format!("the remote command ended ({status})"),
        None => "the remote command ended".to_string(),
    };
    LinkError::Protocol {
        host,
        detail: if said.is_empty() {
            ended
        } else {
            format!("{ended}: {said}")
        },
    }
}

/// The last few lines ssh wrote, as one line (ssh's message is its last line; banners and
/// warnings come first).
pub fn last_words(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(2);
    let words = lines[start..].join("; ");
    if words.is_empty() {
        "ssh said nothing".to_string()
    } else {
        words
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn target() -> Target {
        "ssh://root@host2".parse().expect("parses")
    }

    fn exited(code: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(code << 8))
    }

    #[test]
    fn each_way_ssh_fails_gets_its_own_message() {
        let refused = classify(
            &target(),
            exited(255),
            "ssh: connect to host host2 port 22: Connection refused\n",
        );
        assert!(
            matches!(refused, LinkError::Unreachable { .. }),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("Connection refused"),
            "{refused}"
        );
        let denied = classify(
            &target(),
            exited(255),
            "root@host2: Permission denied (publickey).\n",
        );
        assert!(matches!(denied, LinkError::AuthFailed { .. }), "{denied}");
        let missing = classify(
            &target(),
            exited(127),
            "bash: line 1: vmux: command not found\n",
        );
        assert!(
            missing
                .to_string()
                .starts_with("vmux is not installed on root@host2"),
            "{missing}"
        );
        assert!(
            missing.to_string().contains("install vmux on root@host2"),
            "{missing}"
        );
        let old = classify(
            &target(),
            exited(2),
            "error: unrecognized subcommand 'agent'\n",
        );
        assert!(matches!(old, LinkError::TooOld { .. }), "{old}");
    }

    #[test]
    fn the_command_runs_the_agent_with_the_address_parts() {
        let target: Target = "ssh://me@h:2222".parse().expect("parses");
        let ssh = command(&target, Prompts::Never);
        let args: Vec<String> = ssh
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(ssh.get_program(), "ssh");
        for expected in ["-p", "2222", "-l", "me", "BatchMode=yes"] {
            assert!(args.iter().any(|a| a == expected), "{args:?}");
        }
        assert!(
            args.ends_with(&[
                "--".to_string(),
                "h".to_string(),
                "vmux agent --stdio".to_string()
            ]),
            "{args:?}"
        );
    }
}
