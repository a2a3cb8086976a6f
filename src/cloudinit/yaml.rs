//! A small YAML writer for the seed's files: block style, every string double-quoted, so values
//! such as MAC addresses (`52:54:00:12:34:56`, a base-60 integer to YAML 1.1 parsers like
//! cloud-init's PyYAML), `yes`, `on` or `012` can never be read back as anything but the string
//! written. Every character YAML does not allow in a document (control characters, DEL, C1
//! controls, U+FFFE/U+FFFF) or would read as a line break is written as an escape, so any
//! string makes valid YAML that reads back as that string (found by fuzzing: DEL and C1
//! controls went out raw and the document did not parse).

/// A YAML value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Yaml {
    /// A string (always quoted).
    Str(String),
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A sequence.
    Seq(Vec<Yaml>),
    /// A mapping; keys are written plain and must be simple words (`ssh_authorized_keys`,
    /// `local-hostname`, `nic0`).
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Yaml {
        Yaml::Str(s.into())
    }

    /// A mapping from `(key, value)` pairs.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Yaml)>) -> Yaml {
        Yaml::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

/// The document `doc` (a mapping or sequence) as YAML text ending in a newline.
pub fn render(doc: &Yaml) -> String {
    let mut out = String::new();
    block(doc, 0, &mut out);
    out
}

fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::Str(s) => Some(quoted(s)),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Int(i) => Some(i.to_string()),
        Yaml::Seq(items) if items.is_empty() => Some("[]".into()),
        Yaml::Map(pairs) if pairs.is_empty() => Some("{}".into()),
        _ => None,
    }
}

/// `s` as a YAML double-quoted scalar.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if printable(c) => out.push(c),
            c if u32::from(c) <= 0xff => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if u32::from(c) <= 0xffff => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// Whether `c` may stand as is in a YAML 1.1 or 1.2 double-quoted scalar: printable
/// (`c-printable`) and not a line break (NEL, U+2028 and U+2029 are line breaks to YAML 1.1,
/// and a line break in a quoted scalar is folded into a space) nor a byte-order mark.
fn printable(c: char) -> bool {
    matches!(u32::from(c),
        0x20..=0x7e | 0xa0..=0x2027 | 0x202a..=0xd7ff | 0xe000..=0xfefe | 0xff00..=0xfffd
            | 0x1_0000..)
}

fn block(value: &Yaml, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Yaml::Map(pairs) => {
            for (key, v) in pairs {
                match scalar(v) {
                    Some(s) => out.push_str(&format!("{pad}{key}: {s}\n")),
                    None => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        block(v, indent + 2, out);
                    }
                }
            }
        }
        Yaml::Seq(items) => {
            for item in items {
                match scalar(item) {
                    Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                    None => {
                        let mut inner = String::new();
                        block(item, indent + 2, &mut inner);
                        // The item's first line starts after "- " instead of two spaces.
                        out.push_str(&pad);
                        out.push_str("- ");
                        out.push_str(&inner[indent + 2..]);
                    }
                }
            }
        }
        other => {
            if let Some(s) = scalar(other) {
                out.push_str(&format!("{pad}{s}\n"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_documents_render_in_block_style() {
        let doc = Yaml::map([
            ("version", Yaml::Int(2)),
            (
                "users",
                Yaml::Seq(vec![Yaml::map([
                    ("name", Yaml::str("alice")),
                    ("keys", Yaml::Seq(vec![Yaml::str("ssh-ed25519 AAAA a@b")])),
                    ("lock_passwd", Yaml::Bool(true)),
                ])]),
            ),
            ("empty", Yaml::Seq(vec![])),
        ]);
        assert_eq!(
            render(&doc),
            "version: 2\nusers:\n  - name: \"alice\"\n    keys:\n      - \"ssh-ed25519 AAAA a@b\"\n    lock_passwd: true\nempty: []\n"
        );
    }

    #[test]
    fn strings_that_look_like_other_types_stay_strings() {
        let doc = Yaml::map([
            ("mac", Yaml::str("52:54:00:12:34:56")),
            ("yes", Yaml::str("yes")),
            ("quote", Yaml::str("a \"b\" \\ c\n")),
            (
                "controls",
                Yaml::str("\u{1}\t\u{7f}\u{85}\u{9f}\u{2028}\u{feff}\u{fffe}"),
            ),
        ]);
        let text = render(&doc);
        let parsed: serde_norway::Value = serde_norway::from_str(&text).expect("parses");
        assert_eq!(
            parsed["mac"],
            serde_norway::Value::String("52:54:00:12:34:56".into())
        );
        assert_eq!(parsed["yes"], serde_norway::Value::String("yes".into()));
        assert_eq!(
            parsed["quote"],
            serde_norway::Value::String("a \"b\" \\ c\n".into())
        );
        assert_eq!(
            parsed["controls"],
            serde_norway::Value::String("\u{1}\t\u{7f}\u{85}\u{9f}\u{2028}\u{feff}\u{fffe}".into())
        );
    }
}
