//! One connection to a remote host's agent: calls sent and their replies matched by id, long
//! operations' progress and cancels, and console streams, all over one pair of pipes.
//!
//! Threads: `remote-read` reads every frame from the agent and hands it to the call or stream
//! waiting for it (it never blocks on a slow consumer: channels are unbounded, and a console's
//! output is bounded by what the guest writes); `remote-err` keeps the last words ssh writes
//! on stderr for the error messages. A caller blocks only on its own reply. When the
//! connection drops, every waiting call fails with [`LinkError::Lost`] and every stream ends;
//! [`Link::lost`] then says why.

use super::calls::Call;
use super::error::WireError;
use super::link_error::LinkError;
use super::ssh::{self, Prompts};
use super::target::Target;
use super::wire::{Bytes, Down, HOST_PROTOCOL, Hello, Up, encode, read_frame};
use crate::client::Console;
use crate::progress::{Progress, ProgressSnapshot};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a connection may take to say hello when ssh may not prompt.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// The same when ssh may ask the user for a password (they need time to type it).
pub const PROMPT_HELLO_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a waiting call looks at its progress handle for a cancel.
const CANCEL_POLL: Duration = Duration::from_millis(50);
/// Lines the remote shell may print before the hello (a noisy rc file) that are skipped.
const MAX_NOISE_LINES: usize = 64;
/// How long closing waits for ssh to exit before it is killed.
const CLOSE_WAIT: Duration = Duration::from_millis(500);
/// Bytes of ssh's stderr kept for messages.
const STDERR_TAIL: usize = 4096;

/// A call that failed: on the remote host (its error), or on the way (the link).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The host answered with an error.
    #[error(transparent)]
    Remote(WireError),
    /// The connection failed.
    #[error(transparent)]
    Link(#[from] LinkError),
}

/// A connection to one remote host's agent. Cloning shares it; it closes when the last clone
/// is dropped (or at [`Link::close`]).
#[derive(Clone)]
pub struct Link {
    handle: Arc<Handle>,
}

/// Owns the ssh process: dropping the last [`Link`] ends it.
struct Handle {
    core: Arc<Core>,
    child: Mutex<Option<Child>>,
}

/// What the reader thread, the callers and the streams share.
struct Core {
    label: String,
    hello: Hello,
    up: Mutex<Option<Box<dyn Write + Send>>>,
    next_id: AtomicU64,
    calls: Mutex<HashMap<u64, Sender<Event>>>,
    streams: Mutex<HashMap<u64, Sender<StreamEvent>>>,
    lost: Mutex<Option<String>>,
    stderr: Arc<Mutex<String>>,
}

enum Event {
    Reply(Result<serde_json::Value, WireError>),
    Progress(ProgressSnapshot),
}

enum StreamEvent {
    Data(Vec<u8>),
    End(Option<String>),
}

impl Link {
    /// Runs ssh to `target` and waits for the agent's hello.
    pub fn connect(target: &Target, prompts: Prompts) -> Result<Link, LinkError> {
        let mut child = ssh::command(target, prompts)
            .spawn()
            .map_err(|e| LinkError::NoSsh {
                host: target.label(),
                detail: e.to_string(),
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Err(LinkError::NoSsh {
                host: target.label(),
                detail: "ssh's pipes could not be set up".into(),
            });
        };
        let tail = Arc::new(Mutex::new(String::new()));
        keep_stderr(stderr, Arc::clone(&tail));
        let timeout = match prompts {
            Prompts::Allowed => PROMPT_HELLO_TIMEOUT,
            Prompts::Never => HELLO_TIMEOUT,
        };
        let started = Link::over(
            target.label(),
            BufReader::new(stdout),
            Box::new(stdin),
            Arc::clone(&tail),
            timeout,
        );
        match started {
            Ok(link) => {
                *lock(&link.handle.child) = Some(child);
                Ok(link)
            }
            Err(Failure::Ended) => {
                let status = child.wait().ok();
                // The stderr thread may still be copying ssh's last words.
                std::thread::sleep(Duration::from_millis(50));
                Err(ssh::classify(target, status, &lock(&tail)))
            }
            Err(Failure::Link(error)) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(error)
            }
        }
    }

