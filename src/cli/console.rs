//! `vmux console`: attach to a VM's serial console.
//!
//! On a terminal: raw mode (every key goes to the guest, Ctrl-C included) until Ctrl-]
//! detaches; the terminal is restored on every way out (the guard's `Drop`, and the panic hook
//! in main). Without a terminal it is a pipe: stdin goes to the guest, guest output to stdout,
//! and `--until REGEX` / `--timeout S` make it scriptable.
//!
//! Two reader threads (guest output, stdin) feed one channel; the calling thread forwards and
//! watches the clock, so neither a silent guest nor a silent user can block the other.

use super::{CliError, ConsoleArgs, Io};
use crate::client::{ClientError, Host};
use crate::protocol::RunState;
use regex::bytes::Regex;
use std::io::{IsTerminal, Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// Ctrl-]: the byte that detaches an interactive console (as in telnet and virsh).
pub(super) const DETACH_KEY: u8 = 0x1d;
/// How much recent output `--until` matches against; older output falls out of the window.
const UNTIL_WINDOW: usize = 1 << 20;
/// `--history`: wait this long for vmd's first bytes ...
const HISTORY_FIRST_WAIT: Duration = Duration::from_secs(2);
/// ... then stop once the stream has been quiet this long (the protocol has no end marker
/// between buffered and live output) ...
const HISTORY_QUIET: Duration = Duration::from_millis(300);
/// ... or after this long in all, for a guest that never stops talking.
const HISTORY_MAX: Duration = Duration::from_secs(5);

/// Console options for `start --console`: history then live, interactive.
pub fn default_args(name: &str) -> ConsoleArgs {
    ConsoleArgs {
        name: name.to_string(),
        history: false,
        no_history: false,
        until: None,
        timeout: None,
    }
}

/// `vmux console`.
pub fn attach(host: &dyn Host, args: &ConsoleArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    let name = args.name.as_str();
    let until = args
        .until
        .as_deref()
        .map(|pattern| {
            Regex::new(pattern).map_err(|source| CliError::BadPattern {
                pattern: pattern.to_string(),
                source,
            })
        })
        .transpose()?;
    if !matches!(
        host.state(name)?.state,
        RunState::Running | RunState::Paused
    ) {
        return Err(ClientError::NotRunning(name.to_string()).into());
    }
    let console = host.console(name, !args.no_history)?;
    if args.history {
        return print_history(console.output, io.out);
    }
    let interactive = std::io::stdin().is_terminal();
    let (feed, feeds) = mpsc::channel();
    spawn_reader(
        "console-out",
        console.output,
        feed.clone(),
        Feed::Output,
        Feed::OutputEnd,
    );
    spawn_reader(
        "console-in",
        Box::new(std::io::stdin()),
        feed,
        Feed::Input,
        Feed::InputEnd,
    );
    let watch = Watch {
        until,
        deadline: args
            .timeout
            .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0))),
        detach_key: interactive.then_some(DETACH_KEY),
    };
    let mut input = console.input;
    let ending = if interactive {
        let raw = RawMode::enter()?;
        write!(
            io.err,
            "Connected to VM '{name}'; press Ctrl-] to detach (the VM keeps running)\r\n"
        )?;
        let ending = pump(&feeds, &mut input, io.out, &watch);
        drop(raw);
        ending?
    } else {
        pump(&feeds, &mut input, io.out, &watch)?
    };
    finish(ending, name, args, io)
}

/// Says how the session ended; the ways that are failures become errors.
fn finish(ending: Ending, name: &str, args: &ConsoleArgs, io: &mut Io<'_>) -> Result<(), CliError> {
    match ending {
        Ending::Matched => Ok(()),
        Ending::Detached => {
            writeln!(
                io.err,
                "\nDetached from VM '{name}'; it keeps running. Reattach with `vmux console {name}`"
            )?;
            Ok(())
        }
        Ending::Closed => match &args.until {
            Some(pattern) => Err(CliError::ConsoleClosed {
                name: name.to_string(),
                pattern: pattern.clone(),
            }),
            None => {
                writeln!(
                    io.err,
                    "\nThe console of VM '{name}' closed (the VM stopped)"
                )?;
                Ok(())
            }
        },
        Ending::TimedOut => Err(CliError::ConsoleTimeout {
            what: match &args.until {
                Some(pattern) => format!("no console output matched '{pattern}'"),
                None => "the console was still open".into(),
            },
            seconds: args.timeout.unwrap_or_default(),
        }),
    }
}

