//! DEC special graphics (the VT100 line-drawing character set), which the vt100 crate does
//! not implement: guests select it with `ESC ( 0` (or `ESC ) 0` plus SO) and then send
//! `q`, `x`, `l`... meaning `─`, `│`, `┌`. [`LineDrawing`] rewrites those letters into the
//! Unicode box-drawing characters before the bytes reach the emulator.
//!
//! It follows just enough of the escape-sequence grammar to tell text from the insides of
//! escape sequences (CSI parameters, OSC strings), so `ESC [ 0 q` is never rewritten. All
//! bytes pass through unchanged except those text letters; its state is a few bytes whatever
//! the guest sends.

/// Where in the escape-sequence grammar the stream is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Scan {
    /// Plain text.
    #[default]
    Ground,
    /// After ESC.
    Escape,
    /// After ESC and an intermediate byte other than `(` `)`.
    EscapeIntermediate,
    /// After `ESC (` (true: G0) or `ESC )` (false: G1): the next byte names the set.
    Designate(bool),
    /// Inside a CSI sequence.
    Csi,
    /// Inside an OSC / DCS / SOS / PM / APC string.
    Text,
    /// ESC inside such a string (the start of ST).
    TextEscape,
}

/// Tracks the G0/G1 character sets and translates line-drawing text. One per console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineDrawing {
    scan: Scan,
    g0_graphics: bool,
    g1_graphics: bool,
    /// SO selected G1; SI selects G0 again.
    shifted: bool,
}

/// Unicode for DEC special graphics bytes 0x60..=0x7e.
const GRAPHICS: [char; 31] = [
    '◆', '▒', '␉', '␌', '␍', '␊', '°', '±', '␤', '␋', '┘', '┐', '┌', '└', '┼', '⎺', '⎻', '─', '⎼',
    '⎽', '├', '┤', '┴', '┬', '│', '≤', '≥', 'π', '≠', '£', '·',
];

impl LineDrawing {
    fn graphics(&self) -> bool {
        if self.shifted {
            self.g1_graphics
        } else {
            self.g0_graphics
        }
    }

    /// Appends `input` to `out`, with line-drawing letters replaced.
    pub fn translate(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len());
        for &byte in input {
            match self.scan {
                Scan::Ground => match byte {
                    0x1b => self.scan = Scan::Escape,
                    0x0e => self.shifted = true,
                    0x0f => self.shifted = false,
                    0x60..=0x7e if self.graphics() => {
                        let c = GRAPHICS[usize::from(byte - 0x60)];
                        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                        continue;
                    }
                    _ => {}
                },
                Scan::Escape => {
                    self.scan = match byte {
                        b'(' => Scan::Designate(true),
                        b')' => Scan::Designate(false),
                        b'[' => Scan::Csi,
                        b']' | b'P' | b'X' | b'^' | b'_' => Scan::Text,
                        0x20..=0x2f => Scan::EscapeIntermediate,
                        0x1b => Scan::Escape,
                        b'c' => {
                            // RIS resets the character sets too.
                            *self = LineDrawing::default();
                            Scan::Ground
                        }
                        _ => Scan::Ground,
                    }
                }
                Scan::EscapeIntermediate => {
                    if !(0x20..=0x2f).contains(&byte) {
                        self.scan = Scan::Ground;
                    }
                }
                Scan::Designate(g0) => {
                    let graphics = byte == b'0';
                    if g0 {
                        self.g0_graphics = graphics;
                    } else {
                        self.g1_graphics = graphics;
                    }
                    self.scan = Scan::Ground;
                }
                Scan::Csi => match byte {
                    0x40..=0x7e | 0x18 | 0x1a => self.scan = Scan::Ground,
                    0x1b => self.scan = Scan::Escape,
                    _ => {}
                },
                Scan::Text => match byte {
                    0x07 | 0x18 | 0x1a => self.scan = Scan::Ground,
                    0x1b => self.scan = Scan::TextEscape,
                    _ => {}
                },
                Scan::TextEscape => {
                    self.scan = if byte == b'\\' {
                        Scan::Ground
                    } else {
                        Scan::Text
                    };
                }
            }
            out.push(byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> String {
        let mut out = Vec::new();
        LineDrawing::default().translate(input, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn box_letters_become_box_drawing_in_graphics_mode() {
        assert_eq!(run(b"\x1b(0lqk\x1b(Bok"), "\x1b(0┌─┐\x1b(Bok");
    }

    #[test]
    fn csi_final_bytes_are_not_translated() {
        assert_eq!(run(b"\x1b(0\x1b[0qx"), "\x1b(0\x1b[0q│");
    }

    #[test]
    fn shift_out_uses_g1() {
        assert_eq!(run(b"\x1b)0q\x0eq\x0fq"), "\x1b)0q\x0e─\x0fq");
    }

    #[test]
    fn state_survives_chunk_boundaries() {
        let mut charset = LineDrawing::default();
        let mut out = Vec::new();
        charset.translate(b"\x1b(", &mut out);
        charset.translate(b"0x", &mut out);
        assert_eq!(String::from_utf8_lossy(&out), "\x1b(0│");
    }

    #[test]
    fn osc_strings_are_left_alone() {
        assert_eq!(
            run(b"\x1b(0\x1b]0;title q\x07q"),
            "\x1b(0\x1b]0;title q\x07─"
        );
    }
}
