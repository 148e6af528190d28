//! `floom tokens`: create, list and revoke agent tokens.

use serde_json::{Value, json};

use super::client::{Client, Failure, ServerArgs, check, print_json};

/// Manage agent tokens (needs an admin token that covers every app).
///
/// A token is shown once, when it is created; only its hash is stored.
///
/// Examples:
///
///   floom tokens create ci-runner --app meeting-action-items --app hello
///
///   floom tokens create deployer --role admin --expires-in-s 86400
///
///   floom tokens list
///
///   floom tokens revoke tok_0192...
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct TokensArgs {
    #[command(subcommand)]
    command: TokensCommand,

    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Subcommand)]
enum TokensCommand {
    /// Create a token and print it (once).
    #[command(after_help = "Example:\n  floom tokens create ci-runner --app hello")]
    Create {
        /// A label for people.
        name: String,
        /// `run` (run and read executions) or `admin` (also publish, delete, secrets).
        #[arg(long, default_value = "run")]
        role: String,
        /// An app the token covers; repeatable. Without any, it covers every app.
        #[arg(long = "app", value_name = "SLUG")]
        apps: Vec<String>,
        /// Seconds until it stops working.
        #[arg(long)]
        expires_in_s: Option<u64>,
    },
    /// List tokens (never their secrets).
    #[command(after_help = "Example:\n  floom tokens list")]
    List,
    /// Revoke a token at once.
    #[command(after_help = "Example:\n  floom tokens revoke tok_0192...")]
    Revoke {
        /// The token's id (tok_...).
        id: String,
    },
}

/// Runs `floom tokens`.
pub async fn run(args: TokensArgs) -> Result<(), Failure> {
    let client = Client::new(&args.server)?;
    match args.command {
        TokensCommand::Create {
            name,
            role,
            apps,
            expires_in_s,
        } => {
            let body = json!({
                "name": name,
                "role": role,
                "apps": (!apps.is_empty()).then_some(apps),
                "expires_in_s": expires_in_s,
            });
            let token: Value = client
                .json(
                    client
                        .request(reqwest::Method::POST, "/api/tokens")
                        .json(&body),
                )
                .await?;
            println!("{}", token["token"].as_str().unwrap_or_default());
            eprintln!(
                "created {} ({}); this is the only time the token is shown",
                token["id"].as_str().unwrap_or_default(),
                token["role"].as_str().unwrap_or_default()
            );
        }
        TokensCommand::List => {
            let tokens: Value = client
                .json(client.request(reqwest::Method::GET, "/api/tokens"))
                .await?;
            print_json(&tokens["data"]);
        }
        TokensCommand::Revoke { id } => {
            let response = client
                .request(
                    reqwest::Method::DELETE,
                    &format!("/api/tokens/{}", super::apps::path_segment(&id)),
                )
                .send()
                .await?;
            check(response).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
