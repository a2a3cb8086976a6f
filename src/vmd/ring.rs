//! The console ring buffer: the last [`CONSOLE_RING_BYTES`] of guest serial output, shared by
//! the vCPU thread that produces it and every consumer (console clients, the console log).
//!
//! Bytes are numbered: the first byte the guest ever wrote in this vmd is sequence 0. Each
//! consumer keeps its own cursor (the sequence number of the next byte it wants), so one slow
//! consumer never holds back another, and the producer never waits for anyone: when a cursor
//! falls out of the window, its reader skips ahead and is told how many bytes it missed.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::engine::SerialSink;

/// How much serial output vmd keeps for late attachers, in bytes.
pub const CONSOLE_RING_BYTES: usize = 1 << 20;

/// Bounded, sequence-numbered byte history with blocking readers.
///
/// Invariant: the buffer holds bytes `end - len .. end` where `len = min(end, capacity)`;
/// byte `s` lives at index `s % capacity`.
pub struct ConsoleRing {
    inner: Mutex<RingInner>,
    /// Signalled on every push and on close.
    grown: Condvar,
}

struct RingInner {
    buf: Box<[u8]>,
    /// Sequence number of the next byte to be written.
    end: u64,
    /// No more bytes will come (vmd is exiting).
    closed: bool,
}

impl RingInner {
    fn capacity(&self) -> u64 {
        self.buf.len() as u64
    }

    fn oldest(&self) -> u64 {
        self.end.saturating_sub(self.capacity())
    }
}

/// What one [`ConsoleRing::read`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Bytes between the cursor and the oldest byte still held: lost to this reader.
    pub dropped: u64,
    /// The cursor to pass next time.
    pub next: u64,
}

