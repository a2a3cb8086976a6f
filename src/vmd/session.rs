//! One control connection: read request lines, answer each with a reply line, and on request
//! either push events (`subscribe`) or switch to a raw console stream (`console`).
//!
//! A connection runs on its own thread. Replies and pushed events share one writer behind a
//! mutex with a write timeout, so a client that stops reading is disconnected rather than
//! stalling vmd. A line that is not a valid request gets an error reply; the connection stays
//! open.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use syscalls::Sysno;

use super::admission::Slot;
use super::events::Subscription;
use super::ring::{ReadOutcome, RingReader};
use super::supervisor::Supervisor;
use crate::engine::confine::ioctls::{KVMIO, TYPE_MASK};
use crate::engine::confine::syscalls::{ArgRule, SyscallList};
use crate::engine::confine::{self, ThreadKind};
use crate::protocol::{
    Command, ErrorKind, ProtocolError, Reply, ReplyResult, Request, ServerMessage,
};

/// A connection that has neither subscribed nor switched to the console is closed after this
/// long without a request (clients open one connection per command).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A lifecycle-only connection (see `admission`) must send its request within this.
const LIFECYCLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest request line accepted, in bytes.
pub const MAX_REQUEST_BYTES: usize = 64 << 10;
/// A client that does not take a reply or event within this long is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long console input keeps retrying bytes the guest's receive queue has no room for.
const INPUT_PATIENCE: Duration = Duration::from_secs(1);

type Writer = Arc<Mutex<UnixStream>>;

/// What a `conn` thread may call. Besides its socket, it runs every command: state changes
/// rewrite `state.json`; pause and destroy kick vCPUs; `set_vcpus` creates and sets up vCPUs
/// (KVM's ioctls, the kvm_run mapping); `attach_disk` and `switch_disks` open, lock, read and
/// flush images (`IMAGE_IO` is added) and register the new disk's eventfds with KVM.
pub const CONNECTION_SYSCALLS: SyscallList = SyscallList {
    any: &[
        Sysno::recvfrom,
        Sysno::sendto,
        Sysno::read,
        Sysno::setsockopt,
        Sysno::shutdown,
        Sysno::tgkill,
        Sysno::openat,
        Sysno::newfstatat,
        Sysno::readlink,
        Sysno::flock,
        Sysno::rename,
        Sysno::unlink,
        Sysno::getdents64,
        Sysno::eventfd2,
        Sysno::epoll_create1,
        Sysno::epoll_ctl,
    ],
    ioctls: &[],
    args: &[ArgRule {
        call: Sysno::ioctl,
        index: 1,
        mask: TYPE_MASK,
        values: &[KVMIO << 8],
    }],
};

/// What an `events` thread may call: write events to its client, then hang up.
pub const EVENTS_SYSCALLS: SyscallList = SyscallList::calls(&[Sysno::sendto, Sysno::shutdown]);

/// What a `console-out` thread may call: write guest output to its client, then hang up.
pub const CONSOLE_OUT_SYSCALLS: SyscallList = SyscallList::calls(&[Sysno::sendto, Sysno::shutdown]);

/// Serves `stream` until the client disconnects (or switches to console and leaves), goes idle
/// for [`IDLE_TIMEOUT`], or (in a [`Slot::LifecycleOnly`] slot) has had its one request.
pub fn serve(sup: Arc<Supervisor>, stream: UnixStream, slot: Slot) {
    if let Err(e) = run(&sup, stream, slot) {
        log::debug!("control connection ended: {e}");
    }
}

/// Whether `command` is served on a lifecycle-only connection.
fn is_lifecycle(command: &Command) -> bool {
    matches!(
        command,
        Command::Info
            | Command::Shutdown
            | Command::Reboot
            | Command::Reset
            | Command::Destroy
            | Command::Pause
            | Command::Resume
    )
}

