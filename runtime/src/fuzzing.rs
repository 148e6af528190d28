//! Entry points for the fuzz targets in `fuzz/` and for the regression tests that replay
//! what they found (`runtime/tests/fuzz_regressions.rs`), so both exercise the same code.
//! Not part of the API. Every function takes arbitrary bytes and panics when an
//! invariant breaks: that is how the fuzzer notices.

use tokio::sync::mpsc;

use crate::event::{Event, LogStream};
use crate::manifest::{MAX_TIMEOUT, Manifest, ManifestError, is_slug};
use crate::outcome::{Outcome, Status};
use crate::output::{Captured, EventSink, LineRole, Marker, OutputPipe, PipeCaps, utf8_boundary};
use crate::{RESULT_MARKER, sandbox};

/// Parses and validates `data` (when it is UTF-8) as a `floom.toml`, then reads the
/// validated manifest the way the runtime does.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let manifest = match Manifest::parse(text) {
        Ok(manifest) => manifest,
        Err(ManifestError::Parse(message)) => {
            assert!(!message.is_empty(), "a parse error must say something");
            return;
        }
        Err(other) => panic!("parse returned {other:?}"),
    };
    match manifest.validate() {
        Ok(()) => {}
        Err(ManifestError::Invalid(problems)) => {
            assert!(
                !problems.is_empty(),
                "an invalid manifest must name a problem"
            );
            return;
        }
        Err(other) => panic!("validate returned {other:?}"),
    }
    assert!(is_slug(&manifest.slug));
    for max_memory_mb in [1, 1024, u64::MAX] {
        let limits = manifest.limits(max_memory_mb);
        assert!(!limits.timeout.is_zero() && limits.timeout <= MAX_TIMEOUT);
        assert!(limits.memory_bytes <= max_memory_mb.saturating_mul(1 << 20));
        assert!(limits.memory_bytes > 0);
    }
    let mut actions = 0;
    for (name, action) in manifest.actions() {
        actions += 1;
        assert_eq!(manifest.action(name), Some(action));
    }
    assert!(actions > 0, "every app has at least one action");
}

/// Header bytes of a [`command_output`] input: the caps, then the number of splits.
const HEADER: usize = 5;

/// Feeds a guest's output stream through the output pipe: as a command app's stdout
/// (chunks, the marker and the output rules) and as stderr (log lines).
///
/// `data` is `[capture, chunk, output, events, splits, len_1 .. len_splits, stream..]`:
/// four bytes choose small caps (so every cap is reached with small inputs), then up to
/// 7 write lengths split the rest, the stream, into writes. The stream is also written
/// whole and one byte at a time: what comes out must not depend on how the guest split
/// its writes, and must match a plain model of the SPEC's rules.
pub fn command_output(data: &[u8]) {
    let Some((header, rest)) = data.split_first_chunk::<HEADER>() else {
        return;
    };
    let [capture, chunk, output, events, splits] = *header;
    let caps = PipeCaps {
        capture: usize::from(capture) * 4,
        chunk: usize::from(chunk % 64),
        output: usize::from(output),
    };
    let event_cap = u64::from(events % 32);
    let splits = usize::from(splits % 8).min(rest.len());
    let (lengths, stream) = rest.split_at(splits);

    let mut writes = Vec::new();
    let mut left = stream;
    for &len in lengths {
        let (write, tail) = left.split_at(usize::from(len).min(left.len()));
        writes.push(write);
        left = tail;
    }
    writes.push(left);
    let bytewise: Vec<&[u8]> = stream.chunks(1).collect();

    for role in [LineRole::Chunks, LineRole::Logs(LogStream::Stderr)] {
        let whole = pipe_run(role, caps, event_cap, &[stream]);
        let chosen = pipe_run(role, caps, event_cap, &writes);
        assert_eq!(
            chosen, whole,
            "{role:?}: split {writes:?} differs from one write"
        );
        let bytewise = pipe_run(role, caps, event_cap, &bytewise);
        assert_eq!(
            bytewise, whole,
            "{role:?}: byte-by-byte writes differ from one write"
        );
        check(role, caps, event_cap, stream, &whole);
    }
}