    /// A link over an agent already running on `down`/`up` (tests serve one in-process).
    pub fn over_pipes(
        label: String,
        down: impl BufRead + Send + 'static,
        up: Box<dyn Write + Send>,
    ) -> Result<Link, LinkError> {
        let host = label.clone();
        Link::over(
            label,
            down,
            up,
            Arc::new(Mutex::new(String::new())),
            HELLO_TIMEOUT,
        )
        .map_err(|failure| match failure {
            Failure::Link(error) => error,
            Failure::Ended => LinkError::Protocol {
                host,
                detail: "the agent ended before its hello".into(),
            },
        })
    }

    fn over(
        label: String,
        mut down: impl BufRead + Send + 'static,
        up: Box<dyn Write + Send>,
        stderr: Arc<Mutex<String>>,
        timeout: Duration,
    ) -> Result<Link, Failure> {
        let (hello_tx, hello_rx) = mpsc::channel();
        let reader_label = label.clone();
        let spawned = std::thread::Builder::new()
            .name("remote-hello".into())
            .spawn(move || {
                let hello = read_hello(&reader_label, &mut down);
                let _ = hello_tx.send(hello.map(|hello| (hello, down)));
            });
        if let Err(e) = spawned {
            return Err(Failure::Link(LinkError::NoSsh {
                host: label,
                detail: format!("no thread to read its answers: {e}"),
            }));
        }
        let (hello, down) = match hello_rx.recv_timeout(timeout) {
            Ok(result) => result?,
            Err(_) => {
                return Err(Failure::Link(LinkError::Timeout {
                    host: label,
                    seconds: timeout.as_secs(),
                }));
            }
        };
        if hello.protocol != HOST_PROTOCOL {
            return Err(Failure::Link(LinkError::VersionMismatch {
                host: label,
                version: hello.vmux,
                theirs: hello.protocol,
                ours: HOST_PROTOCOL,
            }));
        }
        let core = Arc::new(Core {
            label,
            hello,
            up: Mutex::new(Some(up)),
            next_id: AtomicU64::new(1),
            calls: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            lost: Mutex::new(None),
            stderr,
        });
        let reader = Arc::clone(&core);
        std::thread::Builder::new()
            .name("remote-read".into())
            .spawn(move || reader.read_frames(down))
            .map_err(|e| {
                Failure::Link(LinkError::NoSsh {
                    host: core.label.clone(),
                    detail: format!("no thread to read its answers: {e}"),
                })
            })?;
        Ok(Link {
            handle: Arc::new(Handle {
                core,
                child: Mutex::new(None),
            }),
        })
    }

    /// What the agent said about itself.
    pub fn hello(&self) -> &Hello {
        &self.handle.core.hello
    }

    /// How messages name this host.
    pub fn label(&self) -> &str {
        &self.handle.core.label
    }

    /// `None` while the connection is up; why it dropped once it has.
    pub fn lost(&self) -> Option<String> {
        lock(&self.handle.core.lost).clone()
    }

    /// Ends the connection (waiting calls fail, streams end).
    pub fn close(&self) {
        self.handle.close();
    }

    /// Runs `call` on the host and decodes its result.
    pub fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T, CallError> {
        self.call_watched(call, None)
    }

    /// Runs the long operation `call`, reporting on `progress` and cancelling it on the host
    /// when `progress` is cancelled here.
    pub fn call_with_progress<T: DeserializeOwned>(
        &self,
        call: Call,
        progress: &Progress,
    ) -> Result<T, CallError> {
        self.call_watched(call, Some(progress))
    }

    fn call_watched<T: DeserializeOwned>(
        &self,
        call: Call,
        progress: Option<&Progress>,
    ) -> Result<T, CallError> {
        let core = &self.handle.core;
        let id = core.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        lock(&core.calls).insert(id, tx);
        let result = core
            .send(&Up::Call { id, call })
            .and_then(|()| core.wait(id, &rx, progress));
        lock(&core.calls).remove(&id);
        let value = result?.map_err(CallError::Remote)?;
        serde_json::from_value(value).map_err(|e| {
            CallError::Link(LinkError::Protocol {
                host: core.label.clone(),
                detail: format!("a reply did not have the expected shape: {e}"),
            })
        })
    }

