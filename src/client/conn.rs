//! One client connection to a vmd control socket: send a request line, read lines until the
//! matching reply (skipping pushed events), every step bounded by a timeout so a wedged vmd
//! cannot hang the caller. A connection can be turned into a raw [`Console`].

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{ClientError, Console};
use crate::protocol::{Command, Reply, ReplyResult, Request, ServerMessage};

/// Longest line accepted from vmd, in bytes (replies are a few hundred bytes).
const MAX_LINE_BYTES: u64 = 1 << 20;

/// A connected control socket.
pub struct ControlConn {
    name: String,
    socket: PathBuf,
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
    timeout: Duration,
}

impl ControlConn {
    /// Connects to VM `name`'s socket. No socket, or nobody listening, is
    /// [`ClientError::NotRunning`].
    pub fn connect(
        name: &str,
        socket: &Path,
        timeout: Duration,
    ) -> Result<ControlConn, ClientError> {
        let io_err = |source| ClientError::Io {
            name: name.to_string(),
            socket: socket.display().to_string(),
            source,
        };
        let stream = match UnixStream::connect(socket) {
            Ok(stream) => stream,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Err(ClientError::NotRunning(name.to_string()));
            }
            Err(e) => return Err(io_err(e)),
        };
        stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
        let writer = stream.try_clone().map_err(io_err)?;
        Ok(ControlConn {
            name: name.to_string(),
            socket: socket.to_path_buf(),
            writer,
            reader: BufReader::new(stream),
            next_id: 1,
            timeout,
        })
    }

    fn io_error(&self, source: io::Error) -> ClientError {
        ClientError::Io {
            name: self.name.clone(),
            socket: self.socket.display().to_string(),
            source,
        }
    }

    /// Sends `command` and waits (at most the connection's timeout) for its reply. A refusal
    /// is [`ClientError::Refused`] with vmd's message.
    pub fn request(&mut self, command: Command) -> Result<Option<ReplyResult>, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&Request { id, command })
            .map_err(|e| self.io_error(io::Error::other(e)))?;
        line.push(b'\n');
        self.writer.write_all(&line).map_err(|e| self.io_error(e))?;
        let reply = self.read_reply(id)?;
        if reply.ok {
            return Ok(reply.result);
        }
        let message = reply.error.map_or_else(
            || "the command failed and vmd did not say why".to_string(),
            |e| e.message,
        );
        Err(ClientError::Refused {
            name: self.name.clone(),
            message,
        })
    }

    fn read_reply(&mut self, id: u64) -> Result<Reply, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let mut line = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.io_error(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no reply within {} s", self.timeout.as_secs()),
                )));
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|e| self.io_error(e))?;
            line.clear();
            let n = self
                .reader
                .by_ref()
                .take(MAX_LINE_BYTES)
                .read_until(b'\n', &mut line)
                .map_err(|e| self.io_error(e))?;
            if n == 0 {
                return Err(self.io_error(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "vmd closed the connection",
                )));
            }
            match serde_json::from_slice::<ServerMessage>(&line) {
                Ok(ServerMessage::Reply(reply)) if reply.id == id => return Ok(reply),
                // Events and stale replies are not ours to handle here.
                Ok(_) => {}
                Err(e) => {
                    return Err(ClientError::Protocol {
                        name: self.name.clone(),
                        detail: e.to_string(),
                    });
                }
            }
        }
    }

    /// Switches to the raw console: after this, reads are guest output and writes are guest
    /// input, with no timeouts (a console waits for the guest and the user).
    pub fn into_console(mut self, history: bool) -> Result<Console, ClientError> {
        self.request(Command::Console { history })?;
        self.reader
            .get_ref()
            .set_read_timeout(None)
            .map_err(|e| self.io_error(e))?;
        self.writer
            .set_write_timeout(None)
            .map_err(|e| self.io_error(e))?;
        // The reader keeps bytes it buffered past the reply line: they are console output.
        Ok(Console {
            output: Box::new(self.reader),
            input: Box::new(self.writer),
        })
    }
}