/// Checks one pass against the model and the caps.
fn check(role: LineRole, caps: PipeCaps, event_cap: u64, stream: &[u8], run: &PipeRun) {
    assert_eq!(run.total, stream.len() as u64);
    // Notices: at most one for the event cap and one for the capture cap.
    assert!(run.notices.len() <= 2, "{:?}", run.notices);
    let kept = stream.len().min(caps.capture);
    let (lines, marker) = match role {
        // A command app's stdout is scanned whole: lines past the capture cap still
        // stream as chunks, and the marker is found anywhere.
        LineRole::Chunks => model(stream, caps, true),
        // Log streams stop at the capture cap.
        LineRole::Logs(_) => model(&stream[..kept], caps, false),
    };
    let expected: Vec<String> = lines.iter().take(event_cap as usize).cloned().collect();
    assert_eq!(run.lines, expected, "{role:?}: lines differ from the model");
    assert_eq!(
        run.marker, marker,
        "{role:?}: the marker differs from the model"
    );

    let LineRole::Chunks = role else {
        // Stderr keeps its last lines, whatever the event cap, to explain a panic.
        let recent = &lines[lines.len().saturating_sub(8)..];
        assert_eq!(
            run.recent, recent,
            "the recent stderr lines differ from the model"
        );
        assert!(run.capture.is_empty(), "only stdout is captured");
        return;
    };
    assert_eq!(run.capture, &stream[..kept]);
    let (status, output, error) = run.outcome.as_ref().expect("stdout has an outcome");
    match status {
        Status::Succeeded => {
            let output = output.as_deref().expect("a success has an output");
            // JSON by the grammar, as `RawValue` checks it everywhere downstream: numbers
            // out of `f64` range such as `1e999` are valid JSON and stay as written.
            serde_json::from_str::<&serde_json::value::RawValue>(output)
                .expect("the output is JSON");
            // The output is at most the cap, grown by JSON escaping (`\u0000` is six
            // bytes for one) when stdout is not JSON and becomes a string; `null` for
            // an empty stdout.
            assert!(
                output == "null" || output.len() <= 6 * caps.output + 2,
                "{} bytes",
                output.len()
            );
        }
        Status::Failed => assert!(error.is_some()),
        other => panic!("a command app's output cannot end as {other}"),
    }
}

/// What one pass of a stream through the pipe produced, comparable across splits.
#[derive(Debug, PartialEq)]
struct PipeRun {
    /// The chunks' or log lines' texts, in order.
    lines: Vec<String>,
    /// Host notices, sorted: where they fall between lines depends on the writes.
    notices: Vec<String>,
    capture: Vec<u8>,
    total: u64,
    marker: Option<Marker>,
    recent: Vec<String>,
    /// For stdout: the command app's status, output and error.
    outcome: Option<(Status, Option<String>, Option<String>)>,
}

fn pipe_run(role: LineRole, caps: PipeCaps, event_cap: u64, writes: &[&[u8]]) -> PipeRun {
    // Room for every event the cap lets through plus the notices: nothing waits.
    let (tx, mut rx) = mpsc::channel(64);
    let pipe = OutputPipe::new(role, caps, EventSink::new(Some(tx), event_cap));
    for write in writes {
        pipe.write_bytes(write);
    }
    let captured: Captured = pipe.finish();
    drop(pipe);
    let mut lines = Vec::new();
    let mut notices = Vec::new();
    while let Ok(event) = rx.try_recv() {
        let text: String = match (role, event) {
            (
                _,
                Event::Log {
                    stream: LogStream::Host,
                    line,
                    ..
                },
            ) => {
                notices.push(line);
                continue;
            }
            (LineRole::Chunks, Event::Chunk { data }) => {
                serde_json::from_str(data.get()).expect("a chunk is a JSON string")
            }
            (LineRole::Logs(want), Event::Log { stream, line, .. }) if stream == want => line,
            (role, other) => panic!("{role:?} made {other:?}"),
        };
        assert!(
            text.chars().count() <= caps.chunk.max(1),
            "{role:?}: a line of {} chars is over the {} byte chunk cap",
            text.chars().count(),
            caps.chunk
        );
        lines.push(text);
    }
    assert!(lines.len() as u64 <= event_cap, "{} lines", lines.len());
    notices.sort();
    let outcome = (role == LineRole::Chunks).then(|| {
        let outcome: Outcome = sandbox::command_output(&captured, caps.output);
        (
            outcome.status,
            outcome.output.map(|o| o.get().to_owned()),
            outcome.error.map(|e| format!("{}: {}", e.code, e.message)),
        )
    });
    PipeRun {
        lines,
        notices,
        capture: captured.capture,
        total: captured.total,
        marker: captured.marker,
        recent: captured.recent,
        outcome,
    }
}

/// The SPEC's rules for an output stream, written plainly: each line (a last one without
/// a newline too) is a chunk or log line without its `\r\n` or `\n`, split at the chunk
/// cap on a UTF-8 boundary. With `markers` (a command app's stdout), a line starting with
/// the marker is the output instead (too large past the output cap); the last one wins.
fn model(stream: &[u8], caps: PipeCaps, markers: bool) -> (Vec<String>, Option<Marker>) {
    let chunk = caps.chunk.max(1);
    let mut lines = Vec::new();
    let mut marker = None;
    let mut raw: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    if raw.last().is_some_and(|last| last.is_empty()) {
        raw.pop();
    }
    for line in raw {
        if markers && let Some(json) = line.strip_prefix(RESULT_MARKER.as_bytes()) {
            marker = Some(if json.len() > caps.output {
                Marker::TooLarge
            } else {
                Marker::Found(json.to_vec())
            });
            continue;
        }
        let mut line = line.strip_suffix(b"\r").unwrap_or(line);
        while line.len() > chunk {
            let cut = utf8_boundary(line, chunk);
            lines.push(String::from_utf8_lossy(&line[..cut]).into_owned());
            line = &line[cut..];
        }
        lines.push(String::from_utf8_lossy(line).into_owned());
    }
    (lines, marker)
}
