//! The console widget fed canned escape sequences: colours, attributes, cursor moves,
//! clearing, the alternate screen, DEC line drawing, wide characters and malformed input.
//! What reaches the screen is checked cell by cell; nothing may panic, and malformed input
//! leaves a screen that still works.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::Widget;
use vmux::tui::console::{ConsoleSession, Selection};
use vmux::tui::ui::TerminalView;

fn session(rows: u16, cols: u16, bytes: &[u8]) -> ConsoleSession {
    let mut console = ConsoleSession::new(1, "t", rows, cols);
    console.feed(bytes);
    console
}

fn render(console: &ConsoleSession, width: u16, height: u16) -> Buffer {
    let mut buf = Buffer::empty(Rect::new(0, 0, width, height));
    TerminalView::new(console.screen(), Style::new()).render(buf.area, &mut buf);
    buf
}

fn row(buf: &Buffer, y: u16) -> String {
    (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect()
}

#[test]
fn sgr_colours_map_to_ansi_indexed_and_rgb() {
    let console = session(
        4,
        40,
        b"\x1b[31mR\x1b[0m\x1b[38;5;208mO\x1b[48;2;1;2;3mB\x1b[0m\x1b[94mL",
    );
    let buf = render(&console, 40, 4);
    assert_eq!(buf[(0, 0)].fg, Color::Red);
    assert_eq!(buf[(1, 0)].fg, Color::Indexed(208));
    assert_eq!(buf[(2, 0)].bg, Color::Rgb(1, 2, 3));
    assert_eq!(buf[(3, 0)].fg, Color::LightBlue);
}

#[test]
fn attributes_become_modifiers() {
    let console = session(2, 10, b"\x1b[1mb\x1b[0;4mu\x1b[0;7mi\x1b[0;3mt");
    let buf = render(&console, 10, 2);
    assert!(buf[(0, 0)].modifier.contains(Modifier::BOLD));
    assert!(buf[(1, 0)].modifier.contains(Modifier::UNDERLINED));
    assert!(buf[(2, 0)].modifier.contains(Modifier::REVERSED));
    assert!(buf[(3, 0)].modifier.contains(Modifier::ITALIC));
}

#[test]
fn cursor_addressing_places_text() {
    let console = session(10, 20, b"\x1b[5;10HX\x1b[1;1HA\x1b[3CB");
    let buf = render(&console, 20, 10);
    assert_eq!(buf[(9, 4)].symbol(), "X");
    assert_eq!(row(&buf, 0).trim_end(), "A   B");
    assert_eq!(console.screen().cursor_position(), (0, 5));
}

#[test]
fn erase_display_clears_the_screen() {
    let console = session(3, 10, b"abc\r\ndef\x1b[2J");
    let buf = render(&console, 10, 3);
    assert!((0..3).all(|y| row(&buf, y).trim().is_empty()));
}

#[test]
fn erase_line_clears_to_the_end() {
    let console = session(2, 10, b"abcdef\x1b[1;3H\x1b[K");
    assert_eq!(row(&render(&console, 10, 2), 0).trim_end(), "ab");
}

#[test]
fn alternate_screen_is_left_with_the_main_screen_intact() {
    let mut console = session(3, 20, b"shell prompt");
    console.feed(b"\x1b[?1049h\x1b[2Jfull-screen app");
    assert_eq!(
        row(&render(&console, 20, 3), 0).trim_end(),
        "full-screen app"
    );
    console.feed(b"\x1b[?1049l");
    assert_eq!(row(&render(&console, 20, 3), 0).trim_end(), "shell prompt");
}

#[test]
fn dec_line_drawing_draws_boxes() {
    let console = session(3, 10, b"\x1b(0lqqk\r\nx  x\r\nmqqj\x1b(B ok");
    let buf = render(&console, 10, 3);
    assert_eq!(row(&buf, 0).trim_end(), "┌──┐");
    assert_eq!(row(&buf, 1).trim_end(), "│  │");
    assert_eq!(row(&buf, 2).trim_end(), "└──┘ ok");
}

#[test]
fn unicode_box_drawing_passes_through() {
    let console = session(2, 10, "╔═╗".as_bytes());
    assert_eq!(row(&render(&console, 10, 2), 0).trim_end(), "╔═╗");
}

#[test]
fn wide_characters_take_two_cells() {
    let console = session(2, 10, "日本x".as_bytes());
    let buf = render(&console, 10, 2);
    assert_eq!(buf[(0, 0)].symbol(), "日");
    assert_eq!(buf[(2, 0)].symbol(), "本");
    assert_eq!(buf[(4, 0)].symbol(), "x");
}

#[test]
fn a_wide_character_cut_by_the_edge_is_blanked() {
    let console = session(2, 10, "abc日".as_bytes());
    let buf = render(&console, 4, 2);
    assert_eq!(row(&buf, 0), "abc ");
}

#[test]
fn malformed_and_hostile_sequences_do_not_panic() {
    let nasty: &[&[u8]] = &[
        b"\x1b[99999999999;99999999999H",
        b"\x1b[?99999h\x1b[?1049h\x1b[?1049h",
        b"\x1b]0;title without end",
        b"\x1bP+q544e\x1b\\",
        b"\xff\xfe\xc3\x28\xe2\x82",
        b"\x1b[38;5;999m\x1b[38;2;999;999;999m",
        b"\x1b[0;1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17;18;19;20;21;22;23;24;25m",
        b"\x1b[1000000L\x1b[1000000M\x1b[1000000@\x1b[1000000P",
        b"\x1b[2;1r\x1b[1000S\x1b[1000T",
        b"\x1b[",
        b"\x1b(",
        b"\x1b]52;c;aGVsbG8=\x07",
    ];
    let mut console = ConsoleSession::new(1, "t", 5, 10);
    for bytes in nasty {
        console.feed(bytes);
        let _ = render(&console, 10, 5);
        let _ = render(&console, 3, 2);
    }
    console.feed(b"\x1b[0m\x1b[H\x1b[2Jstill ok");
    assert!(row(&render(&console, 10, 5), 0).starts_with("still ok"));
}

#[test]
fn random_bytes_in_random_chunks_at_random_sizes_leave_a_sane_usable_screen() {
    // A fixed-seed generator: the test is repeatable.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut console = ConsoleSession::new(1, "t", 24, 80);
    for round in 0..300 {
        let len = (next() % 512) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| match next() % 4 {
                0 => 0x1b,
                1 => b"[;?0123456789mHJKhlr"[(next() % 20) as usize],
                _ => (next() % 256) as u8,
            })
            .collect();
        console.feed(&bytes);
        if round % 25 == 0 {
            let (rows, cols) = ((next() % 60) as u16, (next() % 200) as u16);
            console.resize(rows, cols);
            assert_eq!(console.size(), (rows.max(2), cols.max(2)), "round {round}");
        }
        if round % 7 == 0 {
            console.scroll_by((next() % 50) as isize - 25);
        }
        let (w, h) = ((next() % 120) as u16, (next() % 40) as u16);
        let buf = render(&console, w, h);
        assert_eq!((buf.area.width, buf.area.height), (w, h), "round {round}");
        let (rows, cols) = console.size();
        let (cursor_row, cursor_col) = console.screen().cursor_position();
        assert!(
            cursor_row < rows && cursor_col <= cols,
            "round {round}: cursor ({cursor_row}, {cursor_col}) outside {rows}x{cols}"
        );
        assert!(
            console.offset() <= console.scrollback_len(),
            "round {round}: scrolled {} lines into a {}-line scrollback",
            console.offset(),
            console.scrollback_len()
        );
    }

    // After a full reset the screen works as new: text lands at the top left.
    console.go_live();
    console.feed(b"\x1bc\x1b[0m\x1b[H\x1b[2Jstill ok\r\nline two");
    let (rows, cols) = console.size();
    let buf = render(&console, cols, rows);
    assert_eq!(row(&buf, 0).trim_end(), "still ok");
    assert_eq!(row(&buf, 1).trim_end(), "line two");
    assert_eq!(console.screen().cursor_position(), (1, 8));
}

