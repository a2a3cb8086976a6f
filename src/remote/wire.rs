//! The host protocol that `vmux agent --stdio` speaks: JSON lines, one frame per line, on the
//! agent's stdin (frames [`Up`]) and stdout (frames [`Down`]). The agent's first line is a
//! [`Hello`]; the two sides work together only when their [`HOST_PROTOCOL`] numbers are equal.
//!
//! Calls carry an id chosen by the client and are answered by a [`Down::Reply`] with that id,
//! in any order: the agent serves each call on its own thread, so a long copy never holds up a
//! listing. A long operation sends [`Down::Progress`] frames while it runs and stops when it
//! gets [`Up::Cancel`]. A console is a stream whose id the client chooses in the call, so no
//! output can arrive before the client is ready for it: output comes as [`Down::Output`]
//! frames until [`Down::End`], input goes up as [`Up::Input`], and [`Up::Close`] detaches.
//! docs/host-protocol.md describes the frames for people writing other clients.

use super::calls::Call;
use super::error::WireError;
use crate::progress::ProgressSnapshot;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The version of the host protocol; changed whenever a frame or call changes meaning.
pub const HOST_PROTOCOL: u32 = 1;

/// The agent's first line: who it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The agent's [`HOST_PROTOCOL`].
    pub protocol: u32,
    /// The agent's vmux version.
    pub vmux: String,
    /// The remote machine's host name.
    pub host: String,
}

impl Hello {
    /// This vmux's hello, on machine `host`.
    pub fn ours(host: String) -> Hello {
        Hello {
            protocol: HOST_PROTOCOL,
            vmux: env!("CARGO_PKG_VERSION").to_string(),
            host,
        }
    }
}

/// Frames from the client to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Up {
    /// Run `call`; the answer is a [`Down::Reply`] with this `id`.
    Call {
        /// Chosen by the client, unique on this connection.
        id: u64,
        /// What to do.
        call: Call,
    },
    /// Console input for `stream`.
    Input {
        /// The stream.
        stream: u64,
        /// The bytes.
        data: Bytes,
    },
    /// Detach from console `stream` (the VM keeps running).
    Close {
        /// The stream.
        stream: u64,
    },
    /// Cancel the long operation of call `id` (it cleans up as after a failure).
    Cancel {
        /// The call.
        id: u64,
    },
}

/// Frames from the agent to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Down {
    /// The first line.
    Hello(Hello),
    /// The answer to call `id`: its result as JSON, or the error.
    Reply {
        /// The call.
        id: u64,
        /// The result.
        result: Result<serde_json::Value, WireError>,
    },
    /// Where call `id`'s long operation stands.
    Progress {
        /// The call.
        id: u64,
        /// Its progress.
        progress: ProgressSnapshot,
    },
    /// Console output on `stream`.
    Output {
        /// The stream.
        stream: u64,
        /// The bytes.
        data: Bytes,
    },
    /// Console `stream` ended (the VM stopped, or the console failed: `reason`).
    End {
        /// The stream.
        stream: u64,
        /// Why, when it was not a plain end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// Raw bytes, as base64 in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Bytes)
            .map_err(serde::de::Error::custom)
    }
}

/// The longest frame either side accepts (a listing of thousands of volumes is far below it);
/// a longer line ends the connection instead of filling memory.
pub const MAX_FRAME: usize = 16 << 20;

/// Reads one frame's line into `line` (cleared first); `Ok(0)` at the end of the stream. A line
/// longer than [`MAX_FRAME`] is an error: the other side is not speaking the protocol.
pub fn read_frame(reader: &mut impl std::io::BufRead, line: &mut String) -> std::io::Result<usize> {
    use std::io::{BufRead, Read};
    // One byte past the limit tells a frame of exactly MAX_FRAME bytes from a longer one.
    const LIMIT: u64 = MAX_FRAME as u64 + 1;
    line.clear();
    let n = reader.by_ref().take(LIMIT).read_line(line)?;
    if n > MAX_FRAME && !line.ends_with('\n') {
        line.clear();
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame longer than {} MiB", MAX_FRAME >> 20),
        ));
    }
    Ok(n)
}

/// One frame as one line (no newline inside: JSON escapes them).
pub fn encode<T: Serialize>(frame: &T) -> serde_json::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(frame)?;
    line.push(b'\n');
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_travel_as_base64_and_come_back_whole() {
        let frame = Down::Output {
            stream: 3,
            data: Bytes((0..=255).collect()),
        };
        let line = encode(&frame).expect("encodes");
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let back: Down = serde_json::from_slice(&line).expect("decodes");
        assert_eq!(back, frame);
    }

    #[test]
    fn a_hello_says_the_protocol_and_version() {
        let line = encode(&Down::Hello(Hello::ours("h2".into()))).expect("encodes");
        let text = String::from_utf8(line).expect("utf-8");
        assert!(text.contains("\"t\":\"hello\""), "{text}");
        assert!(
            text.contains(&format!("\"protocol\":{HOST_PROTOCOL}")),
            "{text}"
        );
    }

    #[test]
    fn an_endless_line_is_refused_without_reading_it_all() {
        let mut input = std::io::Cursor::new(vec![b'x'; MAX_FRAME + 10]);
        let mut line = String::new();
        let error = read_frame(&mut input, &mut line).expect_err("too long");
        assert!(error.to_string().contains("longer than 16 MiB"), "{error}");
        let mut input = std::io::Cursor::new(b"{}\n".to_vec());
        assert_eq!(read_frame(&mut input, &mut line).expect("a frame"), 3);
        assert_eq!(line, "{}\n");
    }

    #[test]
    fn a_failed_reply_carries_the_error() {
        let frame = Down::Reply {
            id: 7,
            result: Err(WireError::other(&std::io::Error::other("disk full"))),
        };
        let back: Down =
            serde_json::from_slice(&encode(&frame).expect("encodes")).expect("decodes");
        assert_eq!(back, frame);
    }
}
