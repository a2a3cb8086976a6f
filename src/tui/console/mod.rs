//! One attached serial console: the guest's output run through a vt100 terminal emulator
//! (colours, cursor moves, clearing, line drawing (the DEC set, in `charset`), 10 000 lines
//! of scrollback), scrollback mode with search, mouse selection, and the translation of keys
//! into the bytes a serial terminal sends.
//!
//! Guest output is untrusted: the emulator is bounded (fixed screen plus capped scrollback),
//! sizes handed to it are clamped to at least 2×2 (vt100 panics below), and requests the guest
//! makes of the terminal (window title, clipboard) are ignored.

mod charset;

use super::hosts::id::HostId;
use super::input::LineInput;
use charset::LineDrawing;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::num::NonZeroU16;

/// Lines of scrollback kept per console.
pub const SCROLLBACK_LINES: usize = 10_000;
/// Smallest screen handed to vt100 in either direction.
const MIN_SIZE: u16 = 2;

/// Identifies one attach (a new attach of the same VM gets a new id).
pub type ConsoleId = u64;

/// State of the connection behind a console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Waiting for the host to open the stream.
    Connecting,
    /// Bytes flow both ways.
    Live,
    /// The stream ended (VM stopped, vmd gone, or it could not be opened); why.
    Closed(String),
}

/// Which way to look for the next search match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Towards the top of the scrollback.
    Older,
    /// Towards the live screen.
    Newer,
}

/// A search in the scrollback.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    /// The query being typed or last searched for.
    pub input: LineInput,
    /// Whether the query is being typed (keys go to `input`).
    pub editing: bool,
    /// Absolute line (0 = oldest kept) of the current match.
    pub line: Option<usize>,
}

/// A mouse selection, in cells of the console's area (row, column), as shown now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// Where the button went down.
    pub anchor: (u16, u16),
    /// Where the pointer is now.
    pub head: (u16, u16),
}

impl Selection {
    /// Start and end in reading order.
    pub fn ordered(&self) -> ((u16, u16), (u16, u16)) {
        if self.anchor <= self.head {
            (self.anchor, self.head)
        } else {
            (self.head, self.anchor)
        }
    }

    /// Whether cell (row, col) is inside the selection.
    pub fn contains(&self, row: u16, col: u16) -> bool {
        let (start, end) = self.ordered();
        (row, col) >= start && (row, col) <= end
    }
}

/// An attached console. Owned by the UI thread; fed in `update`, read in `draw`.
pub struct ConsoleSession {
    /// This attach.
    pub id: ConsoleId,
    /// The VM whose serial line this is.
    pub vm: String,
    /// The VM's host.
    pub host: HostId,
    /// The connection.
    pub link: Link,
    /// Scrollback mode: keys scroll and search instead of going to the guest.
    pub scrolling: bool,
    /// The current or last search.
    pub search: Option<Search>,
    /// The mouse selection.
    pub selection: Option<Selection>,
    /// Bytes of guest output received.
    pub received: u64,
    parser: vt100::Parser,
    charset: LineDrawing,
    /// Reused buffer for translated output.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("id", &self.id)
            .field("vm", &self.vm)
            .field("link", &self.link)
            .field("scrolling", &self.scrolling)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

fn clamp(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n.max(MIN_SIZE)).unwrap_or(NonZeroU16::MIN)
}

impl ConsoleSession {
    /// A console for `vm` with a `rows`×`cols` screen (clamped to at least 2×2).
    pub fn new(id: ConsoleId, vm: &str, rows: u16, cols: u16) -> ConsoleSession {
        ConsoleSession {
            id,
            vm: vm.to_string(),
            host: HostId::Local,
            link: Link::Connecting,
            scrolling: false,
            search: None,
            selection: None,
            received: 0,
            parser: vt100::Parser::new(clamp(rows), clamp(cols), SCROLLBACK_LINES),
            charset: LineDrawing::default(),
            scratch: Vec::new(),
        }
    }

