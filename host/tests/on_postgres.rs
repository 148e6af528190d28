//! Integration tests of other files again, with each server's store on PostgreSQL (a
//! real server: see `support/postgres.rs`): one behaviour, both stores. The support
//! module knows from this binary's name (`on_postgres`) to start servers that way.

// Each file brings its own `mod support;`: a copy per file, as in its own binary.
#![allow(clippy::duplicate_mod)]

#[path = "api.rs"]
mod api;
#[path = "approvals.rs"]
mod approvals;
#[path = "durability.rs"]
mod durability;
#[path = "files.rs"]
mod files;
#[path = "mcp.rs"]
mod mcp;
#[path = "notifications.rs"]
mod notifications;
#[path = "operate.rs"]
mod operate;
#[path = "triggers.rs"]
mod triggers;
