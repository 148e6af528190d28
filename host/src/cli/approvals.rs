//! `floom approvals`: list the executions awaiting approval, approve (as proposed, edited
//! in `$EDITOR`, or from a file) or reject them.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::client::{Client, Failure, ServerArgs, print_json};

/// Approve, edit or reject outputs that await a person (SPEC section 11).
///
/// Deciding needs the admin token or an admin-role token that covers the app.
///
/// Examples:
///
///   floom approvals list --app reply-drafter
///
///   floom approvals approve exec_0192... --annotation "looks good"
///
///   floom approvals approve exec_0192... --edit
///
///   floom approvals approve exec_0192... --output fixed.json
///
///   floom approvals reject exec_0192... --reason "wrong recipient"
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    command: ApprovalsCommand,

    #[command(flatten)]
    server: ServerArgs,
}

/// What to do with approvals.
#[derive(Debug, clap::Subcommand)]
pub enum ApprovalsCommand {
    /// List the executions awaiting approval, oldest first.
    #[command(after_help = "Example:\n  floom approvals list --app reply-drafter --json")]
    List {
        /// Only this app's.
        #[arg(long)]
        app: Option<String>,
        /// How many (1 to 200).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Continue from a previous page's next_cursor.
        #[arg(long)]
        cursor: Option<String>,
        /// Print JSON (with the proposed outputs) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Approve an execution's output: as proposed, edited in $EDITOR (--edit), or
    /// replaced by a file's JSON (--output).
    #[command(
        after_help = "Examples:\n  floom approvals approve exec_0192...\n  floom approvals approve exec_0192... --edit --annotation \"fixed the greeting\""
    )]
    Approve {
        /// The execution id.
        id: String,
        /// A note for the record.
        #[arg(long)]
        annotation: Option<String>,
        /// Open the proposed output in $EDITOR (else $VISUAL, else vi) and approve what is
        /// saved.
        #[arg(long, conflicts_with = "output")]
        edit: bool,
        /// Approve this file's JSON instead of the proposed output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Reject an execution's output: it fails with `rejected`.
    #[command(after_help = "Example:\n  floom approvals reject exec_0192... --reason \"too rude\"")]
    Reject {
        /// The execution id.
        id: String,
        /// Why (kept with the execution and in its error message).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Runs `floom approvals`.
pub async fn run(args: ApprovalsArgs) -> Result<(), Failure> {
    let client = Client::new(&args.server)?;
    match args.command {
        ApprovalsCommand::List {
            app,
            limit,
            cursor,
            json,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(app.map(|a| ("app", a)));
            query.extend(cursor.map(|c| ("cursor", c)));
            let page: Value = client
                .json(
                    client
                        .request(reqwest::Method::GET, "/api/approvals")
                        .query(&query),
                )
                .await?;
            if json {
                print_json(&page);
                return Ok(());
            }
            let pending = page["data"].as_array().cloned().unwrap_or_default();
            if pending.is_empty() {
                println!("nothing awaits approval");
            }
            for execution in pending {
                let approval = &execution["approval"];
                println!(
                    "{}  {:<32} expires {}  {}",
                    execution["execution_id"].as_str().unwrap_or_default(),
                    format!(
                        "{}/{}",
                        execution["app"].as_str().unwrap_or_default(),
                        approval["action"].as_str().unwrap_or_default()
                    ),
                    approval["expires_at"].as_str().unwrap_or_default(),
                    preview(&approval["proposed_output"]),
                );
            }
            if let Some(next) = page["next_cursor"].as_str() {
                println!("more: --cursor {next}");
            }
        }
        ApprovalsCommand::Approve {
            id,
            annotation,
            edit,
            output,
        } => {
            let edited = match (edit, output) {
                (true, _) => Some(edit_proposed(&client, &id).await?),
                (false, Some(path)) => Some(read_json(&path)?),
                (false, None) => None,
            };
            let mut body = json!({});
            if let Some(annotation) = annotation {
                body["annotation"] = json!(annotation);
            }
            if let Some(output) = edited {
                body["output"] = output;
            }
            let execution = decide(&client, &id, "approve", &body).await?;
            say_decided(&id, &execution);
        }
        ApprovalsCommand::Reject { id, reason } => {
            let body = match reason {
                Some(reason) => json!({ "reason": reason }),
                None => json!({}),
            };
            let execution = decide(&client, &id, "reject", &body).await?;
            say_decided(&id, &execution);
        }
    }
    Ok(())
}

async fn decide(client: &Client, id: &str, verb: &str, body: &Value) -> Result<Value, Failure> {
    client
        .json(
            client
                .request(
                    reqwest::Method::POST,
                    &format!("/api/executions/{id}/{verb}"),
                )
                .json(body),
        )
        .await
}

fn say_decided(id: &str, execution: &Value) {
    let status = execution["status"].as_str().unwrap_or_default();
    match execution["step_action"].as_str() {
        Some(next) if status == "queued" => {
            println!("{id}: approved; its next step, {next}, is queued");
        }
        _ => println!("{id}: {status}"),
    }
}

/// One line of a JSON value, cut to fit a terminal.
fn preview(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

fn read_json(path: &Path) -> Result<Value, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::refused(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| Failure::refused(format!("{} is not JSON: {e}", path.display())))
}

/// Opens the proposed output of `id` in the user's editor; returns what was saved.
async fn edit_proposed(client: &Client, id: &str) -> Result<Value, Failure> {
    let execution: Value = client
        .json(client.request(reqwest::Method::GET, &format!("/api/executions/{id}")))
        .await?;
    if execution["status"] != "awaiting_approval" {
        return Err(Failure::refused(format!(
            "{id} is {}: it is not awaiting approval",
            execution["status"].as_str().unwrap_or("unknown")
        )));
    }
    let proposed = &execution["approval"]["proposed_output"];
    let path = std::env::temp_dir().join(format!("floom-{id}-{}.json", std::process::id()));
    let text = serde_json::to_string_pretty(proposed).unwrap_or_else(|_| "null".to_owned());
    std::fs::write(&path, text + "\n")
        .map_err(|e| Failure::refused(format!("cannot write {}: {e}", path.display())))?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".to_owned());
    // The editor may carry arguments (`code --wait`): run it through the shell.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("floom-edit")
        .arg(&path)
        .status()
        .map_err(|e| Failure::refused(format!("cannot start the editor {editor:?}: {e}")))?;
    let edited = if status.success() {
        read_json(&path)
    } else {
        Err(Failure::refused(format!(
            "the editor {editor:?} exited with {status}: nothing was approved"
        )))
    };
    let _ = std::fs::remove_file(&path);
    edited
}