    /// Opens a console stream: `open` sends the call that starts it with the stream id given.
    pub fn open_stream(&self, open: impl FnOnce(u64) -> Call) -> Result<Console, CallError> {
        let core = &self.handle.core;
        let stream = core.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        lock(&core.streams).insert(stream, tx);
        if let Err(e) = self.call::<()>(open(stream)) {
            lock(&core.streams).remove(&stream);
            return Err(e);
        }
        let output = StreamReader {
            core: Arc::clone(core),
            stream,
            events: rx,
            pending: Vec::new(),
            offset: 0,
            ended: false,
        };
        let input = StreamWriter {
            core: Arc::clone(core),
            stream,
        };
        Ok(Console {
            output: Box::new(output),
            input: Box::new(input),
        })
    }
}

/// Why a link did not start.
enum Failure {
    /// The remote side ended before its hello (ssh's exit says why).
    Ended,
    /// It said something else, or nothing in time.
    Link(LinkError),
}

impl From<LinkError> for Failure {
    fn from(error: LinkError) -> Failure {
        Failure::Link(error)
    }
}

/// Reads up to the agent's hello, skipping what a noisy remote shell prints first.
fn read_hello(label: &str, down: &mut impl BufRead) -> Result<Hello, Failure> {
    let mut line = String::new();
    for _ in 0..MAX_NOISE_LINES {
        match read_frame(down, &mut line) {
            Ok(0) | Err(_) => return Err(Failure::Ended),
            Ok(_) => {}
        }
        match serde_json::from_str::<Down>(&line) {
            Ok(Down::Hello(hello)) => return Ok(hello),
            Ok(_) => {
                return Err(Failure::Link(LinkError::Protocol {
                    host: label.to_string(),
                    detail: "its first frame was not a hello".into(),
                }));
            }
            Err(_) => log::debug!(
                "{label}: skipping a line before the hello: {}",
                line.trim_end()
            ),
        }
    }
    Err(Failure::Link(LinkError::Protocol {
        host: label.to_string(),
        detail: format!("no hello in its first {MAX_NOISE_LINES} lines"),
    }))
}

