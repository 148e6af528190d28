//! `floom run`: start a run, stream its chunks live, print its output.

use std::io::Write;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::apps::path_segment;
use super::client::{Client, Failure, ServerArgs, check};

/// Run an app and stream its chunks to the terminal as they come.
///
/// Inputs are a JSON object, plus any `--input key=value` (a value that parses as JSON is
/// used as JSON, anything else as a string; `key=@file` reads a file: uploaded as the
/// file itself when the action's property is a file, else as its text). With `--out
/// DIR`, the run's artifacts are saved there once it ends. Chunks go to stdout as they stream, log
/// lines to stderr, and the output is printed at the end. If the stream drops, it is
/// resumed from the last event.
///
/// Exit status: 0 succeeded; 1 failed, timed out or cancelled; 2 the server refused the
/// request (unknown app, invalid inputs, no access, queue full); 3 the server could not
/// be reached or failed; 4 the output awaits a person's approval (the run stops waiting
/// there and says how to decide it).
///
/// Examples:
///
///   floom run hello --input name=Ada
///
///   floom run meeting-action-items '{"transcript": "Alice: Let us ship by Friday..."}'
///
///   floom run webhook-signer/sign --input body='"{\"a\":1}"'
///
///   floom run word-count --input text=@notes.txt --detach
///
///   floom run csv-report --input csv=@scores.csv --out ./report
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// The app, optionally with an action: SLUG or SLUG/ACTION.
    pub target: String,

    /// The inputs as a JSON object.
    pub inputs: Option<String>,

    /// One input, `key=value`; `key=@file` reads the value from a file. Repeatable.
    #[arg(long = "input", short = 'i', value_name = "KEY=VALUE")]
    pub input: Vec<String>,

    /// Start the run and print its id without waiting.
    #[arg(long)]
    pub detach: bool,

    /// Print the whole final envelope as JSON instead of just the output.
    #[arg(long)]
    pub json: bool,

    /// Save the run's artifacts under this folder once it ends.
    #[arg(long, value_name = "DIR", conflicts_with = "detach")]
    pub out: Option<std::path::PathBuf>,

    #[command(flatten)]
    server: ServerArgs,
}

/// A file to upload for a file property.
struct FileInput {
    property: String,
    path: std::path::PathBuf,
}

/// The action's file properties (`"format": "binary"` or a `contentMediaType`), from the
/// app's detail; none when it cannot be read (the run then says what is wrong).
async fn file_properties(client: &Client, slug: &str, action: Option<&str>) -> Vec<String> {
    let Ok(app) = client
        .json::<Value>(client.request(
            reqwest::Method::GET,
            &format!("/api/apps/{}", path_segment(slug)),
        ))
        .await
    else {
        return Vec::new();
    };
    let Some(actions) = app["actions"].as_object() else {
        return Vec::new();
    };
    let chosen = match action {
        Some(name) => actions.get(name),
        None => actions
            .get(floom_runtime::DEFAULT_ACTION)
            .or_else(|| actions.values().next().filter(|_| actions.len() == 1)),
    };
    chosen
        .and_then(|a| a["input_schema"]["properties"].as_object())
        .map(|properties| {
            properties
                .iter()
                .filter(|(_, schema)| crate::runs::is_file_property(schema))
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn inputs(args: &RunArgs, files: &[String]) -> Result<(Value, Vec<FileInput>), Failure> {
    let mut inputs = match &args.inputs {
        None => Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(Failure::refused("the inputs must be a JSON object")),
            Err(e) => return Err(Failure::refused(format!("the inputs are not JSON: {e}"))),
        },
    };
    let mut uploads = Vec::new();
    for pair in &args.input {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| Failure::refused(format!("--input {pair:?} is not key=value")))?;
        if let Some(file) = value.strip_prefix('@')
            && files.iter().any(|f| f == key)
        {
            uploads.push(FileInput {
                property: key.to_owned(),
                path: file.into(),
            });
            continue;
        }
        let value = match value.strip_prefix('@') {
            Some(file) => Value::String(
                std::fs::read_to_string(file)
                    .map_err(|e| Failure::refused(format!("--input {key}=@{file}: {e}")))?,
            ),
            None => serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned())),
        };
        inputs.insert(key.to_owned(), value);
    }
    Ok((Value::Object(inputs), uploads))
}

