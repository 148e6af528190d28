//! Bounded, live output: what the guest writes and emits reaches the caller while it runs.
//!
//! Two pieces:
//!
//! - [`EventSink`] is the one ordered path from a sandbox to the caller's channel. It
//!   counts events against the execution's event cap and, when the caller is slower than
//!   the guest, holds at most one write's worth of events while the writer waits for
//!   room (back-pressure instead of unbounded buffering).
//! - [`OutputPipe`] is the guest's stdout or stderr. It splits bytes into lines, turns
//!   them into chunk or log events, keeps the bounded capture a command app's output is
//!   read from, and finds the `__FLOOM_RESULT__` marker line. WASI's own memory pipes trap
//!   the guest when full; SPEC wants excess output dropped and marked instead. A write
//!   larger than `check-write` granted traps, as preview 2 specifies: that permit is
//!   what keeps a guest from queueing events faster than the caller takes them.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::event::{Event, LogStream, MAX_NOTICE};
use crate::text::cut_in_place;

/// The prefix of the stdout line that carries a command app's output.
pub const RESULT_MARKER: &str = "__FLOOM_RESULT__";

/// Bytes a guest may write per `check-write` permit (a larger write traps). Bounds how
/// many events one write can queue while the caller is not reading.
const WRITE_PERMIT: usize = 64 * 1024;

/// How many recent stderr lines are kept to explain a panic.
const RECENT_STDERR_LINES: usize = 8;
/// How much of each recent stderr line is kept.
const RECENT_LINE_BYTES: usize = 512;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update of plain counters
    // and buffers; the data is still usable, and a guest must never make the host panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The ordered, capped path from one sandbox to the caller's event channel.
#[derive(Clone)]
pub(crate) struct EventSink {
    tx: Option<mpsc::Sender<Event>>,
    state: Arc<Mutex<SinkState>>,
}

struct SinkState {
    /// Events waiting for room in the channel, oldest first.
    pending: VecDeque<Event>,
    /// Guest events accepted (counted against the cap).
    accepted: u64,
    /// Guest events dropped because a cap was reached.
    dropped: u64,
    cap: u64,
    /// Bytes of the guest events accepted, and their cap: what the store keeps of a run.
    bytes: u64,
    byte_cap: u64,
}

/// Whether an event made it past the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Accepted,
    OverCap,
}

impl EventSink {
    pub(crate) fn new(tx: Option<mpsc::Sender<Event>>, cap: u64) -> Self {
        EventSink {
            tx,
            state: Arc::new(Mutex::new(SinkState {
                pending: VecDeque::new(),
                accepted: 0,
                dropped: 0,
                cap,
                bytes: 0,
                byte_cap: u64::MAX,
            })),
        }
    }

    /// Also caps the bytes of the guest's events (their data or line), so a run cannot
    /// make the store keep more than `bytes` of them.
    pub(crate) fn with_byte_cap(self, bytes: u64) -> Self {
        lock(&self.state).byte_cap = bytes;
        self
    }

    /// Queues a guest event of `size` bytes, counting it against the caps. The first
    /// event over a cap is replaced by one host notice saying so, and every later one is
    /// dropped.
    pub(crate) fn push(&self, size: usize, event: Event) -> Pushed {
        self.push_with(size, || event)
    }

    /// Like [`EventSink::push`], but builds the event only when the caps let it through:
    /// a flood past them costs a counter increment per line, not an allocation.
    pub(crate) fn push_with(&self, size: usize, event: impl FnOnce() -> Event) -> Pushed {
        let mut state = lock(&self.state);
        let bytes = state.bytes.saturating_add(size as u64);
        if state.dropped > 0 || state.accepted >= state.cap || bytes > state.byte_cap {
            state.dropped += 1;
            if state.dropped == 1 {
                let notice = Event::host_notice(if state.accepted >= state.cap {
                    format!(
                        "the event cap of {} was reached; later chunks and log lines are dropped",
                        state.cap
                    )
                } else {
                    format!(
                        "the cap of {} bytes of chunks and log lines was reached; later ones are dropped",
                        state.byte_cap
                    )
                });
                self.enqueue(&mut state, notice);
            }
            return Pushed::OverCap;
        }
        state.accepted += 1;
        state.bytes = bytes;
        self.enqueue(&mut state, event());
        Pushed::Accepted
    }

