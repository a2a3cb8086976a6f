//! Shell completions and manual pages, both generated from the clap definitions that `--help`
//! prints, so neither can drift from the grammar.
//!
//! Completions are clap_complete's dynamic ones: `vmux completions SHELL` prints a small
//! script that, on each Tab, runs `COMPLETE=SHELL vmux -- WORDS` (handled first thing in
//! `main`, before any parsing) and offers what it prints: verbs and flags from the grammar,
//! and the names of this host's VMs, pools, volumes and networks, read from the definition
//! stores (under `VMUX_HOME` when set) at that moment. The candidate functions never fail: a
//! store that cannot be read offers nothing.
//!
//! `vmux man [VERB]` prints a manual page (roff) for `vmux` or one verb; `vmux man --dir DIR`
//! writes `vmux.1` and one `vmux-VERB.1` per verb.

use crate::config::Paths;
use crate::network::NetworkStore;
use crate::storage::StorageManager;
use clap::CommandFactory;
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::{Bash, EnvCompleter, Fish, Zsh};
use std::io::Write;
use std::path::Path;

/// The environment variable the completion scripts set to ask for candidates.
pub const COMPLETE_VAR: &str = "COMPLETE";

/// The shells `vmux completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// GNU bash (with bash-completion, or plain `complete`).
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

impl Shell {
    fn completer(self) -> &'static dyn EnvCompleter {
        match self {
            Shell::Bash => &Bash,
            Shell::Zsh => &Zsh,
            Shell::Fish => &Fish,
        }
    }
}

/// Answers a completion request when the shell script asked for one (`COMPLETE` set), and
/// exits; otherwise returns at once. Called by `main` before anything is parsed or printed.
pub fn complete_if_asked() {
    clap_complete::CompleteEnv::with_factory(super::Args::command)
        .var(COMPLETE_VAR)
        .complete();
}

/// `vmux completions SHELL`: the script that hooks vmux's completions into `shell`. It runs
/// the binary at `completer` (this executable's absolute path, so completion works whether or
/// not vmux is on the `PATH`).
pub fn write_script(shell: Shell, completer: &Path, out: &mut dyn Write) -> std::io::Result<()> {
    shell.completer().write_registration(
        COMPLETE_VAR,
        "vmux",
        "vmux",
        &completer.to_string_lossy(),
        out,
    )
}

/// `vmux man [VERB]`: the manual page of `vmux`, or of one verb (`vmux-create(1)`).
pub fn write_man_page(verb: Option<&str>, out: &mut dyn Write) -> Result<(), String> {
    let mut command = super::Args::command().disable_help_subcommand(true);
    command.build();
    let page = match verb {
        None => command,
        Some(verb) => command
            .find_subcommand(verb)
            .filter(|sub| !sub.is_hide_set())
            .cloned()
            .ok_or_else(|| format!("'{verb}' is not a vmux verb; `vmux --help` lists them"))?,
    };
    clap_mangen::Man::new(page)
        .render(out)
        .map_err(|e| format!("cannot write the manual page: {e}"))
}

/// `vmux man --dir DIR`: writes `vmux.1` and `vmux-VERB.1` for every verb into `dir`
/// (created when missing); returns how many pages were written.
pub fn write_man_pages(dir: &Path) -> Result<usize, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut command = super::Args::command().disable_help_subcommand(true);
    command.build();
    let mut pages = vec![command.clone()];
    pages.extend(
        command
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set())
            .cloned(),
    );
    for page in &pages {
        clap_mangen::Man::new(page.clone())
            .generate_to(dir)
            .map_err(|e| format!("cannot write a manual page into {}: {e}", dir.display()))?;
    }
    Ok(pages.len())
}

/// The directories vmux reads, or `None` (nothing to offer) when they cannot be found.
fn paths() -> Option<Paths> {
    Paths::from_env().ok()
}

