//! Fuzz entry point for the control protocol: a client's byte stream read the way a vmd
//! session reads it (bounded lines, each parsed as a request), and the same lines read the way
//! the client reads vmd's messages.

use std::io::{BufReader, Cursor};

use crate::protocol::ServerMessage;
use crate::vmd::session::{Line, parse_request, read_line};

/// Splits `data` into request lines as vmd does (a small read buffer, so lines cross buffer
/// boundaries) and parses each; a request that parses must serialize again.
pub fn lines(data: &[u8]) {
    let mut reader = BufReader::with_capacity(64, Cursor::new(data));
    let mut line = Vec::new();
    loop {
        match read_line(&mut reader, &mut line) {
            Ok(Line::Complete) => {
                if let Ok(request) = parse_request(&line) {
                    serde_json::to_vec(&request).expect("a parsed request serializes again");
                }
                let _ = serde_json::from_slice::<ServerMessage>(&line);
            }
            Ok(Line::TooLong) => {}
            Ok(Line::Eof) | Err(_) => return,
        }
    }
}
