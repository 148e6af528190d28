//! `floom webhooks`: subscribe URLs to an app's execution events, list and remove
//! subscriptions, read their delivery attempts and the app's run-webhook key.

use serde_json::{Value, json};

use super::apps::path_segment;
use super::client::{Client, Failure, ServerArgs, check, print_json};

/// Send an app's execution events to other systems (needs an admin token).
///
/// Each delivery is a POST of the execution's envelope, signed the Standard Webhooks
/// way (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the subscription's
/// key (`whsec_...`, shown once), and retried with backoff for 24 h until a 2xx; a
/// `410 Gone` answer disables the subscription.
///
/// Examples:
///
///   floom webhooks create hello --url https://example.org/hook --event execution.failed
///
///   floom webhooks list hello
///
///   floom webhooks deliveries hello whk_0192...
///
///   floom webhooks secret hello        # the key of runs' own "webhook" URLs
///
///   floom webhooks delete hello whk_0192...
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    command: WebhooksCommand,

    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Subcommand)]
enum WebhooksCommand {
    /// Subscribe a URL; prints its signing key (shown once).
    #[command(
        after_help = "Example:\n  floom webhooks create hello --url https://example.org/hook --event execution.succeeded --event execution.failed"
    )]
    Create {
        /// The app's slug.
        slug: String,
        /// Where deliveries go (http or https).
        #[arg(long)]
        url: String,
        /// An event to receive, repeatable (default: all): execution.succeeded,
        /// execution.failed, execution.timed_out, execution.cancelled,
        /// execution.awaiting_approval.
        #[arg(long = "event", value_name = "EVENT")]
        events: Vec<String>,
    },
    /// List an app's subscriptions.
    #[command(after_help = "Example:\n  floom webhooks list hello")]
    List {
        /// The app's slug.
        slug: String,
    },
    /// Remove a subscription.
    #[command(after_help = "Example:\n  floom webhooks delete hello whk_0192...")]
    Delete {
        /// The app's slug.
        slug: String,
        /// The subscription (whk_...).
        id: String,
    },
    /// List a subscription's deliveries, newest first, with every attempt (time, HTTP
    /// status or error, latency).
    #[command(after_help = "Example:\n  floom webhooks deliveries hello whk_0192... --limit 10")]
    Deliveries {
        /// The app's slug.
        slug: String,
        /// The subscription (whk_...).
        id: String,
        /// How many (1 to 200).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Continue from a previous page's next_cursor.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Print the app's run-webhook key: what deliveries to a run's own "webhook" URL are
    /// signed with (made on first use).
    #[command(after_help = "Example:\n  floom webhooks secret hello")]
    Secret {
        /// The app's slug.
        slug: String,
    },
}

/// Runs `floom webhooks`.
pub async fn run(args: WebhooksArgs) -> Result<(), Failure> {
    let client = Client::new(&args.server)?;
    let base = |slug: &str| format!("/api/apps/{}/webhooks", path_segment(slug));
    match args.command {
        WebhooksCommand::Create { slug, url, events } => {
            let body = json!({ "url": url, "events": (!events.is_empty()).then_some(events) });
            let subscription: Value = client
                .json(
                    client
                        .request(reqwest::Method::POST, &base(&slug))
                        .json(&body),
                )
                .await?;
            println!("{}", subscription["secret"].as_str().unwrap_or_default());
            eprintln!(
                "subscribed {} ({}); this is the only time its key is shown",
                subscription["id"].as_str().unwrap_or_default(),
                subscription["url"].as_str().unwrap_or_default()
            );
        }
        WebhooksCommand::List { slug } => {
            let subscriptions: Value = client
                .json(client.request(reqwest::Method::GET, &base(&slug)))
                .await?;
            print_json(&subscriptions["data"]);
        }
        WebhooksCommand::Delete { slug, id } => {
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
        WebhooksCommand::Deliveries {
            slug,
            id,
            limit,
            cursor,
        } => {
            let path = format!("{}/{}/deliveries", base(&slug), path_segment(&id));
            let mut query = vec![("limit", limit.to_string())];
            query.extend(cursor.map(|c| ("cursor", c)));
            let page: Value = client
                .json(client.request(reqwest::Method::GET, &path).query(&query))
                .await?;
            print_json(&page);
        }
        WebhooksCommand::Secret { slug } => {
            let secret: Value = client
                .json(client.request(reqwest::Method::GET, &format!("{}/secret", base(&slug))))
                .await?;
            println!("{}", secret["secret"].as_str().unwrap_or_default());
        }
    }
    Ok(())
}