/// The run request: JSON, or multipart with the files.
fn with_body(
    request: reqwest::RequestBuilder,
    inputs: &Value,
    uploads: &[FileInput],
) -> Result<reqwest::RequestBuilder, Failure> {
    if uploads.is_empty() {
        let body = serde_json::json!({ "inputs": inputs, "trigger_source": "cli" });
        return Ok(request.json(&body));
    }
    let mut form = reqwest::multipart::Form::new()
        .text("inputs", inputs.to_string())
        .text("trigger_source", "cli");
    for upload in uploads {
        let bytes = std::fs::read(&upload.path).map_err(|e| {
            Failure::refused(format!(
                "--input {}=@{}: {e}",
                upload.property,
                upload.path.display()
            ))
        })?;
        let name = upload
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| upload.property.clone());
        form = form.part(
            upload.property.clone(),
            reqwest::multipart::Part::bytes(bytes).file_name(name),
        );
    }
    Ok(request.multipart(form))
}

/// One server-sent event.
struct SseEvent {
    id: Option<i64>,
    kind: String,
    data: String,
}

/// Splits an SSE byte stream into events.
struct SseParser {
    buffer: String,
}

impl SseParser {
    fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.push_str(&String::from_utf8_lossy(bytes));
        let mut events = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut event = SseEvent {
                id: None,
                kind: "message".into(),
                data: String::new(),
            };
            for line in block.lines() {
                if let Some(id) = line.strip_prefix("id:") {
                    event.id = id.trim().parse().ok();
                } else if let Some(kind) = line.strip_prefix("event:") {
                    event.kind = kind.trim().to_owned();
                } else if let Some(data) = line.strip_prefix("data:") {
                    event.data.push_str(data.strip_prefix(' ').unwrap_or(data));
                }
            }
            if !event.data.is_empty() {
                events.push(event);
            }
        }
        events
    }
}

/// Runs `floom run`.
pub async fn run(args: RunArgs) -> Result<u8, Failure> {
    let client = Client::new(&args.server)?;
    let (slug, action) = match args.target.split_once('/') {
        Some((slug, action)) => (slug, Some(action)),
        None => (args.target.as_str(), None),
    };
    let needs_files = args.input.iter().any(|pair| pair.contains("=@"));
    let files = if needs_files {
        file_properties(&client, slug, action).await
    } else {
        Vec::new()
    };
    let (inputs, uploads) = inputs(&args, &files)?;
    let path = match args.target.split_once('/') {
        Some((slug, action)) => format!(
            "/api/apps/{}/actions/{}/run",
            path_segment(slug),
            path_segment(action)
        ),
        None => format!("/api/apps/{}/run", path_segment(&args.target)),
    };
    if args.detach {
        let envelope: Value = client
            .json(with_body(
                client.request(reqwest::Method::POST, &path),
                &inputs,
                &uploads,
            )?)
            .await?;
        println!(
            "{}\nview token: {}\nfollow it: floom executions get {} --view-token {}",
            envelope["execution_id"].as_str().unwrap_or_default(),
            envelope["view_token"].as_str().unwrap_or_default(),
            envelope["execution_id"].as_str().unwrap_or_default(),
            envelope["view_token"].as_str().unwrap_or_default(),
        );
        return Ok(0);
    }

    let response = with_body(
        client.request(reqwest::Method::POST, &format!("{path}?stream=true")),
        &inputs,
        &uploads,
    )?
    .send()
    .await?;
    let response = check(response).await?;
    let id = header(&response, "x-floom-execution-id");
    let view_token = header(&response, "x-floom-view-token");
    let mut last_seq = 0;
    let mut response = Some(response);
    let mut retries = 0;
    loop {
        let current = match response.take() {
            Some(current) => current,
            None => {
                // The stream dropped before the end: resume after the last event seen.
                let id = id.as_deref().ok_or_else(|| {
                    Failure::refused("the stream dropped and the server sent no execution id")
                })?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let mut request = client.request(
                    reqwest::Method::GET,
                    &format!("/api/executions/{id}/events?cursor={last_seq}"),
                );
                if let Some(token) = &view_token {
                    request = request.header("x-floom-view-token", token);
                }
                check(request.send().await?).await?
            }
        };
        let mut parser = SseParser {
            buffer: String::new(),
        };
        let mut body = current.bytes_stream();
        while let Some(bytes) = body.next().await {
            let Ok(bytes) = bytes else { break };
            for event in parser.push(&bytes) {
                if let Some(seq) = event.id {
                    last_seq = seq;
                }
                if let Some(code) = show(&event, args.json, id.as_deref()) {
                    if let (Some(dir), Some(id)) = (&args.out, &id) {
                        save_artifacts(&client, id, view_token.as_deref(), dir).await?;
                    }
                    return Ok(code);
                }
            }
        }
        retries += 1;
        if retries > 5 {
            return Err(Failure {
                message: "the event stream kept dropping".into(),
                code: super::client::EXIT_SERVER,
            });
        }
    }
}