    /// Whether the caps were reached: every later guest event is dropped, so a producer
    /// can skip the work of building one.
    pub(crate) fn is_full(&self) -> bool {
        lock(&self.state).dropped > 0
    }

    /// Queues a host notice; these are rare (one per kind of cap) and not counted.
    pub(crate) fn notice(&self, mut line: String) {
        cut_in_place(&mut line, MAX_NOTICE);
        let mut state = lock(&self.state);
        self.enqueue(&mut state, Event::host_notice(line));
    }

    fn enqueue(&self, state: &mut SinkState, event: Event) {
        let Some(tx) = &self.tx else { return };
        if !state.pending.is_empty() {
            state.pending.push_back(event);
            return;
        }
        match tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => state.pending.push_back(event),
            // Nobody listens any more: events have nowhere to go.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Whether events are waiting for room in the channel.
    pub(crate) fn is_backlogged(&self) -> bool {
        !lock(&self.state).pending.is_empty()
    }

    /// Waits until every queued event is in the channel (or the receiver is gone).
    pub(crate) async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        loop {
            if lock(&self.state).pending.is_empty() {
                return;
            }
            // Reserve before popping so the order of events never changes.
            let Ok(permit) = tx.reserve().await else {
                lock(&self.state).pending.clear();
                return;
            };
            if let Some(event) = lock(&self.state).pending.pop_front() {
                permit.send(event);
            }
        }
    }

    /// Guest events produced so far, including dropped ones.
    pub(crate) fn produced(&self) -> u64 {
        let state = lock(&self.state);
        state.accepted + state.dropped
    }
}

/// What the lines of an output stream become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineRole {
    /// A command app's stdout: each line is a chunk, the marker line is the output.
    Chunks,
    /// Log lines from the given stream.
    Logs(LogStream),
}

/// Caps that apply to one output stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PipeCaps {
    /// Bytes kept (and, for logs, streamed) before the rest is dropped and marked.
    pub capture: usize,
    /// Largest chunk; longer stdout lines are split.
    pub chunk: usize,
    /// Largest output; a longer marker line fails the run.
    pub output: usize,
}

/// A guest's stdout or stderr. Each stream handle the guest gets is a clone sharing the
/// state, with a write permit of its own.
#[derive(Clone)]
pub(crate) struct OutputPipe {
    state: Arc<Mutex<PipeState>>,
    sink: EventSink,
    /// What the last `check-write` on this handle granted and writes have not used.
    permit: usize,
}

/// A write past what `check-write` granted: the preview-2 contract says the guest traps.
/// Holding to it is what bounds the events a guest can queue while the caller is behind
/// (without it, raw writes of 4 MiB each queued 640 MB of chunks per run).
#[derive(Debug, thiserror::Error)]
#[error(
    "the app wrote {len} bytes to {stream} at once, more than the {permit} bytes \
     `check-write` allowed (wasi:io/streams)"
)]
pub(crate) struct WriteOverPermit {
    pub stream: &'static str,
    pub len: usize,
    pub permit: usize,
}

/// The marker line as found on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Marker {
    /// The JSON text after the marker prefix.
    Found(Vec<u8>),
    /// The marker line was longer than the output cap.
    TooLarge,
}

/// Whether the current line is the result marker; undecided until enough bytes arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Undecided,
    Marker,
    Plain,
}

