//! The one way to start a run, shared by every surface (the REST API, MCP, inbound
//! triggers, schedules): authorize the caller, refuse a paused app, apply the caller's
//! rate limit, choose the action, validate the inputs against its `input_schema`, and
//! submit the execution (with its idempotency key) to the
//! [`Scheduler`](crate::scheduler::Scheduler). Each surface parses its own requests and
//! shapes its own answers; none of them starts a run any other way.

use std::sync::Arc;

use floom_runtime::{DEFAULT_ACTION, is_slug};
use serde_json::Value;

use crate::api::Services;
use crate::api::auth::{Caller, Need, random_token, sha256_hex};
use crate::api::error::ApiError;
use crate::api::executions::Envelope;
use crate::registry::LoadedApp;
use crate::scheduler::{SubmitError, Submitted, Subscription, Unwritten};
use crate::store::{
    FileKind, FileRecord, IdempotencyKey, NewExecution, TickClaim, TickTaken, TriggerSource, now_ms,
};

/// What to run, as a surface understood its request.
#[derive(Debug)]
pub struct StartRun {
    /// The app.
    pub slug: String,
    /// The action; `None` for the default (`run`, or the app's only action).
    pub action: Option<String>,
    /// Whether the action was named by the URL's path, so an unknown one is a 404 rather
    /// than a 400.
    pub action_in_path: bool,
    /// The inputs (`None` reads as `{}`).
    pub inputs: Option<Value>,
    /// An idempotency key, checked with [`idempotency_key`].
    pub idempotency_key: Option<String>,
    /// How it started.
    pub trigger_source: TriggerSource,
    /// For an MCP call: its key, by which a later cancellation finds it.
    pub mcp_call: Option<String>,
    /// Subscribe to its events before it can start, to wait for its end.
    pub watch: bool,
}

/// What a run may carry beyond what every surface sends.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// Where the run's own notifications go: a URL that passed
    /// [`crate::notify::check_url`].
    pub webhook: Option<String>,
    /// The schedule tick the run is for, claimed in the transaction that writes it.
    pub tick: Option<TickClaim>,
    /// For a run the server starts itself (a trigger's or a schedule's, started with
    /// [`Caller::Admin`] as the admin set them up): the name its idempotency keys and its
    /// share of the queue go by, instead of the admin's.
    pub on_behalf_of: Option<String>,
    /// Files uploaded with the request, one per file property of the action.
    pub uploads: Vec<Upload>,
}

/// A file uploaded for one of the action's file properties.
#[derive(Debug)]
pub struct Upload {
    /// The property it is the value of.
    pub property: String,
    /// The file's name as the client sent it (its extension is kept).
    pub file_name: Option<String>,
    /// Its media type as the client sent it.
    pub content_type: Option<String>,
    /// The bytes.
    pub bytes: bytes::Bytes,
}

/// Whether a property schema describes a file (SPEC section 10): `"format": "binary"`
/// or a `contentMediaType`.
pub fn is_file_property(schema: &Value) -> bool {
    schema.get("format").and_then(Value::as_str) == Some("binary")
        || schema.get("contentMediaType").is_some()
}

/// The name an upload gets under `/in`: its property, with the uploaded file's
/// extension when that is short and plain (so an app can tell a `.csv` from a `.png`).
fn input_name(upload: &Upload) -> String {
    let ext = upload
        .file_name
        .as_deref()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|ext| {
            (1..=10).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    match ext {
        Some(ext) => format!("{}.{ext}", upload.property),
        None => upload.property.clone(),
    }
}

/// Sets each upload's property in `inputs` to its path under `/in`; refuses an upload
/// for a property that is not one of the action's files, or two for one property.
fn attach_uploads(
    app: &LoadedApp,
    action: &str,
    inputs: &mut Value,
    uploads: &[Upload],
) -> Result<(), ApiError> {
    let properties = app
        .app
        .action(action)
        .and_then(|a| a.input_schema.as_ref())
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object);
    let mut seen = Vec::new();
    for upload in uploads {
        let is_file = properties
            .and_then(|p| p.get(&upload.property))
            .is_some_and(is_file_property);
        // The name becomes a file name under /in: it must be one, whatever the schema says.
        if !is_file || !crate::artifacts::is_name_part(&upload.property) {
            return Err(ApiError::invalid_input(format!(
                "the part {:?} is not a file property of action {action:?} (a file property \
                 has \"format\": \"binary\" or a contentMediaType)",
                upload.property
            )));
        }
        if seen.contains(&&upload.property) {
            return Err(ApiError::invalid_input(format!(
                "the file property {:?} was sent twice",
                upload.property
            )));
        }
        seen.push(&upload.property);
        if let Some(object) = inputs.as_object_mut() {
            object.insert(
                upload.property.clone(),
                Value::String(format!("/in/{}", input_name(upload))),
            );
        }
    }
    Ok(())
}