impl Core {
    fn send(&self, frame: &Up) -> Result<(), LinkError> {
        let line = encode(frame).map_err(|e| LinkError::Protocol {
            host: self.label.clone(),
            detail: format!("a request could not be encoded: {e}"),
        })?;
        let mut up = lock(&self.up);
        let written = match up.as_mut() {
            Some(up) => up.write_all(&line).and_then(|()| up.flush()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        drop(up);
        written.map_err(|e| self.lost_error(&format!("cannot send to it: {e}")))
    }

    fn wait(
        &self,
        id: u64,
        rx: &Receiver<Event>,
        progress: Option<&Progress>,
    ) -> Result<Result<serde_json::Value, WireError>, LinkError> {
        let mut cancel_sent = false;
        loop {
            match rx.recv_timeout(CANCEL_POLL) {
                Ok(Event::Reply(result)) => return Ok(result),
                Ok(Event::Progress(snapshot)) => {
                    if let Some(progress) = progress {
                        progress.apply(&snapshot);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if !cancel_sent && progress.is_some_and(Progress::is_cancelled) {
                        cancel_sent = true;
                        self.send(&Up::Cancel { id })?;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.lost_error("it closed the connection"));
                }
            }
        }
    }

    /// The reader thread: every frame to whoever waits for it, until the connection ends.
    fn read_frames(self: Arc<Core>, mut down: impl BufRead) {
        let mut line = String::new();
        let reason = loop {
            match read_frame(&mut down, &mut line) {
                Ok(0) => break "it closed the connection".to_string(),
                Err(e) => break format!("reading from it failed: {e}"),
                Ok(_) => {}
            }
            match serde_json::from_str::<Down>(&line) {
                Ok(frame) => self.deliver(frame),
                Err(e) => log::warn!(
                    "{}: ignoring a frame that is not the host protocol: {e}",
                    self.label
                ),
            }
        };
        // ssh writes why it ended just before it closes stdout.
        std::thread::sleep(Duration::from_millis(50));
        self.mark_lost(&reason);
    }

    fn deliver(&self, frame: Down) {
        match frame {
            Down::Reply { id, result } => {
                if let Some(tx) = lock(&self.calls).get(&id) {
                    let _ = tx.send(Event::Reply(result));
                }
            }
            Down::Progress { id, progress } => {
                if let Some(tx) = lock(&self.calls).get(&id) {
                    let _ = tx.send(Event::Progress(progress));
                }
            }
            Down::Output { stream, data } => {
                if let Some(tx) = lock(&self.streams).get(&stream) {
                    let _ = tx.send(StreamEvent::Data(data.0));
                }
            }
            Down::End { stream, reason } => {
                if let Some(tx) = lock(&self.streams).remove(&stream) {
                    let _ = tx.send(StreamEvent::End(reason));
                }
            }
            Down::Hello(_) => log::warn!("{}: ignoring a second hello", self.label),
        }
    }

    /// Records that the connection ended (first reason wins) and wakes everyone waiting.
    fn mark_lost(&self, reason: &str) {
        let why = {
            let said = ssh::last_words(&lock(&self.stderr));
            if lock(&self.stderr).trim().is_empty() {
                reason.to_string()
            } else {
                format!("{reason}; ssh: {said}")
            }
        };
        lock(&self.lost).get_or_insert(why.clone());
        lock(&self.up).take();
        lock(&self.calls).clear();
        for (_, tx) in lock(&self.streams).drain() {
            let _ = tx.send(StreamEvent::End(Some(format!(
                "the connection to {} was lost ({why})",
                self.label
            ))));
        }
    }

    fn lost_error(&self, fallback: &str) -> LinkError {
        LinkError::Lost {
            host: self.label.clone(),
            reason: lock(&self.lost)
                .clone()
                .unwrap_or_else(|| fallback.to_string()),
        }
    }
}

impl Handle {
    fn close(&self) {
        self.core.mark_lost("closed by this vmux");
        if let Some(mut child) = lock(&self.child).take() {
            // The agent exits when its stdin closes (done above); ssh follows within a few
            // milliseconds on a healthy link, and is killed after CLOSE_WAIT on a dead one.
            let deadline = std::time::Instant::now() + CLOSE_WAIT;
            while std::time::Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.close();
    }
}

/// Console output from the agent.
struct StreamReader {
    core: Arc<Core>,
    stream: u64,
    events: Receiver<StreamEvent>,
    pending: Vec<u8>,
    offset: usize,
    ended: bool,
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.offset >= self.pending.len() {
            if self.ended {
                return Ok(0);
            }
            match self.events.recv() {
                Ok(StreamEvent::Data(data)) => {
                    self.pending = data;
                    self.offset = 0;
                }
                Ok(StreamEvent::End(None)) | Err(_) => {
                    self.ended = true;
                }
                Ok(StreamEvent::End(Some(reason))) => {
                    self.ended = true;
                    return Err(std::io::Error::other(reason));
                }
            }
        }
        let n = buf.len().min(self.pending.len() - self.offset);
        buf[..n].copy_from_slice(&self.pending[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        if lock(&self.core.streams).remove(&self.stream).is_some() {
            let _ = self.core.send(&Up::Close {
                stream: self.stream,
            });
        }
    }
}

/// Console input to the agent.
struct StreamWriter {
    core: Arc<Core>,
    stream: u64,
}

impl Write for StreamWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.core
            .send(&Up::Input {
                stream: self.stream,
                data: Bytes(buf.to_vec()),
            })
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::BrokenPipe, e))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Copies ssh's stderr into `tail` (its last [`STDERR_TAIL`] bytes) on a `remote-err` thread.
fn keep_stderr(mut stderr: impl Read + Send + 'static, tail: Arc<Mutex<String>>) {
    let spawned = std::thread::Builder::new()
        .name("remote-err".into())
        .spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                let mut tail = lock(&tail);
                tail.push_str(&String::from_utf8_lossy(&buf[..n]));
                if tail.len() > STDERR_TAIL {
                    let cut = tail.len() - STDERR_TAIL;
                    let cut = (cut..tail.len())
                        .find(|&i| tail.is_char_boundary(i))
                        .unwrap_or(0);
                    tail.drain(..cut);
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("ssh's messages will not be kept: no thread for them: {e}");
    }
}

/// Locks `mutex`, carrying on past a panicked holder (every change is one insert or remove).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
