//! The `floom` binary's library: the command line (one module per subcommand) and,
//! as the product grows, the server, its store and its scheduler.

pub mod cli;