struct PipeState {
    role: LineRole,
    caps: PipeCaps,
    /// The current, unfinished line (bounded by the chunk cap, or by the output cap for
    /// the marker line).
    line: Vec<u8>,
    kind: LineKind,
    /// The current marker line outgrew the output cap.
    line_overflowed: bool,
    /// The first `caps.capture` bytes of the stream.
    capture: Vec<u8>,
    /// Every byte the guest wrote, kept or not.
    total: u64,
    /// The last marker line seen.
    marker: Option<Marker>,
    /// The most recent lines (stderr only), to explain a panic.
    recent: VecDeque<String>,
    /// Whether the "capture cap reached" notice was sent.
    truncation_noted: bool,
}

/// What remains of a stream once the guest is done.
#[derive(Debug)]
pub(crate) struct Captured {
    pub capture: Vec<u8>,
    pub total: u64,
    pub marker: Option<Marker>,
    pub recent: Vec<String>,
}

impl OutputPipe {
    pub(crate) fn new(role: LineRole, mut caps: PipeCaps, sink: EventSink) -> Self {
        // A zero chunk cap (an embedder's `Caps`) would split a line into empty pieces
        // forever; one byte per chunk is the least that makes progress.
        caps.chunk = caps.chunk.max(1);
        OutputPipe {
            state: Arc::new(Mutex::new(PipeState {
                role,
                caps,
                line: Vec::new(),
                kind: LineKind::Undecided,
                line_overflowed: false,
                capture: Vec::new(),
                total: 0,
                marker: None,
                recent: VecDeque::new(),
                truncation_noted: false,
            })),
            sink,
            permit: 0,
        }
    }

    pub(crate) fn write_bytes(&self, bytes: &[u8]) {
        lock(&self.state).write(bytes, &self.sink);
    }

    /// Ends the stream: a last line without a newline still counts.
    pub(crate) fn finish(&self) -> Captured {
        let mut state = lock(&self.state);
        if !state.line.is_empty() || state.kind != LineKind::Undecided {
            state.end_line(&self.sink);
        }
        Captured {
            capture: std::mem::take(&mut state.capture),
            total: state.total,
            marker: state.marker.take(),
            recent: state.recent.drain(..).collect(),
        }
    }
}

impl PipeState {
    fn write(&mut self, bytes: &[u8], sink: &EventSink) {
        let room = usize::try_from(self.total)
            .map_or(0, |written| self.caps.capture.saturating_sub(written));
        let kept = room.min(bytes.len());
        self.total += bytes.len() as u64;
        if self.role == LineRole::Chunks {
            self.capture.extend_from_slice(&bytes[..kept]);
        }
        if kept < bytes.len() && !self.truncation_noted {
            self.truncation_noted = true;
            let what = match self.role {
                LineRole::Chunks => "stdout",
                LineRole::Logs(LogStream::Stderr) => "stderr",
                LineRole::Logs(_) => "stdout",
            };
            sink.notice(format!(
                "{what} passed the {} byte capture cap; the rest is dropped{}",
                self.caps.capture,
                if self.role == LineRole::Chunks {
                    " from the capture (lines still stream as chunks)"
                } else {
                    ""
                }
            ));
        }
        // Log lines stop at the capture cap; a command app's stdout keeps streaming as
        // chunks (bounded by the event cap) and keeps being scanned for the marker.
        let scanned = match self.role {
            LineRole::Chunks => bytes,
            LineRole::Logs(_) => &bytes[..kept],
        };
        let mut rest = scanned;
        while let Some(pos) = memchr::memchr(b'\n', rest) {
            self.feed(&rest[..pos], sink);
            self.end_line(sink);
            rest = &rest[pos + 1..];
        }
        self.feed(rest, sink);
    }

