//! A small line editor for the interactive programs: echo as you type, backspace, Ctrl-U
//! (erase line), Ctrl-C (abandon line), CR, LF or CR LF as Enter, and escape sequences (arrow
//! keys and the like) swallowed instead of echoed.

use crate::kit::console::write_bytes;

/// Longest line kept, in bytes; further characters are ignored (and not echoed).
pub const LINE_MAX: usize = 120;

/// What one input byte did.
pub enum Event<'a> {
    /// Nothing to act on yet.
    Pending,
    /// Enter was pressed; the line (without the newline).
    Line(&'a [u8]),
    /// Ctrl-C: the line was abandoned.
    Cancelled,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// Saw ESC.
    Start,
    /// Inside a CSI sequence (ESC [ ... final byte).
    Csi,
}

/// Editing state for one line at a time.
pub struct LineEditor {
    buf: [u8; LINE_MAX],
    len: usize,
    escape: Escape,
    last_was_cr: bool,
}

impl LineEditor {
    /// An empty editor.
    pub const fn new() -> Self {
        LineEditor {
            buf: [0; LINE_MAX],
            len: 0,
            escape: Escape::None,
            last_was_cr: false,
        }
    }

    /// Feeds one received byte, echoing what it changed.
    pub fn feed(&mut self, byte: u8) -> Event<'_> {
        let after_cr = core::mem::replace(&mut self.last_was_cr, byte == b'\r');
        match self.escape {
            Escape::Start => {
                self.escape = if byte == b'[' {
                    Escape::Csi
                } else {
                    Escape::None
                };
                return Event::Pending;
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                }
                return Event::Pending;
            }
            Escape::None => {}
        }
        match byte {
            b'\n' if after_cr => Event::Pending, // the LF of a CR LF pair
            b'\r' | b'\n' => {
                write_bytes(b"\r\n");
                let len = core::mem::take(&mut self.len);
                Event::Line(self.buf.get(..len).unwrap_or(&[]))
            }
            0x08 | 0x7f => {
                if self.len > 0 {
                    self.len -= 1;
                    write_bytes(b"\x08 \x08");
                }
                Event::Pending
            }
            0x15 => {
                // Ctrl-U: erase what was typed.
                for _ in 0..self.len {
                    write_bytes(b"\x08 \x08");
                }
                self.len = 0;
                Event::Pending
            }
            0x03 => {
                write_bytes(b"^C\r\n");
                self.len = 0;
                Event::Cancelled
            }
            0x1b => {
                self.escape = Escape::Start;
                Event::Pending
            }
            0x20..=0x7e => {
                if let Some(slot) = self.buf.get_mut(self.len) {
                    *slot = byte;
                    self.len += 1;
                    write_bytes(&[byte]);
                }
                Event::Pending
            }
            _ => Event::Pending,
        }
    }
}

/// Splits `line` into its first word and the rest (leading spaces of both removed).
pub fn split_command(line: &[u8]) -> (&[u8], &[u8]) {
    let line = trim_start(line);
    let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    match line.split_at_checked(end) {
        Some((word, rest)) => (word, trim_start(rest)),
        None => (line, &[]),
    }
}

fn trim_start(text: &[u8]) -> &[u8] {
    let start = text.iter().position(|&b| b != b' ').unwrap_or(text.len());
    text.get(start..).unwrap_or(&[])
}