impl ConsoleRing {
    /// An empty ring holding at most `capacity` bytes (at least one).
    pub fn new(capacity: usize) -> ConsoleRing {
        ConsoleRing {
            inner: Mutex::new(RingInner {
                buf: vec![0; capacity.max(1)].into_boxed_slice(),
                end: 0,
                closed: false,
            }),
            grown: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RingInner> {
        // A panicking reader cannot leave the ring inconsistent (every update is a plain copy
        // followed by a counter bump), so keep serving after a poison.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `bytes`, overwriting the oldest output. Never blocks beyond the copy.
    pub fn push(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut inner = self.lock();
        let cap = inner.buf.len();
        // Only the last `cap` bytes can survive; skip the rest but still count them.
        let keep = &bytes[bytes.len().saturating_sub(cap)..];
        let skipped = (bytes.len() - keep.len()) as u64;
        let mut pos = ((inner.end + skipped) % cap as u64) as usize;
        let mut rest = keep;
        while !rest.is_empty() {
            let n = rest.len().min(cap - pos);
            inner.buf[pos..pos + n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            pos = (pos + n) % cap;
        }
        inner.end += bytes.len() as u64;
        drop(inner);
        self.grown.notify_all();
    }

    /// Sequence number of the next byte to be written (= bytes written so far).
    pub fn end(&self) -> u64 {
        self.lock().end
    }

    /// Sequence number of the oldest byte still held.
    pub fn oldest(&self) -> u64 {
        self.lock().oldest()
    }

    /// Copies up to `max` bytes starting at `cursor` onto `out`. A cursor older than the window
    /// is moved to its start and the gap reported in [`Chunk::dropped`]; a cursor beyond the
    /// end is treated as the end.
    pub fn read(&self, cursor: u64, max: usize, out: &mut Vec<u8>) -> Chunk {
        let inner = self.lock();
        let oldest = inner.oldest();
        let start = cursor.clamp(oldest, inner.end);
        let dropped = start - cursor.min(start);
        let len = ((inner.end - start) as usize).min(max);
        let cap = inner.buf.len();
        let mut pos = (start % inner.capacity()) as usize;
        let mut left = len;
        while left > 0 {
            let n = left.min(cap - pos);
            out.extend_from_slice(&inner.buf[pos..pos + n]);
            left -= n;
            pos = (pos + n) % cap;
        }
        Chunk {
            dropped,
            next: start + len as u64,
        }
    }

    /// Blocks until there are bytes at or after `cursor`, the ring is closed, or `timeout`
    /// passes. Returns whether bytes are available.
    pub fn wait(&self, cursor: u64, timeout: Duration) -> bool {
        let inner = self.lock();
        let (inner, _) = self
            .grown
            .wait_timeout_while(inner, timeout, |i| i.end <= cursor && !i.closed)
            .unwrap_or_else(PoisonError::into_inner);
        inner.end > cursor
    }

    /// Marks the end of output: waiting readers wake up and see [`ConsoleRing::is_closed`].
    pub fn close(&self) {
        self.lock().closed = true;
        self.grown.notify_all();
    }

    /// Whether [`ConsoleRing::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

impl SerialSink for ConsoleRing {
    fn write(&self, bytes: &[u8]) {
        self.push(bytes);
    }
}

/// Most bytes one [`RingReader::next`] hands out, so a consumer interleaves with others.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// One consumer's cursor into a [`ConsoleRing`], turning gaps into a visible marker.
pub struct RingReader {
    ring: Arc<ConsoleRing>,
    cursor: u64,
}

/// What [`RingReader::next`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Bytes (possibly led by a drop marker) were appended to the buffer.
    Data,
    /// Nothing new within the timeout.
    Idle,
    /// The ring is closed and this reader has seen everything.
    Closed,
}

/// A reader woken with less new output than this waits [`GATHER_FOR`] for more.
const GATHER_BELOW_BYTES: u64 = 512;
/// How long a reader gathers a trickle of output before handing it on.
const GATHER_FOR: Duration = Duration::from_millis(2);

impl RingReader {
    /// A reader starting at the oldest held byte (`history`) or at the current end.
    pub fn new(ring: Arc<ConsoleRing>, history: bool) -> RingReader {
        let cursor = if history { ring.oldest() } else { ring.end() };
        RingReader { ring, cursor }
    }

    /// Waits up to `timeout` for output and appends it to `out`; if this reader fell behind,
    /// a `[vmux: N bytes dropped]` line comes first.
    pub fn next(&mut self, out: &mut Vec<u8>, timeout: Duration) -> ReadOutcome {
        if !self.ring.wait(self.cursor, timeout) {
            return if self.ring.is_closed() && self.ring.end() <= self.cursor {
                ReadOutcome::Closed
            } else {
                ReadOutcome::Idle
            };
        }
        // A guest prints one byte per UART exit: without this short wait every byte would wake
        // every reader (console clients, the logger) on its own. 2 ms is far below what a
        // person typing notices, and a busy guest fills GATHER_BELOW_BYTES sooner.
        if self.ring.end().saturating_sub(self.cursor) < GATHER_BELOW_BYTES
            && !self.ring.is_closed()
        {
            std::thread::sleep(GATHER_FOR);
        }
        let mut data = Vec::new();
        let chunk = self.ring.read(self.cursor, READ_CHUNK_BYTES, &mut data);
        if chunk.dropped > 0 {
            out.extend_from_slice(drop_marker(chunk.dropped).as_bytes());
        }
        out.extend_from_slice(&data);
        self.cursor = chunk.next;
        ReadOutcome::Data
    }
}

/// The line a lagging consumer sees in place of the output it missed.
pub fn drop_marker(dropped: u64) -> String {
    format!("\r\n[vmux: {dropped} bytes dropped]\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(ring: &ConsoleRing, cursor: u64) -> (Vec<u8>, Chunk) {
        let mut out = Vec::new();
        let chunk = ring.read(cursor, usize::MAX, &mut out);
        (out, chunk)
    }

    #[test]
    fn reads_back_what_was_pushed() {
        let ring = ConsoleRing::new(16);
        ring.push(b"hello");
        let (out, chunk) = read_all(&ring, 0);
        assert_eq!(out, b"hello");
        assert_eq!(
            chunk,
            Chunk {
                dropped: 0,
                next: 5
            }
        );
    }

    #[test]
    fn wraparound_keeps_the_newest_bytes_in_order() {
        let ring = ConsoleRing::new(8);
        ring.push(b"abcdef");
        ring.push(b"ghijk");
        let (out, chunk) = read_all(&ring, ring.oldest());
        assert_eq!(out, b"defghijk");
        assert_eq!(chunk.next, 11);
    }

    #[test]
    fn a_push_larger_than_the_ring_keeps_its_tail() {
        let ring = ConsoleRing::new(4);
        ring.push(b"0123456789");
        let (out, _) = read_all(&ring, ring.oldest());
        assert_eq!(out, b"6789");
        assert_eq!(ring.end(), 10);
    }

    #[test]
    fn memory_stays_bounded_by_capacity() {
        let ring = ConsoleRing::new(1024);
        for _ in 0..10_000 {
            ring.push(&[b'x'; 100]);
        }
        let (out, _) = read_all(&ring, 0);
        assert_eq!(out.len(), 1024);
        assert_eq!(ring.oldest(), 1_000_000 - 1024);
    }

    #[test]
    fn a_slow_cursor_skips_ahead_and_counts_the_gap() {
        let ring = ConsoleRing::new(8);
        ring.push(b"0123456789abcdef");
        let (out, chunk) = read_all(&ring, 2);
        assert_eq!(out, b"89abcdef");
        assert_eq!(chunk.dropped, 6);
    }

    #[test]
    fn a_lagging_reader_sees_a_drop_marker_then_the_window() {
        let ring = Arc::new(ConsoleRing::new(8));
        let mut reader = RingReader::new(Arc::clone(&ring), false);
        ring.push(b"0123456789ab");
        let mut out = Vec::new();
        assert_eq!(reader.next(&mut out, Duration::ZERO), ReadOutcome::Data);
        let text = String::from_utf8(out).expect("ascii");
        assert_eq!(text, format!("{}456789ab", drop_marker(4)));
        assert!(text.contains("[vmux: 4 bytes dropped]"));
    }

    #[test]
    fn two_readers_have_independent_cursors() {
        let ring = Arc::new(ConsoleRing::new(64));
        let mut first = RingReader::new(Arc::clone(&ring), false);
        ring.push(b"one ");
        let mut second = RingReader::new(Arc::clone(&ring), false);
        ring.push(b"two");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        first.next(&mut a, Duration::ZERO);
        second.next(&mut b, Duration::ZERO);
        assert_eq!(a, b"one two");
        assert_eq!(b, b"two");
    }

    #[test]
    fn history_reader_starts_at_the_oldest_byte() {
        let ring = Arc::new(ConsoleRing::new(64));
        ring.push(b"banner\n");
        let mut late = RingReader::new(Arc::clone(&ring), true);
        let mut out = Vec::new();
        late.next(&mut out, Duration::ZERO);
        assert_eq!(out, b"banner\n");
    }

    #[test]
    fn a_waiting_reader_wakes_on_push_from_another_thread() {
        let ring = Arc::new(ConsoleRing::new(64));
        let mut reader = RingReader::new(Arc::clone(&ring), false);
        let producer = {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                ring.push(b"late");
            })
        };
        let mut out = Vec::new();
        let outcome = reader.next(&mut out, Duration::from_secs(5));
        producer.join().expect("producer");
        assert_eq!(outcome, ReadOutcome::Data);
        assert_eq!(out, b"late");
    }

    #[test]
    fn an_idle_reader_times_out_and_a_closed_drained_one_ends() {
        let ring = Arc::new(ConsoleRing::new(64));
        let mut reader = RingReader::new(Arc::clone(&ring), false);
        let mut out = Vec::new();
        assert_eq!(
            reader.next(&mut out, Duration::from_millis(1)),
            ReadOutcome::Idle
        );
        ring.push(b"last");
        ring.close();
        assert_eq!(reader.next(&mut out, Duration::ZERO), ReadOutcome::Data);
        assert_eq!(reader.next(&mut out, Duration::ZERO), ReadOutcome::Closed);
        assert_eq!(out, b"last");
    }
}
