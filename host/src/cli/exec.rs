//! `floom exec`: run a component locally, the way the server would.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use floom_runtime::{
    CompiledApp, Engine, EngineConfig, Manifest, RunError, RunRequest, Status, Usage,
};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::EXIT_INVALID;

/// Run a component locally under its manifest's limits.
///
/// Prints every event the app streams (chunks and log lines) as one JSON line as it
/// happens, then the outcome as one JSON line: `{"status", "output", "error", "usage"}`.
/// Try an app this way before publishing it. Ctrl-C cancels the run.
///
/// Exit status: 0 when the run succeeded; 1 when it failed, timed out or was cancelled;
/// 2 when the component, manifest, action or input is invalid.
///
/// Examples:
///
///   floom exec examples/hello --input '{"name": "Ada"}'
///
///   floom exec target/wasm32-wasip2/guest/word-count.wasm \
///       --manifest examples/word-count/floom.toml --input @text.json
///
///   SIGNING_KEY=k3y floom exec examples/webhook-signer --action sign \
///       --secret SIGNING_KEY --input '{"body": "{}"}'
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct ExecArgs {
    /// The component (`.wasm`), or an app directory or `floom.toml` whose `component`
    /// to run.
    pub path: PathBuf,

    /// The manifest giving the app's limits, actions and secrets. Without one, the
    /// component runs with the default limits and a single action.
    #[arg(long, value_name = "FLOOM.TOML")]
    pub manifest: Option<PathBuf>,

    /// The inputs: a JSON object, `@FILE` to read it from a file, or `-` for stdin.
    #[arg(long, default_value = "{}", value_name = "JSON")]
    pub input: String,

    /// The action to run (default: `run`, or the app's only action).
    #[arg(long)]
    pub action: Option<String>,

    /// Pass a secret the manifest declares, its value taken from the environment
    /// variable of the same name. Repeatable.
    #[arg(long = "secret", value_name = "NAME")]
    pub secrets: Vec<String>,

    /// Let the app reach private and loopback addresses (hosts in its allowed_hosts that
    /// resolve to your own machine or network), for trying it against local services.
    #[arg(long)]
    pub allow_private_network: bool,

    /// Compile every time instead of using the compile cache in
    /// `$XDG_CACHE_HOME/floom` (or `~/.cache/floom`).
    #[arg(long)]
    pub no_cache: bool,
}

/// Runs `floom exec`.
pub async fn run(args: ExecArgs) -> ExitCode {
    let (app, request) = match prepare(&args) {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_INVALID);
        }
    };

    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel(256);
    let request = request.events(tx).cancel(cancel.clone());
    let ctrl_c = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        }
    });
    let running = tokio::spawn(async move { app.run(request).await });

    let mut stdout = std::io::stdout().lock();
    while let Some(event) = rx.recv().await {
        print_line(&mut stdout, &event);
    }
    let outcome = match running.await {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("error: the run failed inside the host: {e}");
            return ExitCode::FAILURE;
        }
    };
    ctrl_c.abort();
    print_line(
        &mut stdout,
        &Summary {
            status: outcome.status,
            output: outcome.output.as_deref(),
            error: outcome.error.as_ref(),
            usage: &outcome.usage,
        },
    );
    if outcome.status == Status::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The last line `floom exec` prints.
#[derive(serde::Serialize)]
struct Summary<'a> {
    status: Status,
    output: Option<&'a RawValue>,
    error: Option<&'a RunError>,
    usage: &'a Usage,
}

