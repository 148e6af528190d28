//! `floom apps`: list, show, pause, resume, change the visibility of and delete
//! published apps.

use serde_json::Value;

use super::client::{Client, Failure, ServerArgs, check, print_json};

/// List, show, pause, resume, delete and roll back apps.
///
/// Examples:
///
///   floom apps list
///
///   floom apps get meeting-action-items
///
///   floom apps versions hello && floom apps rollback hello 1
///
///   floom apps pause hello && floom apps resume hello
///
///   floom apps set-public hello false
///
///   floom apps delete hello
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct AppsArgs {
    #[command(subcommand)]
    command: AppsCommand,

    #[command(flatten)]
    server: ServerArgs,
}

/// What to do with apps.
#[derive(Debug, clap::Subcommand)]
pub enum AppsCommand {
    /// List the apps you can see (public ones, and private ones your token covers).
    #[command(after_help = "Example:\n  floom apps list --json | jq '.data[].slug'")]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one app: its actions, input schemas and limits.
    #[command(after_help = "Example:\n  floom apps get meeting-action-items | jq .actions")]
    Get {
        /// The app's slug.
        slug: String,
    },
    /// Show an app's version history.
    #[command(after_help = "Example:\n  floom apps versions hello")]
    Versions {
        /// The app's slug.
        slug: String,
    },
    /// Make an earlier version current again. Needs an admin token.
    #[command(after_help = "Example:\n  floom apps rollback hello 3")]
    Rollback {
        /// The app's slug.
        slug: String,
        /// The version to make current.
        version: u64,
    },
    /// Show an app's execution counts, error rate and p50/p95 durations.
    #[command(after_help = "Example:\n  floom apps stats hello")]
    Stats {
        /// The app's slug.
        slug: String,
    },
    /// Pause an app: it refuses new runs (from every surface, schedules and triggers
    /// too) until resumed; its history stays. Needs an admin token.
    #[command(after_help = "Example:\n  floom apps pause hello")]
    Pause {
        /// The app's slug.
        slug: String,
    },
    /// Resume a paused app. Needs an admin token.
    #[command(after_help = "Example:\n  floom apps resume hello")]
    Resume {
        /// The app's slug.
        slug: String,
    },
    /// Make an app public (anyone may run it) or private (a token that covers it is
    /// needed). Holds until a new version is published. Needs an admin token.
    #[command(
        after_help = "Examples:\n  floom apps set-public hello false\n  floom apps set-public hello true"
    )]
    SetPublic {
        /// The app's slug.
        slug: String,
        /// true or false.
        #[arg(action = clap::ArgAction::Set)]
        public: bool,
    },
    /// Delete an app: its secrets, token grants and runs in flight go; its executions
    /// stay readable and its slug is not reused by a new app until purged. Needs the
    /// admin token.
    #[command(
        after_help = "Examples:\n  floom apps delete hello\n  floom apps delete hello --purge   # also its executions and versions; frees the slug"
    )]
    Delete {
        /// The app's slug.
        slug: String,
        /// Also delete its executions, their events and its versions (also of an app
        /// deleted earlier), so the slug can be published anew.
        #[arg(long)]
        purge: bool,
    },
}

/// Runs `floom apps`.
pub async fn run(args: AppsArgs) -> Result<(), Failure> {
    let client = Client::new(&args.server)?;
    match args.command {
        AppsCommand::List { json } => {
            let apps: Value = client
                .json(client.request(reqwest::Method::GET, "/api/apps"))
                .await?;
            if json {
                print_json(&apps);
                return Ok(());
            }
            let list = apps["data"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("no apps yet: floom publish DIR");
            }
            for app in list {
                println!(
                    "{:<28} v{:<4} {:<8} {:<8} {}",
                    app["slug"].as_str().unwrap_or_default(),
                    app["version"],
                    if app["public"].as_bool() == Some(true) {
                        "public"
                    } else {
                        "private"
                    },
                    app["kind"].as_str().unwrap_or_default(),
                    app["description"].as_str().unwrap_or_default(),
                );
            }
        }
        AppsCommand::Get { slug } => {
            let app: Value = client
                .json(client.request(
                    reqwest::Method::GET,
                    &format!("/api/apps/{}", path_segment(&slug)),
                ))
                .await?;
            print_json(&app);
        }
        AppsCommand::Versions { slug } => {
            let versions: Value = client
                .json(client.request(
                    reqwest::Method::GET,
                    &format!("/api/apps/{}/versions", path_segment(&slug)),
                ))
                .await?;
            for version in versions["data"].as_array().cloned().unwrap_or_default() {
                println!(
                    "v{:<4} {} {}  {}",
                    version["version"],
                    if version["current"].as_bool() == Some(true) {
                        "*"
                    } else {
                        " "
                    },
                    version["sha256"]
                        .as_str()
                        .unwrap_or_default()
                        .get(..12)
                        .unwrap_or_default(),
                    version["created_at"].as_str().unwrap_or_default(),
                );
            }
        }
        AppsCommand::Rollback { slug, version } => {
            let app: Value = client
                .json(client.request(
                    reqwest::Method::POST,
                    &format!("/api/apps/{}/rollback/{version}", path_segment(&slug)),
                ))
                .await?;
            println!("{slug} is at version {}", app["version"]);
        }
        AppsCommand::Stats { slug } => {
            let stats: Value = client
                .json(client.request(
                    reqwest::Method::GET,
                    &format!("/api/apps/{}/stats", path_segment(&slug)),
                ))
                .await?;
            print_json(&stats);
        }
        AppsCommand::Pause { slug } => pause(&client, &slug, "pause").await?,
        AppsCommand::Resume { slug } => pause(&client, &slug, "resume").await?,
        AppsCommand::SetPublic { slug, public } => {
            let app: Value = client
                .json(
                    client
                        .request(
                            reqwest::Method::PATCH,
                            &format!("/api/apps/{}", path_segment(&slug)),
                        )
                        .json(&serde_json::json!({ "public": public })),
                )
                .await?;
            let visibility = if app["public"].as_bool() == Some(true) {
                "public"
            } else {
                "private"
            };
            println!("{slug} is {visibility}");
        }
        AppsCommand::Delete { slug, purge } => {
            let response = client
                .request(
                    reqwest::Method::DELETE,
                    &format!("/api/apps/{}", path_segment(&slug)),
                )
                .query(&[("purge", purge)])
                .send()
                .await?;
            check(response).await?;
            println!("{} {slug}", if purge { "purged" } else { "deleted" });
        }
    }
    Ok(())
}

/// Pauses or resumes (`verb`) an app and says where it is.
async fn pause(client: &Client, slug: &str, verb: &str) -> Result<(), Failure> {
    let app: Value = client
        .json(client.request(
            reqwest::Method::POST,
            &format!("/api/apps/{}/{verb}", path_segment(slug)),
        ))
        .await?;
    let state = if app["paused"].as_bool() == Some(true) {
        "paused"
    } else {
        "running"
    };
    println!("{slug} is {state}");
    Ok(())
}

/// Percent-encodes a path segment.
pub fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