    /// The emulated screen, at the current scrollback position.
    pub fn screen(&self) -> &vt100::Screen {
        self.parser.screen()
    }

    /// Runs guest output through the emulator (DEC line drawing translated first).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.received += bytes.len() as u64;
        self.scratch.clear();
        self.charset.translate(bytes, &mut self.scratch);
        self.parser.process(&self.scratch);
        // A burst must not pin a large buffer for the rest of the session.
        if self.scratch.capacity() > 1 << 20 {
            self.scratch = Vec::new();
        }
    }

    /// Resizes the screen (rows × cols, clamped to at least 2×2). A no-op at the same size.
    pub fn resize(&mut self, rows: u16, cols: u16) {
        let (rows, cols) = (clamp(rows), clamp(cols));
        if self.parser.screen().size() != (rows, cols) {
            self.parser.set_size(rows, cols);
            // The emulator returns to the live screen on resize; the selection is stale.
            self.selection = None;
            self.scrolling = false;
        }
    }

    /// Screen size (rows, cols).
    pub fn size(&self) -> (u16, u16) {
        let (rows, cols) = self.parser.screen().size();
        (rows.get(), cols.get())
    }

    /// Lines above the live screen.
    pub fn scrollback_len(&self) -> usize {
        self.parser.screen().scrollback_len()
    }

    /// How many lines the view is scrolled up from the live screen (0 = live).
    pub fn offset(&self) -> usize {
        self.parser.screen().scrollback()
    }

    /// Scrolls the view by `lines` (positive = older). Scrolling up enters scrollback mode;
    /// only [`ConsoleSession::go_live`] leaves it, so a key meant for scrolling never reaches
    /// the guest by accident.
    pub fn scroll_by(&mut self, lines: isize) {
        let target = self.offset().saturating_add_signed(lines);
        self.parser.screen_mut().set_scrollback(target);
        if lines > 0 {
            self.scrolling = true;
        }
        self.selection = None;
    }

    /// Scrolls to the oldest line.
    pub fn scroll_to_top(&mut self) {
        let len = self.scrollback_len();
        self.parser.screen_mut().set_scrollback(len);
        self.scrolling = true;
        self.selection = None;
    }

    /// Back to the live screen, leaving scrollback mode.
    pub fn go_live(&mut self) {
        self.parser.screen_mut().set_scrollback(0);
        self.scrolling = false;
        self.selection = None;
        if let Some(search) = &mut self.search {
            search.editing = false;
            search.line = None;
        }
    }

    /// Every line kept, oldest first: the scrollback, then the live screen.
    fn all_lines(&mut self) -> Vec<String> {
        let saved = self.offset();
        let len = self.scrollback_len();
        let (rows, cols) = self.size();
        let rows = usize::from(rows);
        let mut lines = Vec::with_capacity(len + rows);
        let mut top = 0;
        // The emulator shows a screenful at a time; page through the scrollback from the top.
        while top < len {
            self.parser.screen_mut().set_scrollback(len - top);
            let take = rows.min(len - top);
            lines.extend(self.parser.screen().rows(0, cols).take(take));
            top += take;
        }
        self.parser.screen_mut().set_scrollback(0);
        lines.extend(self.parser.screen().rows(0, cols));
        self.parser.screen_mut().set_scrollback(saved);
        lines
    }

    /// Finds the next line containing `query` (case-insensitive) in `direction` from the
    /// current match (or from the view), scrolls it into view and returns its absolute line.
    pub fn find(&mut self, query: &str, direction: Direction) -> Option<usize> {
        if query.is_empty() {
            return None;
        }
        let needle = query.to_lowercase();
        let lines = self.all_lines();
        let len = self.scrollback_len();
        let rows = usize::from(self.size().0);
        let view_top = len - self.offset().min(len);
        let current = self.search.as_ref().and_then(|s| s.line);
        let hit = match direction {
            Direction::Older => {
                let start = current.unwrap_or(view_top + rows);
                (0..start.min(lines.len()))
                    .rev()
                    .find(|&i| lines[i].to_lowercase().contains(&needle))
            }
            Direction::Newer => {
                let start = current.map_or(view_top, |c| c + 1);
                (start..lines.len()).find(|&i| lines[i].to_lowercase().contains(&needle))
            }
        }?;
        if hit < view_top || hit >= view_top + rows {
            // Put the match in the middle of the view.
            let top = hit.saturating_sub(rows / 2).min(len);
            self.parser.screen_mut().set_scrollback(len - top);
        }
        self.scrolling = true;
        self.selection = None;
        Some(hit)
    }

    /// The absolute line shown at view row 0.
    pub fn view_top(&self) -> usize {
        self.scrollback_len() - self.offset().min(self.scrollback_len())
    }

    /// The selected text (rows joined with newlines, trailing blanks trimmed by vt100).
    pub fn selected_text(&self) -> Option<String> {
        let selection = self.selection?;
        let ((r0, c0), (r1, c1)) = selection.ordered();
        let cols = self.size().1;
        let text = self
            .parser
            .screen()
            .contents_between(r0, c0, r1, (c1 + 1).min(cols));
        (!text.is_empty()).then_some(text)
    }

    /// The text of the screen as shown (at the current scrollback position).
    pub fn visible_text(&self) -> String {
        let cols = self.size().1;
        let rows: Vec<String> = self.parser.screen().rows(0, cols).collect();
        let text = rows.join("\n");
        text.trim_end_matches(['\n', ' ']).to_string()
    }
}