fn print_line(out: &mut impl Write, value: &impl serde::Serialize) {
    // A closed stdout (`floom exec ... | head`) is not worth a panic.
    let _ = serde_json::to_writer(&mut *out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
}

/// Everything that can be refused before the run starts.
fn prepare(args: &ExecArgs) -> anyhow::Result<(CompiledApp, RunRequest)> {
    let (manifest, component) = locate(args)?;
    let bytes = std::fs::read(&component)
        .with_context(|| format!("cannot read the component {}", component.display()))?;
    let input = read_input(&args.input)?;

    let engine = Engine::new(EngineConfig {
        cache_dir: (!args.no_cache).then(cache_dir).flatten(),
        // One run at a time: a small pool reserves little address space.
        max_instances: 4,
        allow_private_network: args.allow_private_network,
        ..EngineConfig::default()
    })?;
    let app = engine
        .compile(manifest, &bytes)
        .with_context(|| format!("{} is not a runnable app", component.display()))?;

    let action = match &args.action {
        Some(action) => action.clone(),
        None => default_action(app.manifest()),
    };
    let mut secrets = HashMap::new();
    for name in &args.secrets {
        if !app.manifest().secrets.contains(name) {
            bail!("--secret {name}: the manifest does not declare it (secrets = [...])");
        }
        let value = std::env::var(name).with_context(|| {
            format!("--secret {name}: the environment variable {name} is not set")
        })?;
        secrets.insert(name.clone(), value);
    }
    let request = RunRequest::new(&app, &action, input)?.secrets(secrets);
    Ok((app, request))
}

/// The manifest and the component's path, from the arguments.
fn locate(args: &ExecArgs) -> anyhow::Result<(Manifest, PathBuf)> {
    locate_app(&args.path, args.manifest.as_deref(), args.action.as_deref())
}

/// The manifest and component for `path`: a component (with `manifest`, or defaults and
/// `action`), an app directory, or a floom.toml.
pub fn locate_app(
    path: &Path,
    manifest: Option<&Path>,
    action: Option<&str>,
) -> anyhow::Result<(Manifest, PathBuf)> {
    let path = &path.to_path_buf();
    let manifest_path = match manifest {
        Some(manifest) => Some(manifest.to_path_buf()),
        None if path.is_dir() => Some(path.join("floom.toml")),
        None if path.extension().is_some_and(|e| e == "toml") => Some(path.clone()),
        None => None,
    };
    let Some(manifest_path) = manifest_path else {
        return Ok((default_manifest(path, action)?, path.clone()));
    };
    let given = manifest.is_some();
    let manifest = Manifest::from_file(&manifest_path)?;
    let component = if given {
        path.clone()
    } else {
        manifest.component_path(&manifest_path).with_context(|| {
            format!(
                "{} has no `component` path: pass the .wasm file instead",
                manifest_path.display()
            )
        })?
    };
    if !component.exists() {
        bail!(
            "the component {} does not exist{}",
            component.display(),
            if component.starts_with("../../target")
                || component.to_string_lossy().contains("target/wasm32-wasip2")
            {
                " (build the guests first: `cargo build -p floom-tests`)"
            } else {
                ""
            }
        );
    }
    Ok((manifest, component))
}

/// A manifest for a bare component: named after the file, default limits, one action.
fn default_manifest(component: &Path, action: Option<&str>) -> anyhow::Result<Manifest> {
    let stem = component
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let slug: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(63)
        .collect();
    let slug = if slug.is_empty() {
        "app".to_owned()
    } else {
        slug
    };
    let mut text = format!("slug = {slug:?}\n");
    if let Some(action) = action {
        text.push_str(&format!("[actions.{}]\n", toml_key(action)));
    }
    let manifest = Manifest::parse(&text)?;
    manifest.validate()?;
    Ok(manifest)
}

fn toml_key(key: &str) -> String {
    serde_json::to_string(key).unwrap_or_default()
}

fn default_action(manifest: &Manifest) -> String {
    let actions: Vec<&str> = manifest.actions().map(|(name, _)| name).collect();
    match actions.as_slice() {
        [only] => (*only).to_owned(),
        _ => floom_runtime::DEFAULT_ACTION.to_owned(),
    }
}

fn read_input(arg: &str) -> anyhow::Result<Box<RawValue>> {
    let text = if arg == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the input from stdin")?
    } else if let Some(file) = arg.strip_prefix('@') {
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the input file {file}"))?
    } else {
        arg.to_owned()
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("invalid --input: not JSON: {e}"))?;
    if !value.is_object() {
        bail!("invalid --input: must be a JSON object such as {{\"name\": \"Ada\"}}");
    }
    Ok(serde_json::value::to_raw_value(&value)?)
}

fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("floom").join("compiled"))
}
