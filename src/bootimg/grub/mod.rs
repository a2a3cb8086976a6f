//! grub.cfg: which entry GRUB would boot, and the kernel, initrds and command line that entry
//! loads. [`lexer`] → [`parser`] → [`eval`]; [`choose`] runs them with the environment GRUB
//! would have on a BIOS machine (`grub_platform=pc`, every `feature_*` of GRUB 2.x present,
//! the variables of grubenv, `root` and `prefix` on the partition grub.cfg was found on).
//!
//! The default entry is `default` after the top level ran (`N`, an id, a title, or a
//! `>`-path into submenus); when it names nothing (an unset `${saved_entry}`), the first entry
//! is taken and a note says so.

pub mod eval;
pub mod lexer;
pub mod parser;

use eval::{BootCommands, Env, Host};
use std::collections::BTreeMap;

/// Largest grub.cfg read.
pub const MAX_CONFIG_SIZE: u64 = 1 << 20;

/// The entry GRUB would boot and what it loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrubChoice {
    /// Its title.
    pub title: String,
    /// Its `--id`, when it has one.
    pub id: Option<String>,
    /// What its body does.
    pub commands: BootCommands,
    /// Remarks for the user.
    pub notes: Vec<String>,
}

/// What grub.cfg gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrubOutcome {
    /// The default entry.
    Entry(GrubChoice),
    /// No menu entry at all.
    NoEntry,
}

/// A syntax or evaluation problem: 1-based line and reason.
pub type GrubError = (usize, String);

/// Evaluates grub.cfg `src`, found on GRUB device `root` in directory `prefix_dir`
/// (`/boot/grub`), with grubenv variables `grubenv`.
pub fn choose(
    src: &str,
    grubenv: &BTreeMap<String, String>,
    root: &str,
    prefix_dir: &str,
    host: &dyn Host,
) -> Result<GrubOutcome, GrubError> {
    let tokens = lexer::lex(src)?;
    let stmts = parser::parse(&tokens)?;
    let mut vars = grubenv.clone();
    for (name, value) in [
        ("grub_platform", "pc"),
        ("grub_cpu", "i386"),
        ("feature_200_final", "y"),
        ("feature_all_video_module", "y"),
        ("feature_default_font_path", "y"),
        ("feature_menuentry_id", "y"),
        ("feature_menuentry_options", "y"),
        ("feature_nativedisk_cmd", "y"),
        ("feature_platform_search_hint", "y"),
        ("feature_timeout_style", "y"),
    ] {
        vars.insert(name.into(), value.into());
    }
    vars.insert("root".into(), root.into());
    vars.insert("prefix".into(), format!("({root}){prefix_dir}"));
    vars.insert("cmdpath".into(), format!("({root})"));
    let menu = eval::run_menu(&stmts, Env::new(vars), host).map_err(|e| (e.line, e.reason))?;
    let default = menu.env.get("default").to_string();
    let (entry, note) =
        eval::resolve_default(&menu.items, &default, menu.default_source.as_deref());
    let Some(entry) = entry else {
        return Ok(GrubOutcome::NoEntry);
    };
    let commands = eval::boot_commands(entry, &menu.env, host).map_err(|e| (e.line, e.reason))?;
    let mut notes = menu.notes;
    notes.extend(note);
    Ok(GrubOutcome::Entry(GrubChoice {
        title: entry.title.clone(),
        id: entry.id.clone(),
        commands,
        notes,
    }))
}

#[cfg(test)]
mod tests;