/// The bytes a serial terminal sends for `key` (`None` for keys with no encoding).
/// `app_cursor` is the guest's DECCKM mode (arrows as `ESC O A`).
pub fn key_bytes(key: &KeyEvent, app_cursor: bool) -> Option<Vec<u8>> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let mut bytes = match key.code {
        KeyCode::Char(c) if ctrl => {
            let c = match c {
                '4' => '\\',
                '5' => ']',
                '6' => '^',
                '7' => '_',
                c => c,
            };
            match c.to_ascii_lowercase() {
                '@' | ' ' | '2' => vec![0],
                l @ ('a'..='z' | '[' | '\\' | ']' | '^' | '_') => vec![(l as u8) & 0x1f],
                '?' => vec![0x7f],
                _ => return None,
            }
        }
        KeyCode::Char(c) => c.to_string().into_bytes(),
        KeyCode::Enter => vec![b'\r'],
        KeyCode::Tab => vec![b'\t'],
        KeyCode::BackTab => b"\x1b[Z".to_vec(),
        KeyCode::Backspace => vec![0x7f],
        KeyCode::Esc => vec![0x1b],
        KeyCode::Up | KeyCode::Down | KeyCode::Right | KeyCode::Left => {
            let letter = match key.code {
                KeyCode::Up => b'A',
                KeyCode::Down => b'B',
                KeyCode::Right => b'C',
                _ => b'D',
            };
            let intro = if app_cursor { b'O' } else { b'[' };
            vec![0x1b, intro, letter]
        }
        KeyCode::Home => b"\x1b[H".to_vec(),
        KeyCode::End => b"\x1b[F".to_vec(),
        KeyCode::Insert => b"\x1b[2~".to_vec(),
        KeyCode::Delete => b"\x1b[3~".to_vec(),
        KeyCode::PageUp => b"\x1b[5~".to_vec(),
        KeyCode::PageDown => b"\x1b[6~".to_vec(),
        KeyCode::F(n @ 1..=4) => vec![0x1b, b'O', b'P' + (n - 1)],
        KeyCode::F(n @ 5..=12) => {
            let code = [15, 17, 18, 19, 20, 21, 23, 24][usize::from(n - 5)];
            format!("\x1b[{code}~").into_bytes()
        }
        _ => return None,
    };
    if alt {
        bytes.insert(0, 0x1b);
    }
    Some(bytes)
}