fn run(sup: &Arc<Supervisor>, stream: UnixStream, slot: Slot) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    stream.set_read_timeout(Some(match slot {
        Slot::Full => IDLE_TIMEOUT,
        Slot::LifecycleOnly => LIFECYCLE_TIMEOUT,
    }))?;
    let reading = stream.try_clone()?;
    let writer: Writer = Arc::new(Mutex::new(stream.try_clone()?));
    let mut reader = BufReader::new(stream);
    let mut subscribed = false;
    let mut line = Vec::new();
    loop {
        match read_line(&mut reader, &mut line)? {
            Line::Eof => return Ok(()),
            Line::TooLong => {
                send_error(
                    &writer,
                    0,
                    ErrorKind::BadRequest,
                    format!("request longer than {MAX_REQUEST_BYTES} bytes"),
                )?;
                continue;
            }
            Line::Complete => {}
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let request = match parse_request(&line) {
            Ok(request) => request,
            Err((id, message)) => {
                send_error(&writer, id, ErrorKind::BadRequest, message)?;
                continue;
            }
        };
        if slot == Slot::LifecycleOnly {
            return lifecycle_only(sup, &writer, request);
        }
        match request.command {
            Command::Subscribe => {
                send_ok(&writer, request.id, None)?;
                if !subscribed {
                    subscribed = true;
                    // A subscriber waits for events, not for its own requests.
                    reading.set_read_timeout(None)?;
                    if let Some(sub) = sup.events().subscribe() {
                        spawn_forwarder(sub, Arc::clone(&writer))?;
                    }
                }
            }
            Command::Console { .. } if subscribed => send_error(
                &writer,
                request.id,
                ErrorKind::InvalidState,
                "this connection receives events; open a new connection for the console".into(),
            )?,
            Command::Console { history } => {
                // Take the cursor before the reply so no output falls between the two.
                let ring_reader = RingReader::new(Arc::clone(sup.ring()), history);
                send_ok(&writer, request.id, None)?;
                // A console waits for its user as long as it takes.
                reading.set_read_timeout(None)?;
                return console(sup, reader, &writer, ring_reader);
            }
            command => {
                let reply = match sup.execute(&command) {
                    Ok(result) => ok_reply(request.id, result),
                    Err(error) => error_reply(request.id, error),
                };
                send(&writer, &ServerMessage::Reply(reply))?;
            }
        }
    }
}

/// Serves the one request of a lifecycle-only connection, which then closes.
fn lifecycle_only(sup: &Supervisor, writer: &Writer, request: Request) -> io::Result<()> {
    if !is_lifecycle(&request.command) {
        return send_error(
            writer,
            request.id,
            ErrorKind::InvalidState,
            "vmd is at its control connection limit, so this connection serves only info, \
             shutdown, reboot, reset, destroy, pause and resume; close idle clients and retry"
                .into(),
        );
    }
    let reply = match sup.execute(&request.command) {
        Ok(result) => ok_reply(request.id, result),
        Err(error) => error_reply(request.id, error),
    };
    send(writer, &ServerMessage::Reply(reply))
}

pub(crate) enum Line {
    Complete,
    TooLong,
    Eof,
}

/// Reads one line (without its newline) into `line`, never holding more than
/// [`MAX_REQUEST_BYTES`]; an overlong line is consumed up to its newline and reported.
pub(crate) fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<Line> {
    line.clear();
    let limit = MAX_REQUEST_BYTES as u64 + 1;
    let n = reader.by_ref().take(limit).read_until(b'\n', line)?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Line::Complete);
    }
    if line.len() <= MAX_REQUEST_BYTES {
        // The client closed mid-line; treat what came as a line.
        return Ok(Line::Complete);
    }
    // Skip the rest of the overlong line in bounded steps.
    loop {
        line.clear();
        let n = reader.by_ref().take(limit).read_until(b'\n', line)?;
        if n == 0 || line.last() == Some(&b'\n') {
            line.clear();
            return Ok(Line::TooLong);
        }
    }
}

/// Parses a request; on failure returns the id to answer with (0 when none can be found)
/// and the message.
pub(crate) fn parse_request(line: &[u8]) -> Result<Request, (u64, String)> {
    serde_json::from_slice::<Request>(line).map_err(|e| {
        let id = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
            .unwrap_or(0);
        (
            id,
            format!("not a valid request ({e}); see docs/control-protocol.md"),
        )
    })
}

fn ok_reply(id: u64, result: Option<ReplyResult>) -> Reply {
    Reply {
        id,
        ok: true,
        result,
        error: None,
    }
}

fn error_reply(id: u64, error: ProtocolError) -> Reply {
    Reply {
        id,
        ok: false,
        result: None,
        error: Some(error),
    }
}

fn send(writer: &Writer, message: &ServerMessage) -> io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(io::Error::other)?;
    line.push(b'\n');
    let mut stream = writer.lock().unwrap_or_else(PoisonError::into_inner);
    stream.write_all(&line)
}

