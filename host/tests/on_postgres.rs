//! Integration tests of other files again, with each server's store on PostgreSQL (a
//! real server: see `support/postgres.rs`): one behaviour, both stores. The support
//! module knows from this binary's name (`on_postgres`) to start servers that way.

// Not here yet: durability.rs, files.rs and mcp.rs. Under this binary's load on PostgreSQL a run now and
// then fails `sandbox_unavailable` (its folders vanished: the same execution run twice on
// one host, it seems); both pass alone. See the closing note of issue 18.
// Each file brings its own `mod support;`: a copy per file, as in its own binary.
#![allow(clippy::duplicate_mod)]

#[path = "api.rs"]
mod api;
#[path = "approvals.rs"]
mod approvals;
#[path = "notifications.rs"]
mod notifications;
#[path = "operate.rs"]
mod operate;
#[path = "triggers.rs"]
mod triggers;
