//! `floom db migrate`: brings a PostgreSQL database's schema up to date without starting
//! a server (a deployment's step before rolling new hosts out; `floom serve --database`
//! does the same at start, so it is optional).

use crate::cli::client::Failure;

/// Manage the shared PostgreSQL database of several hosts.
///
///   floom db migrate --database postgres://floom:secret@db.internal/floom
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct DbArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DbCommand,
}

/// The `db` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Apply the migrations this binary has that the database has not had yet (under an
    /// advisory lock, so hosts starting meanwhile wait), then print its version.
    Migrate {
        /// The database (postgres://user:password@host/db).
        #[arg(long, env = "FLOOM_DATABASE_URL", value_name = "URL")]
        database: String,
    },
}

/// Runs `floom db ...`.
pub async fn run(args: DbArgs) -> Result<(), Failure> {
    match args.command {
        DbCommand::Migrate { database } => {
            let version = crate::store::migrate_postgres(&database)
                .await
                .map_err(|e| Failure {
                    message: format!("{e:#}"),
                    code: 1,
                })?;
            println!("the database schema is at version {version}");
            Ok(())
        }
    }
}