    /// Adds bytes of the current line.
    fn feed(&mut self, mut bytes: &[u8], sink: &EventSink) {
        if bytes.is_empty() {
            return;
        }
        if self.kind == LineKind::Undecided {
            let marker = RESULT_MARKER.as_bytes();
            let want = marker.len() - self.line.len();
            let take = want.min(bytes.len());
            self.line.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if !marker.starts_with(&self.line) || self.role != LineRole::Chunks {
                self.kind = LineKind::Plain;
            } else if self.line.len() == marker.len() {
                self.kind = LineKind::Marker;
            }
        }
        match self.kind {
            LineKind::Undecided => {}
            LineKind::Marker => {
                let max = RESULT_MARKER.len() + self.caps.output;
                let room = max.saturating_sub(self.line.len());
                if bytes.len() > room {
                    self.line_overflowed = true;
                }
                self.line.extend_from_slice(&bytes[..room.min(bytes.len())]);
            }
            LineKind::Plain => {
                self.line.extend_from_slice(bytes);
                let mut line = std::mem::take(&mut self.line);
                let emitted = self.emit_chunks(&line, true, sink);
                line.drain(..emitted);
                self.line = line;
            }
        }
    }

    fn end_line(&mut self, sink: &EventSink) {
        let line = std::mem::take(&mut self.line);
        match self.kind {
            LineKind::Marker => {
                self.marker = Some(if self.line_overflowed {
                    Marker::TooLarge
                } else {
                    Marker::Found(line[RESULT_MARKER.len()..].to_vec())
                });
            }
            LineKind::Undecided | LineKind::Plain => {
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                // An undecided line (a prefix of the marker) was never split, and can be
                // longer than a small chunk cap.
                let emitted = self.emit_chunks(line, false, sink);
                self.emit_line(&line[emitted..], sink);
            }
        }
        self.kind = LineKind::Undecided;
        self.line_overflowed = false;
    }

    /// Emits chunk-cap pieces from the front of `line` until at most a chunk is left and
    /// returns how many bytes went out. With `hold_cr`, a trailing `\r` that may start a
    /// `\r\n` ending is held back too, so a line exactly a chunk long does not end in an
    /// extra, empty chunk. One pass over the line, however small the cap.
    fn emit_chunks(&mut self, line: &[u8], hold_cr: bool, sink: &EventSink) -> usize {
        let chunk = self.caps.chunk;
        let mut rest = line;
        while rest.len() > chunk + usize::from(hold_cr && rest.ends_with(b"\r")) {
            let cut = utf8_boundary(rest, chunk);
            self.emit_line(&rest[..cut], sink);
            rest = &rest[cut..];
        }
        line.len() - rest.len()
    }

    fn emit_line(&mut self, line: &[u8], sink: &EventSink) {
        match self.role {
            LineRole::Chunks => {
                sink.push_with(line.len(), || {
                    Event::text_chunk(&String::from_utf8_lossy(line))
                });
            }
            LineRole::Logs(stream) => {
                let text = String::from_utf8_lossy(line);
                if stream == LogStream::Stderr {
                    if self.recent.len() == RECENT_STDERR_LINES {
                        self.recent.pop_front();
                    }
                    let cut = utf8_boundary(text.as_bytes(), RECENT_LINE_BYTES);
                    self.recent.push_back(text[..cut].to_owned());
                }
                sink.push_with(text.len(), || Event::Log {
                    stream,
                    level: None,
                    line: text.into_owned(),
                });
            }
        }
    }
}

/// The largest index `<= max` that does not split a UTF-8 sequence (or `max` itself when
/// the bytes there are not UTF-8 anyway).
pub(crate) fn utf8_boundary(bytes: &[u8], max: usize) -> usize {
    if bytes.len() <= max {
        return bytes.len();
    }
    // A UTF-8 sequence is at most 4 bytes: step back over continuation bytes.
    (max.saturating_sub(3)..=max)
        .rev()
        .find(|&i| i == 0 || (bytes[i] & 0b1100_0000) != 0b1000_0000)
        .filter(|&i| i > 0)
        .unwrap_or(max)
}