fn send_ok(writer: &Writer, id: u64, result: Option<ReplyResult>) -> io::Result<()> {
    send(writer, &ServerMessage::Reply(ok_reply(id, result)))
}

fn send_error(writer: &Writer, id: u64, kind: ErrorKind, message: String) -> io::Result<()> {
    let error = ProtocolError { kind, message };
    send(writer, &ServerMessage::Reply(error_reply(id, error)))
}

fn spawn_forwarder(sub: Subscription, writer: Writer) -> io::Result<()> {
    confine::spawn(ThreadKind::Events, "events".into(), move || {
        while let Ok(event) = sub.recv() {
            if send(&writer, &ServerMessage::Event(event)).is_err() {
                break;
            }
        }
        // The bus closed after `exited` (or the client left): nothing more will come, so
        // end the connection rather than leave the client waiting.
        let stream = writer.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = stream.shutdown(std::net::Shutdown::Both);
        // Dropping `sub` here tells the bus this subscriber has written all it will.
    })
    .map(drop)
}

/// Raw console mode: guest output to the client on a thread of its own, client bytes to the
/// guest on this one. Ends when the client closes its side or vmd's output ends.
fn console(
    sup: &Arc<Supervisor>,
    mut input: BufReader<UnixStream>,
    writer: &Writer,
    mut output: RingReader,
) -> io::Result<()> {
    let mut out_stream = writer
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .try_clone()?;
    // A console client may stop reading for a while (a suspended terminal); its output thread
    // waits and the ring skips ahead, so no timeout here.
    out_stream.set_write_timeout(None)?;
    let done = Arc::new(AtomicBool::new(false));
    let output_thread = {
        let done = Arc::clone(&done);
        confine::spawn(ThreadKind::ConsoleOut, "console-out".into(), move || {
            let mut buf = Vec::new();
            while !done.load(Ordering::SeqCst) {
                buf.clear();
                match output.next(&mut buf, Duration::from_millis(500)) {
                    ReadOutcome::Data => {
                        if out_stream.write_all(&buf).is_err() {
                            break;
                        }
                    }
                    ReadOutcome::Idle => {}
                    ReadOutcome::Closed => break,
                }
            }
            // Wake the input side if it is still blocked reading.
            let _ = out_stream.shutdown(std::net::Shutdown::Both);
        })?
    };
    let mut buf = [0u8; 4096];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        deliver_input(sup, &buf[..n]);
    }
    done.store(true, Ordering::SeqCst);
    let _ = output_thread.join();
    Ok(())
}

/// Hands `bytes` to the guest's UART, retrying while its receive queue is full, for at most
/// [`INPUT_PATIENCE`] without progress (a guest that never reads input must not wedge this
/// connection forever). Input while no boot runs is dropped.
fn deliver_input(sup: &Supervisor, mut bytes: &[u8]) {
    let mut last_progress = Instant::now();
    while !bytes.is_empty() {
        let Some(control) = sup.control() else {
            return;
        };
        let accepted = control.serial_input(bytes).min(bytes.len());
        if accepted > 0 {
            bytes = &bytes[accepted..];
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= INPUT_PATIENCE {
            log::debug!(
                "guest is not reading serial input; dropped {} bytes",
                bytes.len()
            );
            return;
        } else {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlong_line_is_reported_and_the_next_line_still_reads() {
        let mut text = vec![b'x'; MAX_REQUEST_BYTES * 2 + 10];
        text.extend_from_slice(b"\n{\"id\":1}\n");
        let mut reader = BufReader::new(&text[..]);
        let mut line = Vec::new();
        assert!(matches!(
            read_line(&mut reader, &mut line).expect("read"),
            Line::TooLong
        ));
        assert!(matches!(
            read_line(&mut reader, &mut line).expect("read"),
            Line::Complete
        ));
        assert_eq!(line, b"{\"id\":1}");
    }

    #[test]
    fn a_bad_request_keeps_its_id_for_the_error_reply() {
        let (id, message) = parse_request(br#"{"id":9,"cmd":"fly"}"#).expect_err("bad");
        assert_eq!(id, 9);
        assert!(message.contains("not a valid request"), "{message}");
    }

    #[test]
    fn garbage_is_answered_with_id_zero() {
        let (id, _) = parse_request(b"hello").expect_err("bad");
        assert_eq!(id, 0);
    }
}
