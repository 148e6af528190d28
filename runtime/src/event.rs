//! What a running app streams to its caller while it runs.

use serde::Serialize;
use serde_json::value::RawValue;

/// One event streamed out of a running execution, in the order the guest produced it.
///
/// The runtime only produces the events that come from inside the sandbox; the caller
/// (the server's scheduler, or `floom exec`) adds `start` and the terminal event around
/// them.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A streamed piece of the result: what an SDK app passed to `emit`, or one stdout
    /// line of a command app (as a JSON string).
    Chunk {
        /// The chunk itself, always valid JSON.
        data: Box<RawValue>,
    },
    /// One log line.
    Log {
        /// Where the line came from.
        stream: LogStream,
        /// Severity, for lines that carry one (SDK `log` calls and host notices).
        #[serde(skip_serializing_if = "Option::is_none")]
        level: Option<Level>,
        /// The line, without its trailing newline.
        line: String,
    },
}

/// The origin of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// The guest's stdout (for SDK apps; a command app's stdout lines are chunks).
    Stdout,
    /// The guest's stderr.
    Stderr,
    /// The SDK's `log` call.
    App,
    /// A notice from the host about this run, such as a cap being reached.
    Host,
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the run survived.
    Warn,
    /// A failure.
    Error,
}

impl Event {
    /// A log line from the host itself.
    pub(crate) fn host_notice(line: String) -> Self {
        Event::Log {
            stream: LogStream::Host,
            level: Some(Level::Warn),
            line,
        }
    }

    /// A chunk holding `text` as a JSON string.
    pub(crate) fn text_chunk(text: &str) -> Self {
        Event::Chunk {
            data: json_string(text),
        }
    }
}

// Every string a guest controls is cut (`crate::text::cut_in_place`) where it enters
// the host, so nothing downstream (the store, the API, lists) holds more.

/// Longest app-chosen error code kept (an `app_error`'s `app_code`), in bytes.
pub(crate) const MAX_ERROR_CODE: usize = 128;
/// Longest error message kept, in bytes: an app's own message, a trap's, any other.
pub(crate) const MAX_ERROR_MESSAGE: usize = 16 << 10;
/// Longest host notice, in bytes (notices can quote what a guest asked for).
pub(crate) const MAX_NOTICE: usize = 4 << 10;

/// `text` encoded as a JSON string.
pub(crate) fn json_string(text: &str) -> Box<RawValue> {
    let encoded = serde_json::to_string(text).expect("a str always serializes");
    RawValue::from_string(encoded).expect("serde_json output is valid JSON")
}
