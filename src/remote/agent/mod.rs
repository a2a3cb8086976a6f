//! `vmux agent --stdio`: serves this host's API to one client over stdin/stdout (the client
//! runs it through `ssh`), in the host protocol (`remote::wire`).
//!
//! Threads: the caller's thread reads frames; every call runs on its own `agent-call` thread
//! and a console has an `agent-out` thread (vmd → client) and an `agent-in` thread (client →
//! vmd), so a slow call or a quiet console never holds up the others. Frames going out are
//! written whole under one lock. When stdin ends (the client left, or ssh dropped), running
//! long operations are cancelled (they clean up as after a failure), consoles are closed, and
//! `serve` returns once the calls have finished or [`DRAIN_TIMEOUT`] has passed.

mod console;
mod dispatch;
mod resources;

use super::error::WireError;
use super::wire::{Down, Hello, Up, encode, read_frame};
use crate::client::HostApi;
use crate::progress::Progress;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long the agent waits for running calls once its client has gone.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a long operation's progress is sent.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Why the agent stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Reading the client's frames failed.
    #[error("cannot read the client's requests on stdin")]
    Read(#[source] std::io::Error),
    /// The hello could not be sent.
    #[error("cannot write to the client on stdout")]
    Write(#[source] std::io::Error),
}

/// Serves `api` to the client whose frames arrive on `input` and whose replies go to `output`,
/// until `input` ends. `host_name` is what the hello tells the client this machine is called.
pub fn serve(
    api: HostApi,
    input: impl BufRead,
    output: Box<dyn Write + Send>,
    host_name: String,
) -> Result<(), AgentError> {
    let agent = Arc::new(Agent {
        api,
        output: Mutex::new(output),
        client_gone: AtomicBool::new(false),
        streams: Mutex::new(HashMap::new()),
        operations: Mutex::new(HashMap::new()),
        in_flight: Mutex::new(0),
        idle: Condvar::new(),
    });
    agent
        .write(&Down::Hello(Hello::ours(host_name)))
        .map_err(AgentError::Write)?;
    let mut input = input;
    let mut line = String::new();
    let result = loop {
        match read_frame(&mut input, &mut line) {
            Ok(0) => break Ok(()),
            Ok(_) if line.trim().is_empty() => {}
            Ok(_) => Agent::receive(&agent, line.trim_end()),
            Err(e) => break Err(AgentError::Read(e)),
        }
    };
    agent.drain();
    result
}

/// What the frame reader and the call threads share.
pub(super) struct Agent {
    api: HostApi,
    output: Mutex<Box<dyn Write + Send>>,
    /// Set once a write to the client failed: nothing more is sent.
    client_gone: AtomicBool,
    /// Console streams: where their input goes.
    streams: Mutex<HashMap<u64, Sender<Vec<u8>>>>,
    /// Long operations in progress, by call id (cancelled through these).
    operations: Mutex<HashMap<u64, Progress>>,
    in_flight: Mutex<usize>,
    idle: Condvar,
}

impl Agent {
    /// Handles one line from the client.
    fn receive(agent: &Arc<Agent>, line: &str) {
        let frame = match serde_json::from_str::<Up>(line) {
            Ok(frame) => frame,
            Err(e) => return agent.refuse(line, &e),
        };
        match frame {
            Up::Call { id, call } => {
                agent.begin_call();
                let worker = Arc::clone(agent);
                let spawned =
                    std::thread::Builder::new()
                        .name("agent-call".into())
                        .spawn(move || {
                            let result = dispatch::answer(&worker, id, call);
                            worker.send(&Down::Reply { id, result });
                            worker.end_call();
                        });
                if let Err(e) = spawned {
                    agent.send(&Down::Reply {
                        id,
                        result: Err(WireError::other(&e)),
                    });
                    agent.end_call();
                }
            }
            Up::Input { stream, data } => {
                if let Some(input) = lock(&agent.streams).get(&stream) {
                    let _ = input.send(data.0);
                }
            }
            Up::Close { stream } => {
                lock(&agent.streams).remove(&stream);
            }
            Up::Cancel { id } => {
                if let Some(progress) = lock(&agent.operations).get(&id) {
                    progress.cancel();
                }
            }
        }
    }

    /// Answers a line that is not a frame this agent knows: a call it cannot read gets an
    /// error reply (a newer client's new call), anything else is logged.
    fn refuse(&self, line: &str, error: &serde_json::Error) {
        let value: Option<serde_json::Value> = serde_json::from_str(line).ok();
        let id = value
            .as_ref()
            .and_then(|v| v.get("id"))
            .and_then(|v| v.as_u64());
        let op = value
            .as_ref()
            .and_then(|v| v.pointer("/call/op"))
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string();
        match id {
            Some(id) => self.send(&Down::Reply {
                id,
                result: Err(WireError::other(&UnknownCall {
                    op,
                    detail: error.to_string(),
                })),
            }),
            None => log::warn!("agent: ignoring a line that is not the host protocol: {error}"),
        }
    }

    /// Sends `frame`; once the client is gone, sends nothing.
    pub(super) fn send(&self, frame: &Down) {
        if self.client_gone.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = self.write(frame) {
            log::debug!("agent: the client is gone: {e}");
            self.client_gone.store(true, Ordering::Relaxed);
        }
    }

    fn write(&self, frame: &Down) -> std::io::Result<()> {
        let line = encode(frame).map_err(std::io::Error::other)?;
        let mut output = lock(&self.output);
        output.write_all(&line)?;
        output.flush()
    }

    /// The host's API.
    pub(super) fn api(&self) -> &HostApi {
        &self.api
    }

    /// Runs `operation` with a progress handle that call `id`'s client watches (progress frames
    /// every [`PROGRESS_INTERVAL`] while it runs) and can cancel.
    pub(super) fn with_progress<T>(&self, id: u64, operation: impl FnOnce(&Progress) -> T) -> T {
        let progress = Progress::new();
        lock(&self.operations).insert(id, progress.clone());
        let done = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut last = None;
                while !done.load(Ordering::Relaxed) {
                    let now = progress.snapshot();
                    if last != Some(now) {
                        self.send(&Down::Progress { id, progress: now });
                        last = Some(now);
                    }
                    std::thread::sleep(PROGRESS_INTERVAL);
                }
            });
            let result = operation(&progress);
            done.store(true, Ordering::Relaxed);
            result
        });
        lock(&self.operations).remove(&id);
        // Where it ended (finished, or not) goes out before the reply does.
        self.send(&Down::Progress {
            id,
            progress: progress.snapshot(),
        });
        result
    }

    /// Registers console `stream`'s input.
    pub(super) fn open_stream(&self, stream: u64, input: Sender<Vec<u8>>) {
        lock(&self.streams).insert(stream, input);
    }

    /// Whether console `stream` is still attached.
    pub(super) fn stream_open(&self, stream: u64) -> bool {
        !self.client_gone.load(Ordering::Relaxed) && lock(&self.streams).contains_key(&stream)
    }

    /// Forgets console `stream`.
    pub(super) fn close_stream(&self, stream: u64) {
        lock(&self.streams).remove(&stream);
    }

    fn begin_call(&self) {
        *lock(&self.in_flight) += 1;
    }

    fn end_call(&self) {
        let mut count = lock(&self.in_flight);
        *count = count.saturating_sub(1);
        self.idle.notify_all();
    }

    /// The client has gone: cancel, close, and wait (bounded) for the calls to finish.
    fn drain(&self) {
        self.client_gone.store(true, Ordering::Relaxed);
        for progress in lock(&self.operations).values() {
            progress.cancel();
        }
        lock(&self.streams).clear();
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let mut count = lock(&self.in_flight);
        while *count > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn!("agent: {} call(s) still running as the agent exits", *count);
                break;
            }
            count = match self.idle.wait_timeout(count, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// A call this agent cannot read (a newer client's).
#[derive(Debug, thiserror::Error)]
#[error(
    "vmux {} on this host does not know the call '{op}' ({detail}); install the same vmux version here as on the machine you connect from",
    env!("CARGO_PKG_VERSION")
)]
struct UnknownCall {
    op: String,
    detail: String,
}

/// Locks `mutex`, carrying on past a panicked holder (the maps stay consistent: every change
/// is one insert or remove).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
