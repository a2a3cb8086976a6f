//! The full-screen console (`vmux` with no subcommand): a VM list with live stats, details
//! with charts, serial consoles through a vt100 emulator, a creation wizard, dialogs, a
//! command palette, themes and rebindable keys.
//!
//! Architecture (see DESIGN.md §5): input, host replies, stats, guest output and a tick
//! become [`action::Action`]s; [`update::update`] applies them to the [`app::App`] and queues
//! [`action::Effect`]s; [`ui::draw`] is pure and runs only when something visible changed,
//! at most ~30 times a second. The [`runtime`] owns the terminal and the threads that call
//! the blocking [`crate::client::Host`] trait; nothing here touches engine internals. Remote hosts
//! ([`hosts`]) are reached through a [`hosts::connector::Connector`]; every VM, effect and
//! reply carries the [`hosts::id::HostId`] it belongs to.

pub mod action;
pub mod app;
mod commands;
pub mod confirm;
pub mod console;
pub mod dialogs;
pub mod error_text;
pub mod form;
pub mod history;
pub mod hosts;
pub mod image_setup;
pub mod input;
pub mod keymap;
pub mod networks;
pub mod palette;
pub mod poll;
mod queue;
pub mod runtime;
pub mod scope;
pub mod settings;
pub mod storage;
pub mod task_list;
pub mod tasks;
pub mod theme;
pub mod ui;
pub mod update;
pub mod vms;
pub mod watch;
pub mod wizard;

use std::io::IsTerminal;
use std::path::PathBuf;

pub use app::App;
pub use update::update;

/// How the TUI was asked to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuiOptions {
    /// `--theme NAME`; overrides the settings file.
    pub theme: Option<String>,
    /// The settings file (`config::Paths::settings_file()`); user themes are read from
    /// `themes/` beside it.
    pub settings_path: PathBuf,
}

/// Why the TUI could not start.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// stdin or stdout is not a terminal.
    #[error(
        "the full-screen console needs an interactive terminal; in scripts use subcommands such as `vmux list`"
    )]
    NotATerminal,
    /// `--theme` names no theme.
    #[error(transparent)]
    Theme(#[from] theme::ThemeError),
    /// Setting up or drawing to the terminal failed.
    #[error("terminal error")]
    Terminal(#[source] std::io::Error),
}

/// Builds the app from the options and settings file. Problems in the settings file do not
/// stop the TUI: they are returned as messages for the status line and defaults are used.
pub fn prepare(options: &TuiOptions) -> Result<App, TuiError> {
    let mut warnings = Vec::new();
    let mut hosts_locked = None;
    let settings = settings::Settings::load(&options.settings_path).unwrap_or_else(|e| {
        let message = error_text::error_chain(&e);
        hosts_locked = Some(message.clone());
        warnings.push(message);
        settings::Settings::default()
    });
    let theme_dir = options.settings_path.parent().map(|dir| dir.join("themes"));
    let no_color = theme::no_color_requested();
    let theme = match theme::Theme::resolve(
        options.theme.as_deref(),
        settings.theme.as_deref(),
        no_color,
        theme_dir.as_deref(),
    ) {
        Ok(theme) => theme,
        // A bad --theme is the user's explicit request: refuse it.
        Err(e) if options.theme.is_some() => return Err(e.into()),
        Err(e) => {
            warnings.push(format!("{}: {e}", options.settings_path.display()));
            theme::Theme::default()
        }
    };
    let keymap = keymap::Keymap::with_overrides(&settings.keys).unwrap_or_else(|e| {
        warnings.push(format!(
            "{}: {e}; using the default keys",
            options.settings_path.display()
        ));
        keymap::Keymap::default()
    });
    let mut app = App::new(theme, keymap);
    app.theme_dir = theme_dir;
    // Autoconnect hosts start connecting in the runtime's first turn.
    hosts::pane::load(&mut app, settings.hosts.clone());
    app.hosts_locked = hosts_locked;
    // The wizard's file browser starts where the user started vmux.
    if let Ok(cwd) = std::env::current_dir() {
        app.cwd = cwd;
    }
    if !warnings.is_empty() {
        app.set_status(app::StatusKind::Error, warnings.join("; "));
    }
    Ok(app)
}

/// Runs the full-screen console on `host` (its VMs, storage and networks) until the user
/// quits; VMs keep running. The terminal is restored on return, on error and on panic. The
/// remote hosts of the settings file are reached over the system `ssh`.
pub fn run(host: crate::client::HostApi, options: TuiOptions) -> anyhow::Result<()> {
    run_with(host, options, std::sync::Arc::new(hosts::ssh::SshConnector))
}

/// [`run`], with `connector` opening the links to the remote hosts of the settings file.
pub fn run_with(
    host: crate::client::HostApi,
    options: TuiOptions,
    connector: std::sync::Arc<dyn hosts::connector::Connector>,
) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(TuiError::NotATerminal.into());
    }
    let app = prepare(&options)?;
    let remotes = runtime::Remotes {
        connector,
        settings_path: options.settings_path.clone(),
    };
    runtime::run(host, remotes, app).map_err(TuiError::Terminal)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &std::path::Path, theme: Option<&str>) -> TuiOptions {
        TuiOptions {
            theme: theme.map(str::to_string),
            settings_path: dir.join("vmux.toml"),
        }
    }

    #[test]
    fn unknown_cli_theme_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = prepare(&options(dir.path(), Some("neon")))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("neon"));
    }

    #[test]
    fn settings_theme_is_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("vmux.toml"), "theme = \"light\"\n").expect("write");
        let app = prepare(&options(dir.path(), None)).expect("prepares");
        if !theme::no_color_requested() {
            assert_eq!(app.theme.name, "light");
        }
    }

    #[test]
    fn autoconnect_hosts_start_connecting_and_the_others_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("vmux.toml"),
            "[[hosts]]\nname = \"h2\"\nuri = \"ssh://h2\"\n[[hosts]]\nname = \"h3\"\nuri = \"ssh://h3\"\nautoconnect = false\n",
        )
        .expect("write");
        let mut app = prepare(&options(dir.path(), None)).expect("prepares");
        let states: Vec<_> = app.hosts.iter().map(|h| h.state.clone()).collect();
        use hosts::state::HostState;
        assert_eq!(states, [HostState::Connecting, HostState::Disconnected]);
        assert_eq!(
            app.take_effects(),
            [action::Effect::Connect {
                name: "h2".into(),
                uri: "ssh://h2".into()
            }]
        );
        assert!(app.hosts_locked.is_none());
    }

    #[test]
    fn a_settings_file_that_cannot_be_read_locks_the_hosts() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("vmux.toml"),
            "[[hosts]]\nname = \"h2\"\nuri = \"h2\"\n",
        )
        .expect("write");
        let app = prepare(&options(dir.path(), None)).expect("prepares");
        assert!(app.hosts.is_empty());
        let why = app.hosts_locked.expect("locked");
        assert!(why.contains("ssh://"), "{why}");
    }

    #[test]
    fn broken_keys_fall_back_to_defaults_with_a_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("vmux.toml"), "[keys]\nstrat = \"s\"\n").expect("write");
        let app = prepare(&options(dir.path(), None)).expect("prepares");
        let status = app.status.expect("warning shown");
        assert!(status.text.contains("strat"), "{}", status.text);
    }
}