fn candidates(names: impl IntoIterator<Item = String>) -> Vec<CompletionCandidate> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    names.dedup();
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// Every defined VM (broken definitions too: they can still be stopped or edited).
pub fn vm_names() -> Vec<CompletionCandidate> {
    let Some(paths) = paths() else {
        return Vec::new();
    };
    let dir = paths.vms_dir();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    candidates(entries.flatten().filter_map(|entry| {
        let path = entry.path();
        (path.extension()? == "toml").then(|| path.file_stem()?.to_str().map(str::to_string))?
    }))
}

/// Every storage pool (`default` always).
pub fn pool_names() -> Vec<CompletionCandidate> {
    let Some(paths) = paths() else {
        return Vec::new();
    };
    let storage = StorageManager::new(paths);
    let pools = storage.list_pools().unwrap_or_default();
    candidates(
        pools
            .into_iter()
            .flatten()
            .map(|pool| pool.name)
            .chain([crate::config::DEFAULT_POOL.to_string()]),
    )
}

/// The volumes of every active pool, by name (for `vol-* POOL VOLUME`).
pub fn volume_names() -> Vec<CompletionCandidate> {
    candidates(pool_volumes().into_iter().map(|(_, volume)| volume))
}

/// The volumes of every active pool as `POOL/VOLUME` (what `--disk` and `attach-disk` take).
pub fn disk_sources() -> Vec<CompletionCandidate> {
    candidates(
        pool_volumes()
            .into_iter()
            .map(|(pool, volume)| format!("{pool}/{volume}")),
    )
}

fn pool_volumes() -> Vec<(String, String)> {
    let Some(paths) = paths() else {
        return Vec::new();
    };
    let storage = StorageManager::new(paths);
    let pools = storage.list_pools().unwrap_or_default();
    pools
        .into_iter()
        .flatten()
        .filter(|pool| pool.active)
        .flat_map(|pool| {
            storage
                .volume_names(&pool.name)
                .unwrap_or_default()
                .into_iter()
                .map(move |volume| (pool.name.clone(), volume))
        })
        .collect()
}

/// Every defined network (`default` always: it is defined on first use).
pub fn network_names() -> Vec<CompletionCandidate> {
    let Some(paths) = paths() else {
        return Vec::new();
    };
    // By file name, so a network whose file is broken can still be named (to undefine it).
    let store = NetworkStore::new(&paths);
    let stems = store.list().into_iter().map(|entry| match entry {
        Ok(network) => network.name,
        Err(broken) => broken
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    });
    candidates(
        stems
            .filter(|name| !name.is_empty())
            .chain(["default".to_string()]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_that_calls_the_binary() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            write_script(shell, Path::new("/opt/vmux/bin/vmux"), &mut out).expect("script");
            let script = String::from_utf8(out).expect("utf-8");
            assert!(script.contains("/opt/vmux/bin/vmux"), "{shell:?}: {script}");
            assert!(script.contains(COMPLETE_VAR), "{shell:?}: {script}");
        }
    }

    #[test]
    fn a_verb_has_its_own_manual_page() {
        let mut out = Vec::new();
        write_man_page(Some("create"), &mut out).expect("page");
        let page = String::from_utf8(out).expect("utf-8");
        assert!(page.contains(".TH vmux-create 1"), "{page}");
        assert!(page.contains("max\\-vcpus"), "{page}");
    }

    #[test]
    fn an_unknown_verb_has_no_manual_page() {
        let err = write_man_page(Some("frobnicate"), &mut Vec::new()).expect_err("unknown");
        assert!(err.contains("vmux --help"), "{err}");
    }

    #[test]
    fn the_hidden_completion_machinery_has_no_page() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = write_man_pages(dir.path()).expect("pages");
        assert!(dir.path().join("vmux.1").is_file());
        assert!(dir.path().join("vmux-vol-create-as.1").is_file());
        let files = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(files, written);
    }
}
