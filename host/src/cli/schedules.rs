//! `floom schedules`: create, list, pause, resume and delete an app's schedules.

use serde_json::{Value, json};

use super::apps::path_segment;
use super::client::{Client, Failure, ServerArgs, check, print_json};

/// Run an app on a cron schedule (needs an admin token).
///
/// A cron expression has 5 fields (minute hour day-of-month month day-of-week), or 6 with
/// leading seconds, and is read in an IANA time zone (default UTC). Each tick starts one
/// run, also across restarts; ticks missed while the server was down run once when it
/// is back.
///
/// Examples:
///
///   floom schedules create hello --cron '0 9 * * MON-FRI' --timezone Europe/Berlin --inputs '{"name": "team"}'
///
///   floom schedules list hello
///
///   floom schedules pause hello sch_0192... && floom schedules resume hello sch_0192...
///
///   floom schedules delete hello sch_0192...
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct SchedulesArgs {
    #[command(subcommand)]
    command: SchedulesCommand,

    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Subcommand)]
enum SchedulesCommand {
    /// Create a schedule.
    #[command(
        after_help = "Example:\n  floom schedules create hello --cron '*/5 * * * *' --inputs '{\"name\": \"cron\"}'"
    )]
    Create {
        /// The app's slug.
        slug: String,
        /// The cron expression: 5 fields, or 6 with leading seconds.
        #[arg(long)]
        cron: String,
        /// The IANA time zone it is read in (default UTC).
        #[arg(long)]
        timezone: Option<String>,
        /// The action (default: run, or the app's only action).
        #[arg(long)]
        action: Option<String>,
        /// The inputs of every run, a JSON object.
        #[arg(long)]
        inputs: Option<String>,
    },
    /// List an app's schedules with their next ticks.
    #[command(after_help = "Example:\n  floom schedules list hello")]
    List {
        /// The app's slug.
        slug: String,
    },
    /// Pause a schedule.
    #[command(after_help = "Example:\n  floom schedules pause hello sch_0192...")]
    Pause {
        /// The app's slug.
        slug: String,
        /// The schedule (sch_...).
        id: String,
    },
    /// Resume a schedule from its next tick (ticks missed while paused do not run).
    #[command(after_help = "Example:\n  floom schedules resume hello sch_0192...")]
    Resume {
        /// The app's slug.
        slug: String,
        /// The schedule (sch_...).
        id: String,
    },
    /// Delete a schedule.
    #[command(after_help = "Example:\n  floom schedules delete hello sch_0192...")]
    Delete {
        /// The app's slug.
        slug: String,
        /// The schedule (sch_...).
        id: String,
    },
}

/// Runs `floom schedules`.
pub async fn run(args: SchedulesArgs) -> Result<(), Failure> {
    let client = Client::new(&args.server)?;
    let base = |slug: &str| format!("/api/apps/{}/schedules", path_segment(slug));
    let one =
        |slug: &str, id: &str, what: &str| format!("{}/{}{what}", base(slug), path_segment(id));
    match args.command {
        SchedulesCommand::Create {
            slug,
            cron,
            timezone,
            action,
            inputs,
        } => {
            let inputs: Option<Value> = inputs
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|e| Failure::refused(format!("--inputs is not JSON: {e}")))?;
            let body =
                json!({ "cron": cron, "timezone": timezone, "action": action, "inputs": inputs });
            let schedule: Value = client
                .json(
                    client
                        .request(reqwest::Method::POST, &base(&slug))
                        .json(&body),
                )
                .await?;
            print_json(&schedule);
        }
        SchedulesCommand::List { slug } => {
            let schedules: Value = client
                .json(client.request(reqwest::Method::GET, &base(&slug)))
                .await?;
            print_json(&schedules["data"]);
        }
        SchedulesCommand::Pause { slug, id } => {
            let schedule: Value = client
                .json(client.request(reqwest::Method::POST, &one(&slug, &id, "/pause")))
                .await?;
            println!(
                "{id}: paused ({})",
                schedule["cron"].as_str().unwrap_or_default()
            );
        }
        SchedulesCommand::Resume { slug, id } => {
            let schedule: Value = client
                .json(client.request(reqwest::Method::POST, &one(&slug, &id, "/resume")))
                .await?;
            println!(
                "{id}: resumed, next tick {}",
                schedule["next_tick"].as_str().unwrap_or("none")
            );
        }
        SchedulesCommand::Delete { slug, id } => {
            let response = client
                .request(reqwest::Method::DELETE, &one(&slug, &id, ""))
                .send()
                .await?;
            check(response).await?;
            println!("deleted {id}");
        }
    }
    Ok(())
}