/// Pasted text as the guest should get it: bracketed when the guest asked for it, with
/// newlines as carriage returns (what Enter sends).
pub fn paste_bytes(text: &str, bracketed: bool) -> Vec<u8> {
    let body = text.replace("\r\n", "\r").replace('\n', "\r");
    // A paste must not be able to end the bracket early.
    let body = body.replace("\x1b[201~", "");
    if bracketed {
        format!("\x1b[200~{body}\x1b[201~").into_bytes()
    } else {
        body.into_bytes()
    }
}

/// The OSC 52 sequence that asks the terminal (even across SSH) to put `text` on the
/// clipboard.
pub fn osc52(text: &str) -> String {
    format!("\x1b]52;c;{}\x07", base64(text.as_bytes()))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> ConsoleSession {
        ConsoleSession::new(1, "a", 5, 20)
    }

    #[test]
    fn tiny_sizes_are_clamped_instead_of_panicking() {
        let mut console = ConsoleSession::new(1, "a", 0, 0);
        console.feed(b"hello\r\nworld");
        console.resize(1, 1);
        assert_eq!(console.size(), (2, 2));
    }

    #[test]
    fn scrolling_up_enters_scrollback_and_going_live_leaves_it() {
        let mut console = session();
        for i in 0..30 {
            console.feed(format!("line {i}\r\n").as_bytes());
        }
        console.scroll_by(3);
        assert!(console.scrolling);
        assert_eq!(console.offset(), 3);
        console.go_live();
        assert_eq!(console.offset(), 0);
        assert!(!console.scrolling);
    }

    #[test]
    fn scrollback_holds_ten_thousand_lines() {
        let mut console = session();
        for i in 0..(SCROLLBACK_LINES + 50) {
            console.feed(format!("{i}\r\n").as_bytes());
        }
        assert_eq!(console.scrollback_len(), SCROLLBACK_LINES);
    }

    #[test]
    fn search_finds_older_lines_and_scrolls_to_them() {
        let mut console = session();
        console.feed(b"needle here\r\n");
        for i in 0..40 {
            console.feed(format!("hay {i}\r\n").as_bytes());
        }
        let hit = console.find("NEEDLE", Direction::Older).expect("found");
        assert_eq!(hit, 0);
        assert!(console.visible_text().contains("needle here"));
    }

    #[test]
    fn search_for_missing_text_leaves_the_view_alone() {
        let mut console = session();
        console.feed(b"abc\r\n");
        assert_eq!(console.find("zzz", Direction::Older), None);
        assert_eq!(console.offset(), 0);
    }

    #[test]
    fn selection_text_spans_rows() {
        let mut console = session();
        console.feed(b"first line\r\nsecond line\r\n");
        console.selection = Some(Selection {
            anchor: (1, 5),
            head: (0, 6),
        });
        assert_eq!(console.selected_text().as_deref(), Some("line\nsecond"));
    }

    #[test]
    fn arrows_follow_the_guests_cursor_mode() {
        let up = KeyEvent::new(KeyCode::Up, KeyModifiers::NONE);
        assert_eq!(key_bytes(&up, false), Some(b"\x1b[A".to_vec()));
        assert_eq!(key_bytes(&up, true), Some(b"\x1bOA".to_vec()));
    }

    #[test]
    fn ctrl_c_sends_etx() {
        let key = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(key_bytes(&key, false), Some(vec![3]));
    }

    #[test]
    fn paste_cannot_close_the_bracket_early() {
        let bytes = paste_bytes("a\x1b[201~b\n", true);
        assert_eq!(bytes, b"\x1b[200~ab\r\x1b[201~".to_vec());
    }

    #[test]
    fn osc52_is_base64_with_padding() {
        assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"a"), "YQ==");
    }
}
