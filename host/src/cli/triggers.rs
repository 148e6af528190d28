//! `floom triggers`: create, list, rotate and delete an app's inbound triggers.

use serde_json::{Value, json};

use super::apps::path_segment;
use super::client::{Client, Failure, ServerArgs, check, print_json};

/// Manage an app's inbound triggers (needs an admin token).
///
/// A trigger is a URL (`/hooks/trg_...`) where another system posts JSON to start a run
/// of one action: the body is the run's inputs. The sender proves itself with the
/// trigger's secret as `?token=`, or signs the body with it (`X-Floom-Signature:
/// sha256=<hex HMAC-SHA256>`, as GitHub does). The secret is shown once, when the
/// trigger is created or rotated.
///
/// Examples:
///
///   floom triggers create word-count --action run
///
///   curl -X POST "$FLOOM_API_URL/hooks/trg_...?token=SECRET" -d '{"text": "hi"}'
///
///   floom triggers list word-count
///
///   floom triggers rotate word-count trg_...
///
///   floom triggers delete word-count trg_...
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct TriggersArgs {
    #[command(subcommand)]
    command: TriggersCommand,

    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Subcommand)]
enum TriggersCommand {
    /// Create a trigger and print its URL and secret (shown once).
    #[command(after_help = "Example:\n  floom triggers create hello --action run")]
    Create {
        /// The app's slug.
        slug: String,
        /// The action it runs (default: run, or the app's only action).
        #[arg(long)]
        action: Option<String>,
    },
    /// List an app's triggers (never their secrets).
    #[command(after_help = "Example:\n  floom triggers list hello")]
    List {
        /// The app's slug.
        slug: String,
    },
    /// Replace a trigger's secret; the old one stops working at once.
    #[command(after_help = "Example:\n  floom triggers rotate hello trg_0192...")]
    Rotate {
        /// The app's slug.
        slug: String,
        /// The trigger (trg_...).
        id: String,
    },
    /// Delete a trigger.
    #[command(after_help = "Example:\n  floom triggers delete hello trg_0192...")]
    Delete {
        /// The app's slug.
        slug: String,
        /// The trigger (trg_...).
        id: String,
    },
}

/// Runs `floom triggers`.
pub async fn run(args: TriggersArgs) -> Result<(), Failure> {
    let client = Client::new(&args.server)?;
    let base = |slug: &str| format!("/api/apps/{}/triggers", path_segment(slug));
    match args.command {
        TriggersCommand::Create { slug, action } => {
            let trigger: Value = client
                .json(
                    client
                        .request(reqwest::Method::POST, &base(&slug))
                        .json(&json!({ "action": action })),
                )
                .await?;
            print_secret(&args.server, &trigger);
        }
        TriggersCommand::List { slug } => {
            let triggers: Value = client
                .json(client.request(reqwest::Method::GET, &base(&slug)))
                .await?;
            print_json(&triggers["data"]);
        }
        TriggersCommand::Rotate { slug, id } => {
            let path = format!("{}/{}/rotate", base(&slug), path_segment(&id));
            let trigger: Value = client
                .json(client.request(reqwest::Method::POST, &path))
                .await?;
            print_secret(&args.server, &trigger);
        }
        TriggersCommand::Delete { slug, id } => {
            let path = format!("{}/{}", base(&slug), path_segment(&id));
            check(
                client
                    .request(reqwest::Method::DELETE, &path)
                    .send()
                    .await?,
            )
            .await?;
            println!("deleted {id}");
        }
    }
    Ok(())
}

/// Prints a trigger's full URL and secret, and says the secret is shown once.
fn print_secret(server: &ServerArgs, trigger: &Value) {
    println!(
        "url:    {}{}",
        server.server.trim_end_matches('/'),
        trigger["url"].as_str().unwrap_or_default()
    );
    println!("secret: {}", trigger["secret"].as_str().unwrap_or_default());
    eprintln!(
        "{} runs {}; this is the only time the secret is shown",
        trigger["id"].as_str().unwrap_or_default(),
        trigger["action"].as_str().unwrap_or_default()
    );
}