/// Stores the uploads as blobs and records them as execution `id`'s input files.
async fn record_uploads(state: &Services, id: &str, uploads: Vec<Upload>) -> Result<(), ApiError> {
    if uploads.is_empty() {
        return Ok(());
    }
    let blobs = state.files.blobs().clone();
    let id = id.to_owned();
    let records = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<FileRecord>> {
        let now = now_ms();
        uploads
            .into_iter()
            .map(|upload| {
                let stored = blobs.put(&mut &upload.bytes[..], u64::MAX)?;
                let name = input_name(&upload);
                Ok(FileRecord {
                    execution_id: id.clone(),
                    kind: FileKind::Input,
                    // Served back as a header: plain visible ASCII only, else guessed.
                    content_type: upload
                        .content_type
                        .filter(|t| {
                            !t.trim().is_empty()
                                && t.len() <= 255
                                && t.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
                        })
                        .unwrap_or_else(|| crate::artifacts::content_type(&name).to_owned()),
                    name,
                    size: i64::try_from(stored.size).unwrap_or(i64::MAX),
                    sha256: stored.sha256,
                    created_at: now,
                })
            })
            .collect()
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::internal(format!("the input files could not be stored: {e}")))?;
    state.store.add_files(records).await?;
    Ok(())
}

/// An accepted run.
#[derive(Debug)]
pub struct Started {
    /// `exec_...`
    pub id: String,
    /// Its view token.
    pub view_token: String,
    /// Whether the idempotency key returned an earlier execution.
    pub replay: bool,
    /// Its live events, when watched and not already ended.
    pub subscription: Option<Subscription>,
    /// Set when the execution may not be written yet: write it before its id is shown
    /// to anyone other than with its end.
    pub unwritten: Option<Arc<Unwritten>>,
}

/// Longest accepted idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Checks an idempotency key as sent (1 to 255 visible ASCII characters after trimming).
pub fn idempotency_key(raw: &str) -> Result<String, ApiError> {
    let key = raw.trim();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::invalid_input(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
        )));
    }
    Ok(key.to_owned())
}

/// The associated data a replayable view token is sealed with.
fn idempotency_owner(id: &str) -> Vec<u8> {
    format!("view-token\0{id}").into_bytes()
}

/// Picks the action: the one named, else `run`, else the app's only action.
fn choose_action(
    app: &LoadedApp,
    named: Option<String>,
    in_path: bool,
) -> Result<String, ApiError> {
    let manifest = app.app.manifest();
    let names: Vec<&str> = manifest.actions().map(|(name, _)| name).collect();
    match named {
        Some(name) if manifest.action(&name).is_some() => Ok(name),
        Some(name) => {
            let detail = format!(
                "{} has no action {name:?} (it has: {})",
                manifest.slug,
                names.join(", ")
            );
            Err(if in_path {
                ApiError::not_found(detail)
            } else {
                ApiError::invalid_input(detail)
            })
        }
        None => default_action(app).ok_or_else(|| {
            ApiError::invalid_input(format!(
                "{} has several actions ({}): name one with \"action\" or /actions/{{action}}/run",
                manifest.slug,
                names.join(", ")
            ))
        }),
    }
}

/// The action a run that names none gets: `run`, else the app's only action.
pub fn default_action(app: &LoadedApp) -> Option<String> {
    let names: Vec<&str> = app.app.manifest().actions().map(|(name, _)| name).collect();
    if names.contains(&DEFAULT_ACTION) {
        Some(DEFAULT_ACTION.to_owned())
    } else if let [only] = names.as_slice() {
        Some((*only).to_owned())
    } else {
        None
    }
}

/// Starts a run for `caller`: nothing is created unless every check passes.
pub async fn start(
    state: &Services,
    caller: &Caller,
    request: StartRun,
) -> Result<Started, ApiError> {
    start_with(state, caller, request, RunOptions::default()).await
}

