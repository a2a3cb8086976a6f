//! GRUB's environment block (`grubenv`): the 1 KiB file of `name=value` lines where
//! `grub2-set-default` and `grub-reboot` record `saved_entry` and `next_entry`, and where older
//! Fedora releases keep `kernelopts` for their BLS entries.

use std::collections::BTreeMap;

/// Largest grubenv read (the real one is exactly 1024 bytes).
pub const MAX_SIZE: u64 = 64 * 1024;
/// Longest value kept.
const MAX_VALUE: usize = 4096;

/// Parses a grubenv file: `#` comment lines and `#` padding ignored, `name=value` lines kept,
/// backslash escapes (`\n`, `\\`) undone.
pub fn parse(bytes: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            continue;
        }
        let value = unescape(value);
        if value.len() <= MAX_VALUE {
            vars.insert(name.to_string(), value);
        }
    }
    vars
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_entry_and_kernelopts_are_read_and_padding_ignored() {
        let mut block =
            b"# GRUB Environment Block\nsaved_entry=abc-6.5.6\nkernelopts=root=UUID=1 ro\n"
                .to_vec();
        block.resize(1024, b'#');
        let vars = parse(&block);
        assert_eq!(vars["saved_entry"], "abc-6.5.6");
        assert_eq!(vars["kernelopts"], "root=UUID=1 ro");
        assert_eq!(vars.len(), 2);
    }

    #[test]
    fn escapes_are_undone_and_garbage_skipped() {
        let vars = parse(b"a=x\\\\y\n=novalue\nbad name=1\n\xff\xfe=2\n");
        assert_eq!(vars["a"], "x\\y");
        assert_eq!(vars.len(), 1);
    }
}
