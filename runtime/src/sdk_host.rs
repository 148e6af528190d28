//! The host side of the `floom:app` WIT package: the `host` interface SDK apps import
//! (emit, log, secret), and the typed bindings of the `handler` export.

use serde_json::value::RawValue;

use crate::event::{Event, Level, LogStream};
use crate::outcome::HostCallBudgetExhausted;
use crate::output::{EventSink, Pushed};
use crate::sandbox::RunState;
use crate::text::cut_in_place;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "app",
    imports: { default: async | trappable },
    exports: { default: async },
});

use floom::app::host;

/// What `emit` answers once the execution's event caps are reached.
const OVER_CAP: &str = "chunk dropped: the execution's event cap (count or bytes) was reached";

/// Per-run state behind the `host` interface.
pub(crate) struct HostState {
    pub sink: EventSink,
    /// The declared secrets that have values, by name.
    pub secrets: Vec<(String, String)>,
    pub chunk_cap: usize,
    pub calls: u64,
    pub call_budget: u64,
}

impl HostState {
    /// Counts one host call; past the budget the guest traps.
    fn charge(&mut self) -> wasmtime::Result<()> {
        self.calls += 1;
        if self.calls > self.call_budget {
            return Err(HostCallBudgetExhausted(self.call_budget).into());
        }
        Ok(())
    }
}

impl host::Host for RunState {
    async fn emit(&mut self, chunk: String) -> wasmtime::Result<Result<(), String>> {
        let host = &mut self.host;
        host.charge()?;
        if chunk.len() > host.chunk_cap {
            return Ok(Err(format!(
                "chunk refused: {} bytes is over the {} byte chunk cap",
                chunk.len(),
                host.chunk_cap
            )));
        }
        if host.sink.is_full() {
            // Past the caps: refuse without checking (or copying) the chunk.
            return Ok(Err(OVER_CAP.into()));
        }
        let data = match RawValue::from_string(chunk) {
            Ok(data) => data,
            Err(e) => return Ok(Err(format!("chunk refused: not valid JSON ({e})"))),
        };
        let pushed = host.sink.push(data.get().len(), Event::Chunk { data });
        // Wait here, not in the guest's next write, when the caller is behind.
        host.sink.flush().await;
        Ok(match pushed {
            Pushed::Accepted => Ok(()),
            Pushed::OverCap => Err(OVER_CAP.into()),
        })
    }

    async fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
        let host = &mut self.host;
        host.charge()?;
        let level = match level {
            host::Level::Trace => Level::Trace,
            host::Level::Debug => Level::Debug,
            host::Level::Info => Level::Info,
            host::Level::Warn => Level::Warn,
            host::Level::Error => Level::Error,
        };
        // A log line is bounded like a chunk.
        let mut line = message;
        cut_in_place(&mut line, host.chunk_cap);
        host.sink.push(
            line.len(),
            Event::Log {
                stream: LogStream::App,
                level: Some(level),
                line,
            },
        );
        host.sink.flush().await;
        Ok(())
    }

    async fn secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        let host = &mut self.host;
        host.charge()?;
        Ok(host
            .secrets
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value.clone()))
    }
}
