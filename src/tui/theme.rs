//! Colour themes: named styles for every part of the screen, read from TOML.
//!
//! The four themes in `themes/*.toml` (dark, light, high-contrast, 16-colour) are compiled
//! in, so the binary works anywhere; a file `<config>/themes/<name>.toml` adds a theme or
//! overrides a built-in one. A theme file may leave styles out: they come from `dark`.
//! With `NO_COLOR` set, [`Theme::monochrome`] is used instead: bold, underline and reverse
//! video only.

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The built-in themes, name and file text.
pub const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("16-colour", include_str!("../../themes/16-colour.toml")),
];

/// The theme used when none is chosen.
pub const DEFAULT_THEME: &str = "dark";

/// Problems finding or reading a theme.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    /// No built-in or user theme has that name.
    #[error("there is no theme '{name}'; choose one of {available} or add {}", user_file.display())]
    Unknown {
        /// The name asked for.
        name: String,
        /// Names that exist.
        available: String,
        /// Where a user theme of that name would be read from.
        user_file: PathBuf,
    },
    /// A user theme file could not be read.
    #[error("cannot read theme file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A theme file is not valid.
    #[error("theme '{name}': {reason}")]
    Invalid {
        /// The theme.
        name: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

macro_rules! theme_styles {
    ($($field:ident: $doc:literal,)*) => {
        /// Resolved styles for every part of the screen. Owned by the UI thread.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Theme {
            /// The theme's name.
            pub name: String,
            /// Whether colours from the guest's console output are shown (off for `NO_COLOR`).
            pub guest_colours: bool,
            $(#[doc = $doc] pub $field: Style,)*
        }

        /// Every style name a theme file may set.
        pub const STYLE_NAMES: &[&str] = &[$(stringify!($field),)*];

        impl Theme {
            fn blank(name: &str) -> Theme {
                Theme {
                    name: name.to_string(),
                    guest_colours: true,
                    $($field: Style::new(),)*
                }
            }

            fn set(&mut self, key: &str, style: Style) -> bool {
                match key {
                    $(stringify!($field) => self.$field = style,)*
                    _ => return false,
                }
                true
            }
        }
    };
}

theme_styles! {
    base: "Text and background of the whole screen.",
    border: "Pane borders.",
    border_focus: "The border of the focused pane.",
    title: "Pane titles.",
    header: "Table headers and field labels.",
    selected: "The selected row.",
    marked: "Rows marked for a bulk action.",
    muted: "Secondary text (hints, units, shut-off VMs).",
    accent: "Highlights (the app name, counts).",
    key: "Key names in the footer and help.",
    running: "State `running`.",
    paused: "State `paused`.",
    shut_off: "State `shut off`.",
    crashed: "State `crashed`.",
    info: "Informational status messages.",
    ok: "Success messages.",
    warning: "Warnings.",
    error: "Errors.",
    cpu: "CPU charts and sparklines.",
    memory: "Memory charts (resident set).",
    memory_alt: "Second memory series (guest RAM touched).",
    exits: "VM exit charts.",
    search: "Search matches in the console.",
    selection: "Mouse selection in the console.",
    input: "Text fields.",
    dialog: "Dialogs and overlays.",
    status: "The status line.",
    footer: "The key footer.",
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: Option<String>,
    #[serde(default)]
    styles: BTreeMap<String, StyleSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    bold: bool,
    #[serde(default)]
    dim: bool,
    #[serde(default)]
    italic: bool,
    #[serde(default)]
    underline: bool,
    #[serde(default)]
    reversed: bool,
}

fn parse_colour(text: &str) -> Result<Color, String> {
    Color::from_str(text).map_err(|_| {
        format!("'{text}' is not a colour; use a name (red, light-blue, reset), 0-255 or #rrggbb")
    })
}

impl StyleSpec {
    fn to_style(&self) -> Result<Style, String> {
        let mut style = Style::new();
        if let Some(fg) = &self.fg {
            style = style.fg(parse_colour(fg)?);
        }
        if let Some(bg) = &self.bg {
            style = style.bg(parse_colour(bg)?);
        }
        let flags = [
            (self.bold, Modifier::BOLD),
            (self.dim, Modifier::DIM),
            (self.italic, Modifier::ITALIC),
            (self.underline, Modifier::UNDERLINED),
            (self.reversed, Modifier::REVERSED),
        ];
        for (on, modifier) in flags {
            if on {
                style = style.add_modifier(modifier);
            }
        }
        Ok(style)
    }
}

impl Default for Theme {
    fn default() -> Theme {
        Theme::builtin(DEFAULT_THEME).expect("the default theme is built in and valid")
    }
}

impl Theme {
    /// A built-in theme by name, if there is one.
    pub fn builtin(name: &str) -> Option<Theme> {
        let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name)?;
        // The built-in files are tested to parse; a failure here is a build defect.
        Some(Theme::parse(name, text, None).expect("built-in themes are valid"))
    }

    /// Parses theme file text; styles it leaves out come from `fallback` (or stay plain).
    pub fn parse(name: &str, text: &str, fallback: Option<&Theme>) -> Result<Theme, ThemeError> {
        let invalid = |reason: String| ThemeError::Invalid {
            name: name.to_string(),
            reason,
        };
        let file: ThemeFile = toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
        let mut theme = fallback.cloned().unwrap_or_else(|| Theme::blank(name));
        theme.name = file.name.unwrap_or_else(|| name.to_string());
        for (key, spec) in &file.styles {
            let style = spec
                .to_style()
                .map_err(|e| invalid(format!("{key}: {e}")))?;
            if !theme.set(key, style) {
                return Err(invalid(format!(
                    "unknown style '{key}'; styles are {}",
                    STYLE_NAMES.join(", ")
                )));
            }
        }
        Ok(theme)
    }

    /// Finds theme `name`: `<user_dir>/<name>.toml` first, then the built-in themes.
    pub fn load(name: &str, user_dir: Option<&Path>) -> Result<Theme, ThemeError> {
        let fallback = Theme::default();
        if let Some(dir) = user_dir {
            let path = dir.join(format!("{name}.toml"));
            match std::fs::read_to_string(&path) {
                Ok(text) => return Theme::parse(name, &text, Some(&fallback)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(ThemeError::Read { path, source }),
            }
        }
        Theme::builtin(name).ok_or_else(|| ThemeError::Unknown {
            name: name.to_string(),
            available: BUILTIN
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
            user_file: user_dir
                .unwrap_or(Path::new("<config>/themes"))
                .join(format!("{name}.toml")),
        })
    }

    /// The theme for `NO_COLOR`: no colours at all, only bold, underline and reverse video;
    /// guest colours are dropped too.
    pub fn monochrome() -> Theme {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let reversed = Style::new().add_modifier(Modifier::REVERSED);
        let mut theme = Theme::blank("no-color");
        theme.guest_colours = false;
        theme.title = bold;
        theme.header = bold.add_modifier(Modifier::UNDERLINED);
        theme.selected = reversed;
        theme.marked = bold;
        theme.key = bold;
        theme.crashed = bold;
        theme.error = bold;
        theme.warning = bold;
        theme.border_focus = bold;
        theme.search = reversed.add_modifier(Modifier::UNDERLINED);
        theme.selection = reversed;
        theme.input = Style::new().add_modifier(Modifier::UNDERLINED);
        theme.status = reversed;
        theme
    }

    /// Picks the theme: `NO_COLOR` wins, then `--theme`, then the settings file, then the
    /// default. `user_dir` is `<config>/themes`.
    pub fn resolve(
        cli: Option<&str>,
        settings: Option<&str>,
        no_color: bool,
        user_dir: Option<&Path>,
    ) -> Result<Theme, ThemeError> {
        if no_color {
            return Ok(Theme::monochrome());
        }
        Theme::load(cli.or(settings).unwrap_or(DEFAULT_THEME), user_dir)
    }

    /// The style for a VM state label.
    pub fn state(&self, state: crate::protocol::RunState) -> Style {
        use crate::protocol::RunState;
        match state {
            RunState::Running => self.running,
            // Saved to disk is suspended, like paused.
            RunState::Paused | RunState::Saved => self.paused,
            RunState::ShutOff => self.shut_off,
            RunState::Crashed => self.crashed,
        }
    }
}

/// Whether the `NO_COLOR` convention asks for no colour (set and not empty).
pub fn no_color_requested() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_theme_sets_every_style() {
        for (name, text) in BUILTIN {
            let file: ThemeFile = toml::from_str(text).expect("parses");
            for style in STYLE_NAMES {
                assert!(file.styles.contains_key(*style), "{name} lacks {style}");
            }
            let theme = Theme::parse(name, text, None).expect("valid");
            assert_eq!(theme.name, *name);
        }
    }

    #[test]
    fn sixteen_colour_theme_uses_only_ansi_colours() {
        let theme = Theme::builtin("16-colour").expect("built in");
        let styles = [
            theme.base,
            theme.selected,
            theme.cpu,
            theme.status,
            theme.input,
        ];
        for style in styles {
            for colour in [style.fg, style.bg].into_iter().flatten() {
                assert!(
                    !matches!(colour, Color::Rgb(..) | Color::Indexed(_)),
                    "{colour:?}"
                );
            }
        }
    }

    #[test]
    fn user_theme_overrides_one_style_and_keeps_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("mine.toml"),
            "[styles]\nerror = { fg = \"#ff0000\" }\n",
        )
        .expect("write");
        let theme = Theme::load("mine", Some(dir.path())).expect("loads");
        assert_eq!(theme.error.fg, Some(Color::Rgb(255, 0, 0)));
        assert_eq!(theme.selected, Theme::default().selected);
    }

    #[test]
    fn unknown_theme_lists_the_available_ones() {
        let err = Theme::load("neon", None).expect_err("must fail");
        let text = err.to_string();
        assert!(
            text.contains("'neon'") && text.contains("high-contrast"),
            "{text}"
        );
    }

    #[test]
    fn misspelt_style_is_refused_with_the_valid_names() {
        let err =
            Theme::parse("x", "[styles]\nerorr = { bold = true }\n", None).expect_err("must fail");
        assert!(err.to_string().contains("erorr"));
    }

    #[test]
    fn no_color_beats_an_explicit_theme() {
        let theme = Theme::resolve(Some("light"), None, true, None).expect("resolves");
        assert!(!theme.guest_colours);
        assert_eq!(theme.selected.fg, None);
    }
}
