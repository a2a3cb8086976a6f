//! A private tmux server for the end-to-end TUI tests: its socket lives in the test's own
//! temp dir (so no user's or other test run's tmux server can be reached), it ignores
//! ~/.tmux.conf, and it runs the TUI in one session named `tui`. The server is killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// One private tmux server.
pub struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// A server whose socket is `socket` (started by the first session).
    pub fn at(socket: &Path) -> Tmux {
        Tmux {
            socket: socket.to_path_buf(),
        }
    }

    /// Runs `tmux ARGS` against this server.
    pub fn tmux(&self, args: &[&str]) -> Output {
        // `-f /dev/null`: the server ignores the user's ~/.tmux.conf.
        Command::new("tmux")
            .args(["-f", "/dev/null", "-S"])
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// Runs the shell command `command` in session `tui`, `columns`×`rows`: a fresh session,
    /// or the same pane again when the session exists (killing the only session would make
    /// the server exit, and a new session started while it exits fails).
    pub fn run_in_session(&self, command: &str, columns: u16, rows: u16) {
        if self.tmux(&["has-session", "-t", "tui"]).status.success() {
            let out = self.tmux(&["respawn-pane", "-k", "-t", "tui", command]);
            assert!(out.status.success(), "tmux respawn-pane: {out:?}");
            return;
        }
        let (columns, rows) = (columns.to_string(), rows.to_string());
        let out = self.tmux(&[
            "new-session",
            "-d",
            "-s",
            "tui",
            "-x",
            &columns,
            "-y",
            &rows,
            command,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
    }

    /// Sends `keys` to the session (tmux key names; `-l` first for literal text).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend_from_slice(keys);
        let out = self.tmux(&args);
        assert!(out.status.success(), "send-keys {keys:?}: {out:?}");
    }

    /// The session's screen now.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "tui"]).stdout)
            .into_owned()
    }

    /// Waits up to `timeout` until the screen satisfies `check`; fails with the last screen.
    pub fn wait(&self, timeout: Duration, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// The pid of the program the session's pane runs.
    pub fn pane_pid(&self) -> u32 {
        let out = self.tmux(&["display-message", "-p", "-t", "tui", "#{pane_pid}"]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a pane pid")
    }

    /// Kills the server (and with it the session).
    pub fn kill(&self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.kill();
    }
}