#[test]
fn scrolled_back_view_shows_older_lines() {
    let mut console = ConsoleSession::new(1, "t", 3, 10);
    for i in 0..10 {
        console.feed(format!("l{i}\r\n").as_bytes());
    }
    console.scroll_by(4);
    assert_eq!(row(&render(&console, 10, 3), 0).trim_end(), "l4");
}

#[test]
fn selection_and_search_are_highlighted() {
    let mut console = session(2, 20, b"find the needle");
    console.selection = Some(Selection {
        anchor: (0, 0),
        head: (0, 3),
    });
    let selected = Style::new().add_modifier(Modifier::REVERSED);
    let found = Style::new().bg(Color::Yellow);
    let mut buf = Buffer::empty(Rect::new(0, 0, 20, 2));
    TerminalView::new(console.screen(), Style::new())
        .selection(console.selection, selected)
        .search(Some("NEEDLE"), found)
        .render(buf.area, &mut buf);
    assert!(buf[(2, 0)].modifier.contains(Modifier::REVERSED));
    assert!(!buf[(5, 0)].modifier.contains(Modifier::REVERSED));
    assert_eq!(buf[(9, 0)].bg, Color::Yellow);
    assert_eq!(buf[(14, 0)].bg, Color::Yellow);
    assert_ne!(buf[(8, 0)].bg, Color::Yellow);
}

#[test]
fn colours_can_be_dropped_for_no_color() {
    let console = session(1, 5, b"\x1b[1;31mX");
    let mut buf = Buffer::empty(Rect::new(0, 0, 5, 1));
    TerminalView::new(console.screen(), Style::new())
        .colours(false)
        .render(buf.area, &mut buf);
    assert_eq!(buf[(0, 0)].fg, Color::Reset);
    assert!(buf[(0, 0)].modifier.contains(Modifier::BOLD));
}

#[test]
fn a_view_smaller_than_the_screen_is_cut_not_wrapped() {
    let console = session(4, 20, b"0123456789abcdef\r\nsecond");
    let buf = render(&console, 5, 1);
    assert_eq!(row(&buf, 0), "01234");
}
