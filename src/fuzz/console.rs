//! Fuzz entry point for the console: guest serial output fed into the TUI's terminal emulator
//! in two pieces, the screen searched, selected, scrolled, resized and drawn.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Style;

use crate::tui::console::{ConsoleSession, Direction, Selection};
use crate::tui::ui::TerminalView;

use super::Input;

/// Bytes 0-1 pick the screen size, byte 2 where the output is split, byte 3 the size after a
/// resize; the rest is what the guest wrote.
pub fn feed(data: &[u8]) {
    let mut input = Input::new(data);
    let rows = u16::from(input.byte() % 64);
    let cols = u16::from(input.byte());
    let split = usize::from(input.byte());
    let resize = input.byte();
    let output = input.rest();
    let mut console = ConsoleSession::new(1, "fuzz", rows, cols);
    let (first, second) = output.split_at(split.min(output.len()));
    console.feed(first);
    draw(&mut console);
    console.feed(second);
    let _ = console.visible_text();
    let _ = console.find("a", Direction::Older);
    let _ = console.find("e", Direction::Newer);
    console.scroll_by(-3);
    let (rows, cols) = console.size();
    console.selection = Some(Selection {
        anchor: (0, 0),
        head: (rows.saturating_sub(1), cols),
    });
    let _ = console.selected_text();
    draw(&mut console);
    console.go_live();
    console.resize(u16::from(resize % 16), u16::from(resize));
    draw(&mut console);
}

/// Draws the console into a test backend one cell larger each way than its screen.
fn draw(console: &mut ConsoleSession) {
    let (rows, cols) = console.size();
    let Ok(mut terminal) = Terminal::new(TestBackend::new(cols + 1, rows + 1));
    let view = TerminalView::new(console.screen(), Style::default())
        .selection(console.selection, Style::default())
        .search(Some("a"), Style::default());
    let _ = terminal.draw(|frame| frame.render_widget(view, frame.area()));
}