/// [`start`], with `options`.
pub async fn start_with(
    state: &Services,
    caller: &Caller,
    request: StartRun,
    options: RunOptions,
) -> Result<Started, ApiError> {
    // Anonymous callers are known only by their address, which clients behind one NAT
    // share: a key of theirs could replay another client's execution and view token.
    if request.idempotency_key.is_some() && !caller.has_credentials() {
        return Err(ApiError::invalid_input(
            "Idempotency-Key needs credentials (Authorization: Bearer <token>): anonymous \
             callers share addresses, so their keys could return another client's execution",
        ));
    }
    let slug = request.slug.as_str();
    let app = match is_slug(slug)
        .then(|| state.registry.current(slug))
        .flatten()
    {
        Some(app) => {
            caller.authorize(slug, app.record.public, Need::Run)?;
            app
        }
        None => return Err(ApiError::not_found(format!("no app {slug:?}"))),
    };
    if state.registry.is_paused(slug) {
        return Err(ApiError::conflict(format!(
            "{slug} is paused: it takes no new runs until it is resumed \
             (POST /api/apps/{slug}/resume)"
        )));
    }
    if !matches!(caller, Caller::Admin)
        && let Err(wait) = state.limiter.check(&caller.identity())
    {
        return Err(ApiError::quota_exceeded(
            format!(
                "too many runs: the limit is {} a minute",
                state.config.runs_per_minute
            ),
            wait.as_secs().max(1),
        ));
    }
    let action = choose_action(&app, request.action, request.action_in_path)?;
    let mut inputs = request
        .inputs
        .unwrap_or_else(|| Value::Object(Default::default()));
    if !inputs.is_object() {
        return Err(ApiError::invalid_input(
            "\"inputs\" must be a JSON object, such as {\"inputs\": {\"text\": \"...\"}}",
        ));
    }
    attach_uploads(&app, &action, &mut inputs, &options.uploads)?;
    // On the validation pool: a costly schema and input take its threads, not ours.
    let inputs = match app.input_schema(&action) {
        Some(schema) => state.validations.validate(schema, inputs).await?,
        None => inputs,
    };

    if options.webhook.is_some() {
        // The app's run-webhook key is made on first use, before the run can end.
        crate::notify::run_webhook_secret(state, slug).await?;
    }
    let identity = options.on_behalf_of.unwrap_or_else(|| caller.identity());
    let mut view_token = random_token()?;
    let execution = NewExecution {
        id: format!("exec_{}", uuid::Uuid::now_v7().simple()),
        app: app.record.slug.clone(),
        version: app.record.version,
        inputs: inputs.to_string(),
        view_token_hash: sha256_hex(&view_token),
        created_at: now_ms(),
        started_at: None,
        action,
        trigger_source: request.trigger_source,
        mcp_call: request.mcp_call,
        webhook: options.webhook,
        tick: options.tick,
    };
    let key = match request.idempotency_key {
        None => None,
        Some(key) => Some(IdempotencyKey {
            caller: identity.clone(),
            request_hash: sha256_hex(&format!(
                "{}\n{}\n{}",
                execution.app, execution.action, execution.inputs
            )),
            view_token: state
                .sealer
                .seal(&idempotency_owner(&execution.id), view_token.as_bytes())?,
            key,
        }),
    };
    let request_hash = key.as_ref().map(|k| k.request_hash.clone());
    // Recorded before the execution is queued, so its run finds them.
    let input_files = !options.uploads.is_empty();
    record_uploads(state, &execution.id, options.uploads).await?;
    let mut id = execution.id.clone();
    let submitted = state
        .scheduler
        .submit(execution, identity, key, request.watch, input_files)
        .await
        .map_err(|e| match e {
            SubmitError::QueueFull(_)
            | SubmitError::AppQueueFull { .. }
            | SubmitError::CallerQueueFull(_) => ApiError::quota_exceeded(e.to_string(), 1),
            SubmitError::Draining => ApiError::unavailable(e.to_string()),
            SubmitError::Store(e) if e.is::<TickTaken>() => ApiError::conflict(e.to_string()),
            SubmitError::Store(e) => ApiError::from(e),
        })?;
    let replay = matches!(submitted, Submitted::Existing { .. });
    let (subscription, unwritten) = match submitted {
        Submitted::New {
            subscription,
            unwritten,
        } => (subscription, unwritten),
        Submitted::Existing {
            execution_id,
            request_hash: earlier,
            view_token: sealed,
        } => {
            if Some(&earlier) != request_hash.as_ref() {
                return Err(ApiError::idempotency_mismatch(
                    "this Idempotency-Key was used in the last 24 h with a different request",
                ));
            }
            let token = state
                .sealer
                .open(&idempotency_owner(&execution_id), &sealed)?;
            view_token = String::from_utf8(token)
                .map_err(|_| ApiError::internal("a stored view token is not text"))?;
            id = execution_id;
            // Subscribe now; if it has already ended, the store has the answer.
            let subscription = request.watch.then(|| state.live.subscribe(&id)).flatten();
            (subscription, None)
        }
    };
    Ok(Started {
        id,
        view_token,
        replay,
        subscription,
        unwritten,
    })
}

/// The envelope of execution `id` as the store has it now.
pub async fn current(state: &Services, id: &str) -> Result<Envelope, ApiError> {
    let record = state
        .store
        .execution(id)
        .await?
        .ok_or_else(|| ApiError::internal(format!("execution {id} vanished")))?;
    Envelope::from_record(&record)
}