impl IsTerminal for OutputPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(OutputPipe {
            permit: 0,
            ..self.clone()
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for OutputPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if bytes.len() > self.permit {
            let stream = match lock(&self.state).role {
                LineRole::Logs(LogStream::Stderr) => "stderr",
                LineRole::Chunks | LineRole::Logs(_) => "stdout",
            };
            return Err(StreamError::Trap(wasmtime::Error::new(WriteOverPermit {
                stream,
                len: bytes.len(),
                permit: self.permit,
            })));
        }
        self.permit -= bytes.len();
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // No permit while events wait for the caller: `ready` then waits for room.
        self.permit = if self.sink.is_backlogged() {
            0
        } else {
            WRITE_PERMIT
        };
        Ok(self.permit)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputPipe {
    async fn ready(&mut self) {
        self.sink.flush().await;
    }
}

/// Only WASI preview 3 writes through this; preview 2 goes through [`OutputStream`]. It
/// accepts every write at once: the event cap still bounds what is queued.
impl tokio::io::AsyncWrite for OutputPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> PipeCaps {
        PipeCaps {
            capture: 1024,
            chunk: 16,
            output: 64,
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Event>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(event) = rx.try_recv() {
            out.push(serde_json::to_string(&event).unwrap());
        }
        out
    }

    #[test]
    fn writes_stay_within_what_check_write_granted() {
        let (tx, _rx) = mpsc::channel(100);
        // One long line, held until its newline: no event fills the channel.
        let caps = PipeCaps {
            chunk: 1 << 20,
            capture: 1 << 20,
            ..caps()
        };
        let pipe = OutputPipe::new(LineRole::Chunks, caps, EventSink::new(Some(tx), 100));
        // Each handle starts with no permit.
        let mut stream = pipe.p2_stream();
        assert!(matches!(
            stream.write(Bytes::from_static(b"x")),
            Err(StreamError::Trap(_))
        ));
        assert_eq!(stream.check_write().unwrap(), WRITE_PERMIT);
        stream
            .write(Bytes::from(vec![b'x'; WRITE_PERMIT - 1]))
            .unwrap();
        stream.write(Bytes::from_static(b"x")).unwrap();
        let Err(StreamError::Trap(e)) = stream.write(Bytes::from_static(b"x")) else {
            panic!("a write past the permit must trap");
        };
        assert!(e.downcast_ref::<WriteOverPermit>().is_some(), "{e}");
        assert_eq!(stream.check_write().unwrap(), WRITE_PERMIT);
        stream.write(Bytes::from_static(b"\n")).unwrap();
        assert_eq!(pipe.finish().total, WRITE_PERMIT as u64 + 1);
    }

    #[test]
    fn stdout_lines_become_chunks_and_the_marker_becomes_the_output() {
        let (tx, mut rx) = mpsc::channel(100);
        let pipe = OutputPipe::new(LineRole::Chunks, caps(), EventSink::new(Some(tx), 100));
        let writes: [&[u8]; 3] = [b"one\ntw", b"o\r\n__FLOOM_RES", b"ULT__{\"a\":1}\nlast"];
        for bytes in writes {
            pipe.write_bytes(bytes);
        }
        let captured = pipe.finish();
        assert_eq!(
            drain(&mut rx),
            [
                r#"{"type":"chunk","data":"one"}"#,
                r#"{"type":"chunk","data":"two"}"#,
                r#"{"type":"chunk","data":"last"}"#,
            ]
        );
        assert_eq!(captured.marker, Some(Marker::Found(b"{\"a\":1}".to_vec())));
        assert_eq!(
            captured.total,
            writes.iter().map(|w| w.len() as u64).sum::<u64>()
        );
    }

    #[test]
    fn long_lines_are_split_at_the_chunk_cap_and_long_markers_overflow() {
        let (tx, mut rx) = mpsc::channel(100);
        let pipe = OutputPipe::new(LineRole::Chunks, caps(), EventSink::new(Some(tx), 100));
        pipe.write_bytes(&[b'x'; 40]);
        pipe.write_bytes(b"\n__FLOOM_RESULT__");
        pipe.write_bytes(&[b'1'; 100]);
        let captured = pipe.finish();
        let events = drain(&mut rx);
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(events[0].contains(&"x".repeat(16)));
        assert!(events[2].contains(r#""data":"xxxxxxxx""#));
        assert_eq!(captured.marker, Some(Marker::TooLarge));
    }

    #[test]
    fn every_line_respects_the_chunk_cap() {
        // Found by the `command_output` fuzz target (fuzz/regressions/command_output/).
        let (tx, mut rx) = mpsc::channel(100);
        let caps = PipeCaps { chunk: 4, ..caps() };
        let pipe = OutputPipe::new(LineRole::Chunks, caps, EventSink::new(Some(tx), 100));
        // A marker prefix that never became the marker; a CRLF line exactly a chunk long.
        pipe.write_bytes(b"__FLOOM\nabcd\r\n");
        pipe.finish();
        let chunk = |data: &str| format!(r#"{{"type":"chunk","data":"{data}"}}"#);
        assert_eq!(drain(&mut rx), [chunk("__FL"), chunk("OOM"), chunk("abcd")]);

        // A zero cap (from an embedder's `Caps`) means one byte per chunk, not a hang.
        let (tx, mut rx) = mpsc::channel(100);
        let caps = PipeCaps { chunk: 0, ..caps };
        let pipe = OutputPipe::new(LineRole::Chunks, caps, EventSink::new(Some(tx), 100));
        pipe.write_bytes(b"ab\n");
        pipe.finish();
        assert_eq!(drain(&mut rx), [chunk("a"), chunk("b")]);
    }

    #[test]
    fn the_event_cap_drops_the_rest_with_one_notice() {
        let (tx, mut rx) = mpsc::channel(100);
        let pipe = OutputPipe::new(
            LineRole::Logs(LogStream::Stderr),
            caps(),
            EventSink::new(Some(tx), 2),
        );
        pipe.write_bytes(b"a\nb\nc\nd\n");
        let captured = pipe.finish();
        let events = drain(&mut rx);
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(events[2].contains("event cap of 2"));
        assert_eq!(captured.recent, ["a", "b", "c", "d"]);
    }

    #[test]
    fn log_streams_stop_at_the_capture_cap() {
        let (tx, mut rx) = mpsc::channel(100);
        let caps = PipeCaps {
            capture: 6,
            ..caps()
        };
        let pipe = OutputPipe::new(
            LineRole::Logs(LogStream::Stderr),
            caps,
            EventSink::new(Some(tx), 100),
        );
        pipe.write_bytes(b"abc\ndef\nghi\n");
        let captured = pipe.finish();
        let events = drain(&mut rx);
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(events[0].contains("capture cap"));
        assert!(events[1].contains(r#""line":"abc""#));
        assert!(events[2].contains(r#""line":"de""#));
        assert_eq!(captured.total, 12);
    }

    #[tokio::test]
    async fn a_full_channel_backlogs_and_flush_delivers_in_order() {
        let (tx, mut rx) = mpsc::channel(1);
        let sink = EventSink::new(Some(tx), 100);
        let pipe = OutputPipe::new(LineRole::Chunks, caps(), sink.clone());
        pipe.write_bytes(b"1\n2\n3\n");
        assert!(sink.is_backlogged());
        let reader = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(event) = rx.recv().await {
                seen.push(serde_json::to_string(&event).unwrap());
            }
            seen
        });
        sink.flush().await;
        assert!(!sink.is_backlogged());
        drop(pipe);
        drop(sink);
        let seen = reader.await.unwrap();
        assert_eq!(seen.len(), 3);
        assert!(seen[2].contains("\"3\""));
    }

    #[test]
    fn utf8_boundaries() {
        let s = "aé€".as_bytes(); // 1 + 2 + 3 bytes
        assert_eq!(utf8_boundary(s, 2), 1);
        assert_eq!(utf8_boundary(s, 3), 3);
        assert_eq!(utf8_boundary(s, 5), 3);
        assert_eq!(utf8_boundary(s, 6), 6);
    }
}
