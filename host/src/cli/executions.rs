//! `floom executions`: list, show, read the logs of, cancel and export executions, and
//! list or download their artifacts.

use serde_json::Value;

use super::client::{Client, Failure, ServerArgs, check, print_json};

/// Inspect and cancel executions.
///
/// Reading an execution needs a token that covers its app, or its view token.
///
/// Examples:
///
///   floom executions list --app hello --status failed
///
///   floom executions get exec_0192... --view-token 5c3e...
///
///   floom executions logs exec_0192...
///
///   floom executions cancel exec_0192...
///
///   floom executions artifacts exec_0192... --download ./out
///
///   floom executions export --app hello --since 2026-12-01 > hello.csv
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ExecutionsArgs {
    #[command(subcommand)]
    command: ExecutionsCommand,

    /// The execution's view token, instead of a token that covers its app.
    #[arg(long, global = true)]
    pub view_token: Option<String>,

    #[command(flatten)]
    server: ServerArgs,
}

/// What to do with executions.
#[derive(Debug, clap::Subcommand)]
pub enum ExecutionsCommand {
    /// List executions, newest first. Needs the admin token.
    #[command(
        after_help = "Example:\n  floom executions list --app hello --status failed --limit 50"
    )]
    List {
        /// Only this app's.
        #[arg(long)]
        app: Option<String>,
        /// Only this status (queued, running, awaiting_approval, succeeded, failed,
        /// timed_out, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Only those started this way (api, cli, mcp, webhook, ui, schedule).
        #[arg(long)]
        trigger_source: Option<String>,
        /// How many (1 to 200).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Continue from a previous page's next_cursor.
        #[arg(long)]
        cursor: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one execution: status, output, error, timings.
    #[command(after_help = "Example:\n  floom executions get exec_0192... --view-token 5c3e...")]
    Get {
        /// The execution id.
        id: String,
    },
    /// Print an execution's log lines (JSON lines).
    #[command(after_help = "Example:\n  floom executions logs exec_0192... | jq -r .line")]
    Logs {
        /// The execution id.
        id: String,
    },
    /// List an execution's artifacts (name, size, type), or download them all into a
    /// folder with --download.
    #[command(after_help = "Example:\n  floom executions artifacts exec_0192... --download ./out")]
    Artifacts {
        /// The execution id.
        id: String,
        /// Save every artifact under this folder (by its name, folders included).
        #[arg(long, value_name = "DIR")]
        download: Option<std::path::PathBuf>,
    },
    /// Cancel a queued or running execution.
    #[command(after_help = "Example:\n  floom executions cancel exec_0192...")]
    Cancel {
        /// The execution id.
        id: String,
    },
    /// Export executions as CSV (RFC 4180, a header row), newest first, to stdout or a
    /// file. Needs a token.
    #[command(
        after_help = "Example:\n  floom executions export --app hello --status failed --since 2026-12-01 --output failed.csv"
    )]
    Export {
        /// Only this app's.
        #[arg(long)]
        app: Option<String>,
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only those started this way.
        #[arg(long)]
        trigger_source: Option<String>,
        /// Only those created at or after this time (ISO-8601, e.g. 2026-12-01).
        #[arg(long)]
        since: Option<String>,
        /// Only those created before this time (ISO-8601).
        #[arg(long)]
        until: Option<String>,
        /// Write to this file instead of stdout.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
}

