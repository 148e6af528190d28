//! Write a [Floom](https://github.com/floom) app in Rust.
//!
//! An app is a type implementing [`App`] plus one [`export!`] line. Inputs and outputs
//! are ordinary serde types; [`emit`] streams chunks to the caller while the app runs,
//! [`log!`]-style macros write to the execution's log, and [`secret`] reads a secret
//! the app's manifest declares. Build the crate as a `cdylib` for `wasm32-wasip2`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//! ```
//!
//! Files need nothing from the SDK: an input property with `"format": "binary"` holds
//! the uploaded file's path under `/in/` (read it with `std::fs`), and whatever the app
//! writes under `/out/` with `std::fs` becomes the run's artifacts. A write past the
//! run's artifact budget returns an `std::io::Error` and the run goes on
//! (`examples/csv-report` reads a CSV and writes a report and a chart).
//!
//! ```
//! use floom_sdk::{App, Context, Error};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Input {
//!     name: Option<String>,
//! }
//!
//! #[derive(Serialize)]
//! struct Output {
//!     greeting: String,
//! }
//!
//! struct Hello;
//!
//! impl App for Hello {
//!     type Input = Input;
//!     type Output = Output;
//!
//!     fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
//!         let name = input.name.unwrap_or_else(|| "world".into());
//!         if name.is_empty() {
//!             return Err(Error::invalid_input("name must not be empty"));
//!         }
//!         floom_sdk::info!("greeting {name}");
//!         Ok(Output { greeting: format!("Hello, {name}!") })
//!     }
//! }
//!
//! floom_sdk::export!(Hello);
//! ```
//!
//! An app with several actions reads [`Context::action`] and usually takes
//! `serde_json::Value` (or an untagged enum) as its input. Apps that call other services
//! use [`http`], for the hosts their manifest lists.

use std::fmt;

use serde::Serialize;

pub mod http;
use serde::de::DeserializeOwned;

#[doc(hidden)]
pub mod __private {
    //! The raw `wit-bindgen` output and the glue [`export!`](crate::export) expands to.
    //! Not part of the public API.

    #[allow(missing_docs, unused_qualifications, unsafe_code)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "app",
            pub_export_macro: true,
            export_macro_name: "__export_floom_app",
        });
    }

    use bindings::exports::floom::app::handler::AppError;

    /// Runs `A` for one call of the `handler.run` export.
    pub fn dispatch<A: crate::App>(action: String, input: String) -> Result<String, AppError> {
        let into_wit = |e: crate::Error| AppError {
            code: e.code,
            message: e.message,
        };
        let input: A::Input = serde_json::from_str(&input)
            .map_err(|e| into_wit(crate::Error::invalid_input(e.to_string())))?;
        let ctx = crate::Context { action };
        let output = A::run(&ctx, input).map_err(into_wit)?;
        serde_json::to_string(&output)
            .map_err(|e| into_wit(crate::Error::new("invalid_output", e.to_string())))
    }
}

use __private::bindings::floom::app::host;

/// A Floom app: one entry point for all of its actions.
pub trait App {
    /// The inputs, deserialized from the execution's `inputs` object. A mismatch fails
    /// the run with the app error code `invalid_input` before [`App::run`] is called.
    type Input: DeserializeOwned;
    /// The output, serialized into the execution's `output`.
    type Output: Serialize;

    /// Runs one action.
    fn run(ctx: &Context, input: Self::Input) -> Result<Self::Output, Error>;
}

/// What the host tells an app about the current run.
#[derive(Debug)]
pub struct Context {
    action: String,
}

impl Context {
    /// The action being run (`run` for apps that declare no actions).
    pub fn action(&self) -> &str {
        &self.action
    }
}

/// An error an app returns on purpose. The execution fails with code `app_error`; the
/// code and message chosen here reach the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: String,
    message: String,
}

