//! Nothing to use: this crate exists for its `Cargo.toml`, which asks the features the
//! test-only crates ask of shared dependencies, so one build serves both of the README's
//! commands.
