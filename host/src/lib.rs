//! The `floom` binary's library: the server (HTTP API, SQLite store, run queue) and the
//! command line.
//!
//! How a run flows: an API handler validates the request and has the [`scheduler`] write
//! the execution to the [`store`] before answering; the scheduler runs it on the guest
//! runtime through [`floom_runtime`], numbering its events and handing them to the store
//! in batches; the store publishes committed events to [`live`] subscribers, and
//! [`follow`] serves SSE and `?wait=true` from the store and the live channel.

pub mod api;
pub mod approvals;
pub mod artifacts;
pub mod blobs;
pub mod cli;
pub mod cluster;
pub mod components;
pub mod crypto;
pub mod events;
pub mod examples;
pub mod follow;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod lanes;
pub mod live;
pub mod mcp;
pub mod metrics;
pub mod notify;
pub mod pages;
pub mod ratelimit;
pub mod registry;
pub mod runs;
pub mod scheduler;
pub mod schedules;
pub mod schema;
pub mod server;
pub mod store;
pub mod sweeper;
pub mod tokens;
