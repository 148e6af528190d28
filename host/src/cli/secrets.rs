//! `floom secrets`: set, list and delete an app's secrets.

use std::io::Read;

use serde_json::{Value, json};

use super::apps::path_segment;
use super::client::{Client, Failure, ServerArgs, check, print_json};

/// Manage an app's secrets (needs an admin token that covers the app).
///
/// Values are encrypted at rest, reach a run only when the app's manifest declares the
/// name, and are never shown again. Read the value from stdin so it stays out of your
/// shell history and process list.
///
/// Examples:
///
///   printf %s "$OPENAI_API_KEY" | floom secrets set my-app OPENAI_API_KEY --value-stdin
///
///   floom secrets list my-app
///
///   floom secrets delete my-app OPENAI_API_KEY
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct SecretsArgs {
    #[command(subcommand)]
    command: SecretsCommand,

    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Subcommand)]
enum SecretsCommand {
    /// Set a secret's value.
    #[command(
        after_help = "Example:\n  floom secrets set webhook-signer SIGNING_KEY --value-stdin < key.txt"
    )]
    Set {
        /// The app's slug.
        slug: String,
        /// The secret's name, as the manifest declares it.
        name: String,
        /// Read the value from stdin (a single trailing newline is dropped).
        #[arg(long, required = true)]
        value_stdin: bool,
    },
    /// List an app's secret names (never values).
    #[command(after_help = "Example:\n  floom secrets list webhook-signer")]
    List {
        /// The app's slug.
        slug: String,
    },
    /// Delete a secret.
    #[command(after_help = "Example:\n  floom secrets delete webhook-signer SIGNING_KEY")]
    Delete {
        /// The app's slug.
        slug: String,
        /// The secret's name.
        name: String,
    },
}

/// Runs `floom secrets`.
pub async fn run(args: SecretsArgs) -> Result<(), Failure> {
    let client = Client::new(&args.server)?;
    match args.command {
        SecretsCommand::Set { slug, name, .. } => {
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .map_err(|e| Failure::refused(format!("cannot read the value from stdin: {e}")))?;
            let value = value.strip_suffix('\n').unwrap_or(&value);
            let value = value.strip_suffix('\r').unwrap_or(value);
            if value.is_empty() {
                return Err(Failure::refused("the value on stdin is empty"));
            }
            let path = format!(
                "/api/apps/{}/secrets/{}",
                path_segment(&slug),
                path_segment(&name)
            );
            let response = client
                .request(reqwest::Method::PUT, &path)
                .json(&json!({ "value": value }))
                .send()
                .await?;
            check(response).await?;
            println!("set {name} for {slug}");
        }
        SecretsCommand::List { slug } => {
            let secrets: Value = client
                .json(client.request(
                    reqwest::Method::GET,
                    &format!("/api/apps/{}/secrets", path_segment(&slug)),
                ))
                .await?;
            print_json(&secrets["data"]);
        }
        SecretsCommand::Delete { slug, name } => {
            let path = format!(
                "/api/apps/{}/secrets/{}",
                path_segment(&slug),
                path_segment(&name)
            );
            check(
                client
                    .request(reqwest::Method::DELETE, &path)
                    .send()
                    .await?,
            )
            .await?;
            println!("deleted {name} from {slug}");
        }
    }
    Ok(())
}
