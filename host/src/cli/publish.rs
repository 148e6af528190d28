//! `floom publish`: upload an app (manifest and component) to the server.

use std::path::PathBuf;

use floom_runtime::Manifest;
use serde_json::Value;

use super::client::{Client, Failure, ServerArgs, print_json};

/// Publish an app: its floom.toml and the component it names.
///
/// PATH is an app directory (holding floom.toml) or the manifest itself. Publishing the
/// same component and manifest again changes nothing; anything else becomes a new,
/// current version. Needs the admin token.
///
/// Examples:
///
///   floom publish examples/hello
///
///   floom publish path/to/floom.toml --server https://floom.example.com --token $TOKEN
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct PublishArgs {
    /// The app directory or its floom.toml.
    #[arg(default_value = ".")]
    pub path: PathBuf,

    /// Print the published app as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    server: ServerArgs,
}

/// Runs `floom publish`.
pub async fn run(args: PublishArgs) -> Result<(), Failure> {
    let manifest_path = if args.path.is_dir() {
        args.path.join("floom.toml")
    } else {
        args.path.clone()
    };
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| Failure::refused(format!("cannot read {}: {e}", manifest_path.display())))?;
    let manifest = Manifest::parse(&text)
        .map_err(|e| Failure::refused(format!("{}: {e}", manifest_path.display())))?;
    manifest
        .validate()
        .map_err(|e| Failure::refused(format!("{}: {e}", manifest_path.display())))?;
    let component_path = manifest.component_path(&manifest_path).ok_or_else(|| {
        Failure::refused(format!(
            "{} has no `component = \"path/to/app.wasm\"`",
            manifest_path.display()
        ))
    })?;
    let component = std::fs::read(&component_path).map_err(|e| {
        Failure::refused(format!(
            "cannot read the component {}: {e} (build it with `cargo build --target wasm32-wasip2 --release`)",
            component_path.display()
        ))
    })?;

    let client = Client::new(&args.server)?;
    let form = reqwest::multipart::Form::new().text("manifest", text).part(
        "component",
        reqwest::multipart::Part::bytes(component).file_name("component.wasm"),
    );
    let app: Value = client
        .json(
            client
                .request(reqwest::Method::POST, "/api/apps")
                .multipart(form),
        )
        .await?;
    if args.json {
        print_json(&app);
    } else {
        println!(
            "published {} version {} ({} app, sha256 {})\nrun it: floom run {}   or   POST {}{}",
            app["slug"].as_str().unwrap_or_default(),
            app["version"],
            app["kind"].as_str().unwrap_or_default(),
            &app["sha256"]
                .as_str()
                .unwrap_or_default()
                .get(..12)
                .unwrap_or_default(),
            app["slug"].as_str().unwrap_or_default(),
            args.server.server.trim_end_matches('/'),
            app["run_url"].as_str().unwrap_or_default(),
        );
    }
    Ok(())
}
