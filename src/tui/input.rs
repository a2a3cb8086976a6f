//! A one-line text field (filter, palette, wizard and form fields, console search) with the
//! usual editing keys: arrows, Home/End, Backspace/Delete, Ctrl-A/E/U/K/W.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Longest text a field accepts (characters); paths and command lines fit easily.
pub const MAX_CHARS: usize = 4096;

/// Text plus a cursor (a character index, `0..=len`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineInput {
    text: String,
    cursor: usize,
}

/// What a key did to a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// The text changed.
    Changed,
    /// Only the cursor moved.
    Moved,
    /// Not an editing key; the caller may use it.
    Ignored,
}

impl LineInput {
    /// A field holding `text` with the cursor at its end.
    pub fn new(text: &str) -> LineInput {
        let mut input = LineInput::default();
        input.set(text);
        input
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Cursor position in characters.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Replaces the text and puts the cursor at its end.
    pub fn set(&mut self, text: &str) {
        self.text = text.chars().take(MAX_CHARS).collect();
        self.cursor = self.text.chars().count();
    }

    fn byte_at(&self, char_index: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_index)
            .map_or(self.text.len(), |(i, _)| i)
    }

    /// Inserts `text` at the cursor (paste); control characters are dropped.
    pub fn insert_str(&mut self, text: &str) -> Edit {
        let room = MAX_CHARS.saturating_sub(self.text.chars().count());
        let clean: String = text
            .chars()
            .filter(|c| !c.is_control())
            .take(room)
            .collect();
        if clean.is_empty() {
            return Edit::Ignored;
        }
        let at = self.byte_at(self.cursor);
        self.text.insert_str(at, &clean);
        self.cursor += clean.chars().count();
        Edit::Changed
    }

    /// Applies an editing key.
    pub fn handle(&mut self, key: &KeyEvent) -> Edit {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let len = self.text.chars().count();
        match key.code {
            KeyCode::Char('a') if ctrl => self.move_to(0),
            KeyCode::Char('e') if ctrl => self.move_to(len),
            KeyCode::Char('u') if ctrl => {
                let at = self.byte_at(self.cursor);
                self.text.replace_range(..at, "");
                self.cursor = 0;
                Edit::Changed
            }
            KeyCode::Char('k') if ctrl => {
                let at = self.byte_at(self.cursor);
                self.text.truncate(at);
                Edit::Changed
            }
            KeyCode::Char('w') if ctrl => {
                let chars: Vec<char> = self.text.chars().collect();
                let mut start = self.cursor;
                while start > 0 && chars[start - 1] == ' ' {
                    start -= 1;
                }
                while start > 0 && chars[start - 1] != ' ' {
                    start -= 1;
                }
                let (from, to) = (self.byte_at(start), self.byte_at(self.cursor));
                self.text.replace_range(from..to, "");
                self.cursor = start;
                Edit::Changed
            }
            KeyCode::Char(c) if !ctrl && !key.modifiers.contains(KeyModifiers::ALT) => {
                self.insert_str(c.encode_utf8(&mut [0; 4]))
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let from = self.byte_at(self.cursor - 1);
                let to = self.byte_at(self.cursor);
                self.text.replace_range(from..to, "");
                self.cursor -= 1;
                Edit::Changed
            }
            KeyCode::Delete if self.cursor < len => {
                let from = self.byte_at(self.cursor);
                let to = self.byte_at(self.cursor + 1);
                self.text.replace_range(from..to, "");
                Edit::Changed
            }
            KeyCode::Left => self.move_to(self.cursor.saturating_sub(1)),
            KeyCode::Right => self.move_to((self.cursor + 1).min(len)),
            KeyCode::Home => self.move_to(0),
            KeyCode::End => self.move_to(len),
            _ => Edit::Ignored,
        }
    }

    fn move_to(&mut self, cursor: usize) -> Edit {
        self.cursor = cursor;
        Edit::Moved
    }

    /// The part of the text that fits `width` columns with the cursor visible, and the
    /// cursor's column within it. Assumes one column per character (paths and names).
    pub fn window(&self, width: usize) -> (String, usize) {
        if width == 0 {
            return (String::new(), 0);
        }
        // Keep the cursor on screen: scroll so it sits in the last column when needed.
        let start = (self.cursor + 1).saturating_sub(width);
        let visible: String = self.text.chars().skip(start).take(width).collect();
        (visible, self.cursor - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(input: &mut LineInput, code: KeyCode) -> Edit {
        input.handle(&KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn typing_inserts_at_the_cursor() {
        let mut input = LineInput::new("wb1");
        press(&mut input, KeyCode::Left);
        press(&mut input, KeyCode::Left);
        press(&mut input, KeyCode::Char('e'));
        assert_eq!(input.text(), "web1");
        assert_eq!(input.cursor(), 2);
    }

    #[test]
    fn backspace_handles_multibyte_characters() {
        let mut input = LineInput::new("né");
        assert_eq!(press(&mut input, KeyCode::Backspace), Edit::Changed);
        assert_eq!(input.text(), "n");
    }

    #[test]
    fn ctrl_w_deletes_the_previous_word() {
        let mut input = LineInput::new("start web1");
        input.handle(&KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL));
        assert_eq!(input.text(), "start ");
    }

    #[test]
    fn window_keeps_the_cursor_visible() {
        let input = LineInput::new("/very/long/path/to/vmlinuz");
        let (visible, cursor) = input.window(10);
        assert_eq!(visible.chars().count(), 9);
        assert_eq!(cursor, 9);
        assert!(input.text().ends_with(&visible));
    }

    #[test]
    fn paste_drops_control_characters() {
        let mut input = LineInput::default();
        input.insert_str("a\x1b[31mb\n");
        assert_eq!(input.text(), "a[31mb");
    }
}