/// Runs `floom executions`.
pub async fn run(args: ExecutionsArgs) -> Result<(), Failure> {
    let client = Client::new(&args.server)?;
    let with_view = |request: reqwest::RequestBuilder| match &args.view_token {
        Some(token) => request.header("x-floom-view-token", token),
        None => request,
    };
    match &args.command {
        ExecutionsCommand::List {
            app,
            status,
            trigger_source,
            limit,
            cursor,
            json,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(app.clone().map(|a| ("app", a)));
            query.extend(status.clone().map(|s| ("status", s)));
            query.extend(trigger_source.clone().map(|s| ("trigger_source", s)));
            query.extend(cursor.clone().map(|c| ("cursor", c)));
            let page: Value = client
                .json(
                    client
                        .request(reqwest::Method::GET, "/api/executions")
                        .query(&query),
                )
                .await?;
            if *json {
                print_json(&page);
                return Ok(());
            }
            for execution in page["data"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{}  {:<10} {:<24} {}",
                    execution["execution_id"].as_str().unwrap_or_default(),
                    execution["status"].as_str().unwrap_or_default(),
                    format!(
                        "{}/{}",
                        execution["app"].as_str().unwrap_or_default(),
                        execution["action"].as_str().unwrap_or_default()
                    ),
                    execution["created_at"].as_str().unwrap_or_default(),
                );
            }
            if let Some(next) = page["next_cursor"].as_str() {
                println!("more: --cursor {next}");
            }
        }
        ExecutionsCommand::Get { id } => {
            let execution: Value = client
                .json(with_view(client.request(
                    reqwest::Method::GET,
                    &format!("/api/executions/{id}"),
                )))
                .await?;
            print_json(&execution);
        }
        ExecutionsCommand::Logs { id } => {
            let response = with_view(
                client.request(reqwest::Method::GET, &format!("/api/executions/{id}/logs")),
            )
            .send()
            .await?;
            let text = check(response).await?.text().await?;
            print!("{text}");
        }
        ExecutionsCommand::Artifacts { id, download } => {
            let execution: Value = client
                .json(with_view(client.request(
                    reqwest::Method::GET,
                    &format!("/api/executions/{id}"),
                )))
                .await?;
            match download {
                Some(dir) => {
                    for path in download_artifacts(&client, &execution, dir).await? {
                        println!("{}", path.display());
                    }
                }
                None => {
                    for artifact in execution["artifacts"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                    {
                        println!(
                            "{:<40} {:>10}  {}",
                            artifact["name"].as_str().unwrap_or_default(),
                            artifact["size"],
                            artifact["content_type"].as_str().unwrap_or_default(),
                        );
                    }
                }
            }
        }
        ExecutionsCommand::Cancel { id } => {
            let envelope: Value = client
                .json(with_view(client.request(
                    reqwest::Method::POST,
                    &format!("/api/executions/{id}/cancel"),
                )))
                .await?;
            println!("{id}: {}", envelope["status"].as_str().unwrap_or_default());
        }
        ExecutionsCommand::Export {
            app,
            status,
            trigger_source,
            since,
            until,
            output,
        } => {
            let query: Vec<(&str, String)> = [
                ("app", app),
                ("status", status),
                ("trigger_source", trigger_source),
                ("since", since),
                ("until", until),
            ]
            .into_iter()
            .filter_map(|(name, value)| value.clone().map(|v| (name, v)))
            .collect();
            let response = client
                .request(reqwest::Method::GET, "/api/executions/export.csv")
                .query(&query)
                .send()
                .await?;
            let mut response = check(response).await?;
            let mut sink: Box<dyn std::io::Write> = match output {
                Some(path) => Box::new(std::fs::File::create(path).map_err(|e| {
                    Failure::refused(format!("cannot write {}: {e}", path.display()))
                })?),
                None => Box::new(std::io::stdout().lock()),
            };
            // Streamed: an export of every execution need not fit in memory.
            while let Some(chunk) = response.chunk().await? {
                sink.write_all(&chunk)
                    .and_then(|()| sink.flush())
                    .map_err(|e| Failure::refused(format!("cannot write the export: {e}")))?;
            }
        }
    }
    Ok(())
}

/// Saves every artifact `execution` lists under `dir`, by its signed URL; returns the
/// paths written. A name that would leave `dir` is refused, whatever the server said.
pub async fn download_artifacts(
    client: &Client,
    execution: &Value,
    dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>, Failure> {
    let mut written = Vec::new();
    for artifact in execution["artifacts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let name = artifact["name"].as_str().unwrap_or_default();
        let url = artifact["url"].as_str().unwrap_or_default();
        if !crate::artifacts::is_name(name) {
            return Err(Failure::refused(format!(
                "the server listed an artifact named {name:?}"
            )));
        }
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Failure::refused(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let mut response = check(client.request(reqwest::Method::GET, url).send().await?).await?;
        let mut file = std::fs::File::create(&path)
            .map_err(|e| Failure::refused(format!("cannot write {}: {e}", path.display())))?;
        while let Some(chunk) = response.chunk().await? {
            std::io::Write::write_all(&mut file, &chunk)
                .map_err(|e| Failure::refused(format!("cannot write {}: {e}", path.display())))?;
        }
        written.push(path);
    }
    Ok(written)
}