/// Saves execution `id`'s artifacts under `dir`, saying where on stderr.
async fn save_artifacts(
    client: &Client,
    id: &str,
    view_token: Option<&str>,
    dir: &std::path::Path,
) -> Result<(), Failure> {
    let mut request = client.request(reqwest::Method::GET, &format!("/api/executions/{id}"));
    if let Some(token) = view_token {
        request = request.header("x-floom-view-token", token);
    }
    let execution: Value = client.json(request).await?;
    for path in super::executions::download_artifacts(client, &execution, dir).await? {
        eprintln!("saved {}", path.display());
    }
    Ok(())
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Exit status of a run whose output awaits approval.
pub const EXIT_AWAITING_APPROVAL: u8 = 4;

/// Prints one event; returns the exit status once the run has ended (or awaits
/// approval).
fn show(event: &SseEvent, json: bool, id: Option<&str>) -> Option<u8> {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    let mut stdout = std::io::stdout().lock();
    match event.kind.as_str() {
        "chunk" => {
            let _ = match &data["data"] {
                Value::String(text) => writeln!(stdout, "{text}"),
                other => writeln!(stdout, "{other}"),
            };
            let _ = stdout.flush();
            None
        }
        "log" => {
            let stream = data["stream"].as_str().unwrap_or("log");
            eprintln!("[{stream}] {}", data["line"].as_str().unwrap_or_default());
            None
        }
        "end" => {
            let shown = if json { &data } else { &data["output"] };
            let _ = writeln!(
                stdout,
                "{}",
                serde_json::to_string_pretty(shown).unwrap_or_default()
            );
            Some(0)
        }
        "approval" => {
            let approval = &data["approval"];
            let shown = if json {
                &data
            } else {
                &approval["proposed_output"]
            };
            let _ = writeln!(
                stdout,
                "{}",
                serde_json::to_string_pretty(shown).unwrap_or_default()
            );
            let id = id.unwrap_or("EXECUTION_ID");
            eprintln!(
                "awaiting approval until {}: this output counts once someone approves it \
                 (floom approvals approve {id}, or reject {id})",
                approval["expires_at"].as_str().unwrap_or("it expires"),
            );
            Some(EXIT_AWAITING_APPROVAL)
        }
        "error" => {
            if json {
                let _ = writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string_pretty(&data).unwrap_or_default()
                );
            }
            eprintln!(
                "{}: {} ({})",
                data["status"].as_str().unwrap_or("failed"),
                data["error"]["message"].as_str().unwrap_or_default(),
                data["error"]["code"].as_str().unwrap_or_default(),
            );
            Some(1)
        }
        _ => None,
    }
}