/// Prints what vmd sends until the stream goes quiet (the ring buffer, then nothing new).
fn print_history(output: Box<dyn Read + Send>, out: &mut dyn Write) -> Result<(), CliError> {
    let (feed, feeds) = mpsc::channel();
    spawn_reader("console-out", output, feed, Feed::Output, Feed::OutputEnd);
    let started = Instant::now();
    let mut wait = HISTORY_FIRST_WAIT;
    while started.elapsed() < HISTORY_MAX {
        match feeds.recv_timeout(wait) {
            Ok(Feed::Output(bytes)) => {
                out.write_all(&bytes)?;
                wait = HISTORY_QUIET;
            }
            Ok(_) | Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    out.flush()?;
    Ok(())
}

/// What the reader threads report.
#[derive(Debug, PartialEq)]
enum Feed {
    /// Guest output.
    Output(Vec<u8>),
    /// The console stream ended (VM stopped, vmd gone).
    OutputEnd,
    /// Bytes the user typed (or piped).
    Input(Vec<u8>),
    /// stdin is exhausted.
    InputEnd,
}

/// Reads `source` on its own thread until EOF or error, sending chunks as `data` and the end
/// as `end`. The thread stops when the receiver is gone.
fn spawn_reader(
    thread: &str,
    mut source: Box<dyn Read + Send>,
    feed: Sender<Feed>,
    data: fn(Vec<u8>) -> Feed,
    end: Feed,
) {
    let spawned = std::thread::Builder::new()
        .name(thread.to_string())
        .spawn(move || {
            let mut buf = vec![0u8; 4096];
            loop {
                match source.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if feed.send(data(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::debug!("console reader stopped: {e}");
                        break;
                    }
                }
            }
            let _ = feed.send(end);
        });
    if let Err(e) = spawned {
        // Without the thread this side of the console is simply silent; the other side and
        // the timeout still work, so this is worth a log line, not a failure.
        log::warn!("cannot start the console reader thread: {e}");
    }
}

/// When a session ends by itself.
struct Watch {
    /// Exit once the output so far matches.
    until: Option<Regex>,
    /// Exit (as a failure) at this instant.
    deadline: Option<Instant>,
    /// Interactive sessions: the byte that detaches.
    detach_key: Option<u8>,
}

/// How a session ended.
#[derive(Debug, PartialEq)]
enum Ending {
    /// The user pressed the detach key.
    Detached,
    /// `--until` matched.
    Matched,
    /// The console stream ended.
    Closed,
    /// `--timeout` passed.
    TimedOut,
}

/// Forwards feeds until the session ends: output to `out` (flushed per chunk so a human sees
/// it at once), input to the guest.
fn pump(
    feeds: &Receiver<Feed>,
    input: &mut dyn Write,
    out: &mut dyn Write,
    watch: &Watch,
) -> Result<Ending, CliError> {
    let mut seen = Vec::new();
    let mut input_open = true;
    loop {
        let feed = match watch.deadline {
            Some(deadline) => {
                match feeds.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(feed) => feed,
                    Err(RecvTimeoutError::Timeout) => return Ok(Ending::TimedOut),
                    Err(RecvTimeoutError::Disconnected) => return Ok(Ending::Closed),
                }
            }
            None => match feeds.recv() {
                Ok(feed) => feed,
                Err(_) => return Ok(Ending::Closed),
            },
        };
        match feed {
            Feed::Output(bytes) => {
                out.write_all(&bytes)?;
                out.flush()?;
                if let Some(until) = &watch.until {
                    remember(&mut seen, &bytes);
                    if until.is_match(&seen) {
                        return Ok(Ending::Matched);
                    }
                }
            }
            Feed::OutputEnd => return Ok(Ending::Closed),
            Feed::Input(bytes) => {
                let detach_at = watch
                    .detach_key
                    .and_then(|key| bytes.iter().position(|b| *b == key));
                let typed = &bytes[..detach_at.unwrap_or(bytes.len())];
                if input_open
                    && !typed.is_empty()
                    && let Err(e) = send(input, typed)
                {
                    // The guest side closed; its output side reports the end.
                    log::debug!("console input closed: {e}");
                    input_open = false;
                }
                if detach_at.is_some() {
                    return Ok(Ending::Detached);
                }
            }
            Feed::InputEnd => {}
        }
    }
}

/// Writes typed bytes to the guest at once (no buffering between keystroke and guest).
fn send(input: &mut dyn Write, typed: &[u8]) -> std::io::Result<()> {
    input.write_all(typed)?;
    input.flush()
}

/// Appends `bytes` to the `--until` window, dropping the oldest output beyond its size.
fn remember(seen: &mut Vec<u8>, bytes: &[u8]) {
    seen.extend_from_slice(bytes);
    if seen.len() > 2 * UNTIL_WINDOW {
        seen.drain(..seen.len() - UNTIL_WINDOW);
    }
}

/// The terminal in raw mode for as long as this lives.
pub(super) struct RawMode;

impl RawMode {
    /// Switches the terminal on stdin to raw mode.
    pub(super) fn enter() -> Result<RawMode, CliError> {
        crossterm::terminal::enable_raw_mode().map_err(|source| CliError::Terminal { source })?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Err(e) = crossterm::terminal::disable_raw_mode() {
            log::warn!("cannot restore the terminal (try `reset`): {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::test_support::{add_vm, capture, host_with_vm};
    use crate::client::fake::FakeHost;
    use crate::config::{BootConfig, VmConfig};

    fn watch() -> Watch {
        Watch {
            until: None,
            deadline: Some(Instant::now() + Duration::from_secs(5)),
            detach_key: None,
        }
    }

    fn run(feeds: Vec<Feed>, watch: &Watch) -> (Ending, Vec<u8>, Vec<u8>) {
        let (feed, rx) = mpsc::channel();
        for f in feeds {
            feed.send(f).expect("send");
        }
        let (mut typed, mut out) = (Vec::new(), Vec::new());
        let ending = pump(&rx, &mut typed, &mut out, watch).expect("pump");
        (ending, typed, out)
    }

    #[test]
    fn until_matches_across_chunks() {
        let watch = Watch {
            until: Some(Regex::new("hello world").expect("regex")),
            ..watch()
        };
        let feeds = vec![
            Feed::Output(b"hello ".to_vec()),
            Feed::Output(b"world\n".to_vec()),
            Feed::Output(b"never printed".to_vec()),
        ];
        let (ending, _, out) = run(feeds, &watch);
        assert_eq!(ending, Ending::Matched);
        assert_eq!(out, b"hello world\n");
    }

    #[test]
    fn input_is_forwarded_to_the_guest() {
        let feeds = vec![Feed::Input(b"echo hi\r".to_vec()), Feed::OutputEnd];
        let (ending, typed, _) = run(feeds, &watch());
        assert_eq!(ending, Ending::Closed);
        assert_eq!(typed, b"echo hi\r");
    }

    #[test]
    fn detach_key_forwards_what_came_before_it_and_stops() {
        let watch = Watch {
            detach_key: Some(DETACH_KEY),
            ..watch()
        };
        let feeds = vec![Feed::Input(vec![b'l', b's', DETACH_KEY, b'x'])];
        let (ending, typed, _) = run(feeds, &watch);
        assert_eq!(ending, Ending::Detached);
        assert_eq!(typed, b"ls");
    }

    #[test]
    fn detach_key_is_plain_input_when_piped() {
        let feeds = vec![Feed::Input(vec![DETACH_KEY]), Feed::OutputEnd];
        let (ending, typed, _) = run(feeds, &watch());
        assert_eq!(ending, Ending::Closed);
        assert_eq!(typed, vec![DETACH_KEY]);
    }

    #[test]
    fn silence_past_the_deadline_times_out() {
        let watch = Watch {
            deadline: Some(Instant::now() + Duration::from_millis(50)),
            ..watch()
        };
        let (feed, rx) = mpsc::channel();
        let (mut typed, mut out) = (Vec::new(), Vec::new());
        let ending = pump(&rx, &mut typed, &mut out, &watch).expect("pump");
        drop(feed);
        assert_eq!(ending, Ending::TimedOut);
    }

    #[test]
    fn until_window_stays_bounded() {
        let mut seen = Vec::new();
        for _ in 0..3 {
            remember(&mut seen, &vec![b'x'; UNTIL_WINDOW]);
        }
        assert!(seen.len() <= 2 * UNTIL_WINDOW);
    }

    #[test]
    fn history_prints_the_buffer_and_returns() {
        let host = FakeHost::new();
        host.quiet_boot();
        add_vm(
            &host,
            VmConfig::new("web", BootConfig::Demo),
            RunState::Running,
        );
        host.emit("web", b"banner\n");
        let args = ConsoleArgs {
            history: true,
            ..default_args("web")
        };
        let (result, out, _) = capture(|io| attach(&host, &args, io));
        result.expect("history");
        assert_eq!(out, "banner\n");
    }

    #[test]
    fn console_of_a_shut_off_vm_says_how_to_start_it() {
        let host = host_with_vm("web", RunState::ShutOff);
        let (result, _, _) = capture(|io| attach(&host, &default_args("web"), io));
        let err = result.expect_err("must fail");
        assert!(err.to_string().contains("vmux start web"), "{err}");
    }

    #[test]
    fn a_bad_until_pattern_is_refused() {
        let host = host_with_vm("web", RunState::Running);
        let args = ConsoleArgs {
            until: Some("(".into()),
            ..default_args("web")
        };
        let (result, _, _) = capture(|io| attach(&host, &args, io));
        assert!(matches!(result, Err(CliError::BadPattern { .. })));
    }
}