impl Error {
    /// An error with a machine-readable `code` (such as `invalid_transcript`) and a
    /// human-readable `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The input was well-formed JSON but not acceptable.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new("invalid_input", message)
    }

    /// The machine-readable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Lets `?` turn any standard error into an app error with code `internal`.
impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Self {
        Error::new("internal", e.to_string())
    }
}

/// Streams one chunk to the caller while the app runs (an SSE `chunk` event). The
/// chunk is refused, and an error returned, when it serializes to more than the host's
/// chunk cap (64 KiB by default) or the execution's event cap was reached.
pub fn emit<T: Serialize + ?Sized>(chunk: &T) -> Result<(), Error> {
    let json =
        serde_json::to_string(chunk).map_err(|e| Error::new("invalid_chunk", e.to_string()))?;
    host::emit(&json).map_err(|message| Error::new("chunk_refused", message))
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the app survived.
    Warn,
    /// A failure.
    Error,
}

/// Writes one line to the execution's log. The [`info!`] family of macros format and
/// call this.
pub fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => host::Level::Trace,
        Level::Debug => host::Level::Debug,
        Level::Info => host::Level::Info,
        Level::Warn => host::Level::Warn,
        Level::Error => host::Level::Error,
    };
    host::log(level, message);
}

/// Reads a secret declared in the app's manifest (`secrets = ["NAME"]`). `None` when the
/// name is not declared or no value was set for it.
pub fn secret(name: &str) -> Option<String> {
    host::secret(name)
}

/// Logs a formatted line at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log($crate::Level::Debug, &format!($($arg)*)) };
}

/// Logs a formatted line at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::Level::Info, &format!($($arg)*)) };
}

/// Logs a formatted line at warn level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::Level::Warn, &format!($($arg)*)) };
}

/// Logs a formatted line at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log($crate::Level::Error, &format!($($arg)*)) };
}

/// Exports a type implementing [`App`] as the component's `floom:app/handler`.
#[macro_export]
macro_rules! export {
    ($app:ty) => {
        const _: () = {
            struct FloomExport;

            impl $crate::__private::bindings::exports::floom::app::handler::Guest for FloomExport {
                fn run(
                    action: ::std::string::String,
                    input: ::std::string::String,
                ) -> ::std::result::Result<
                    ::std::string::String,
                    $crate::__private::bindings::exports::floom::app::handler::AppError,
                > {
                    $crate::__private::dispatch::<$app>(action, input)
                }
            }

            $crate::__private::bindings::__export_floom_app!(FloomExport with_types_in $crate::__private::bindings);
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct In {
        n: u32,
    }

    struct Double;

    impl App for Double {
        type Input = In;
        type Output = serde_json::Value;

        fn run(ctx: &Context, input: In) -> Result<Self::Output, Error> {
            if input.n == 0 {
                return Err(Error::new("zero", "n must not be zero"));
            }
            Ok(serde_json::json!({ "action": ctx.action(), "n": input.n * 2 }))
        }
    }

    #[test]
    fn dispatch_round_trips_typed_values() {
        let out = __private::dispatch::<Double>("run".into(), r#"{"n":21}"#.into()).unwrap();
        assert_eq!(out, r#"{"action":"run","n":42}"#);
    }

    #[test]
    fn bad_input_and_app_errors_keep_their_codes() {
        let err = __private::dispatch::<Double>("run".into(), r#"{"m":1}"#.into()).unwrap_err();
        assert_eq!(err.code, "invalid_input");
        assert!(err.message.contains("missing field `n`"), "{}", err.message);
        let err = __private::dispatch::<Double>("run".into(), r#"{"n":0}"#.into()).unwrap_err();
        assert_eq!(
            (err.code.as_str(), err.message.as_str()),
            ("zero", "n must not be zero")
        );
    }

    #[test]
    fn std_errors_convert() {
        let err: Error = "x".parse::<u8>().unwrap_err().into();
        assert_eq!(err.code(), "internal");
    }
}
