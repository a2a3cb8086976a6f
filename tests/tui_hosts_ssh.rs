//! The TUI with two hosts for real: this build's `vmux` in a private tmux server, its own
//! `VMUX_HOME`, and a `[[hosts]]` entry for the test sshd on loopback (tests/common/sshd.rs),
//! whose logins run this build's agent on the "remote" home. The list shows both hosts' VMs
//! with a HOST column; when the ssh process is killed the host shows as reconnecting and its
//! VMs come back. Skips without tmux or the OpenSSH programs (fails under CI).

mod common;

use common::prereq::{TMUX, met};
use common::sshd::{TestSshd, URI};
use common::tmux::Tmux;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const VMUX: &str = env!("CARGO_BIN_EXE_vmux");
/// Longest the TUI may take to show an expected screen (an ssh login included).
const TIMEOUT: Duration = Duration::from_secs(40);

/// The pids of the processes whose parent is `parent` and whose name is `name`.
fn children(parent: u32, name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // `pid (comm) state ppid …`: the name may hold spaces, so split after the `)`.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let comm = head.split_once('(').map_or("", |(_, c)| c);
            let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            comm == name && ppid == Some(parent)
        })
        .collect()
}

fn vmux(home: &Path, path: &str, args: &[&str]) {
    let out = Command::new(VMUX)
        .args(args)
        .env("VMUX_HOME", home)
        .env("PATH", path)
        .output()
        .expect("vmux runs");
    assert!(out.status.success(), "vmux {args:?}: {out:?}");
}

fn row_of<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
}

#[test]
fn both_hosts_are_listed_and_a_killed_ssh_reconnects() {
    if !met(&[TMUX]) {
        return;
    }
    let Some(sshd) = TestSshd::start() else {
        return;
    };
    let local = sshd.dir.path().join("local-home");
    std::fs::create_dir_all(local.join("config")).expect("local home");
    let path = sshd.path();
    vmux(&local, &path, &["create", "near", "--demo"]);
    vmux(&sshd.remote_home, &path, &["create", "far", "--demo"]);
    std::fs::write(
        local.join("config").join("vmux.toml"),
        format!("[[hosts]]\nname = \"r2\"\nuri = \"{URI}\"\n"),
    )
    .expect("settings");

    let tmux = Tmux::at(&sshd.dir.path().join("tmux.sock"));
    let command = format!(
        "env PATH={path} VMUX_HOME={} {VMUX}; echo vmux-exit=$?; sleep 600",
        local.display()
    );
    tmux.run_in_session(&command, 100, 30);
    let both = |s: &str| {
        s.contains("HOST")
            && row_of(s, "far").is_some_and(|r| r.contains("r2"))
            && row_of(s, "near").is_some_and(|r| r.contains("local"))
    };
    tmux.wait(TIMEOUT, "both hosts' VMs", both);

    // The TUI (the pane's shell runs it) has one ssh child: the link to r2. Kill it.
    let tui = children(tmux.pane_pid(), "vmux");
    assert_eq!(tui.len(), 1, "one vmux under the pane: {tui:?}");
    let ssh = children(tui[0], "ssh");
    assert_eq!(ssh.len(), 1, "one ssh under vmux: {ssh:?}");
    let killed = Command::new("kill")
        .arg(ssh[0].to_string())
        .status()
        .expect("kill runs");
    assert!(killed.success());
    tmux.wait(TIMEOUT, "r2 reconnecting", |s| {
        s.lines()
            .any(|l| l.contains("r2") && l.contains("reconnecting"))
    });
    tmux.wait(TIMEOUT, "r2's VMs back", both);
    let again = children(tui[0], "ssh");
    assert!(
        again.len() == 1 && again != ssh,
        "a new ssh: {again:?} (killed {ssh:?})"
    );
    assert!(!tmux.screen().contains("vmux-exit"), "{}", tmux.screen());
}
