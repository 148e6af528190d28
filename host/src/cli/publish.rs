//! `floom publish`: upload an app (manifest and component) to the server.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::client::{Client, Failure, ServerArgs, print_json};

/// Publish an app: its floom.toml and the component it names.
///
/// PATH is an app directory (holding floom.toml) or the manifest itself. Publishing the
/// same component and manifest again changes nothing; anything else becomes a new,
/// current version. Needs the admin token. A manifest with a `[build]` table (a Python
/// app) is built first, as `floom build` does.
///
/// The manifest's `component` must be a file in the app's folder, or a `.wasm` under the
/// `target/` folder of a Cargo project above it: a manifest from someone else cannot make
/// this upload any other file. Name any other component with --component.
///
/// Examples:
///
///   floom publish examples/hello
///
///   floom publish path/to/floom.toml --server https://floom.example.com --token $TOKEN
///
///   floom publish my-app --component /tmp/build/my_app.wasm
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct PublishArgs {
    /// The app directory or its floom.toml.
    #[arg(default_value = ".")]
    pub path: PathBuf,

    /// The component to upload, instead of the manifest's `component` (any path).
    #[arg(long, value_name = "WASM")]
    pub component: Option<PathBuf>,

    /// Print the published app as JSON.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    server: ServerArgs,
}

/// The manifest's component path, if it stays where a manifest may point: inside the
/// app's folder, or a `.wasm` under the `target/` folder of a Cargo project above it
/// (where `cargo build` puts a workspace member's component). Symlinks are resolved
/// first, so a link cannot lead elsewhere.
fn confined(manifest_path: &Path, component: &Path) -> Result<PathBuf, Failure> {
    let resolve = |path: &Path| {
        path.canonicalize()
            .map_err(|e| Failure::refused(format!("cannot read {}: {e}", path.display())))
    };
    let manifest = resolve(manifest_path)?;
    let app_dir = manifest.parent().unwrap_or(Path::new("/"));
    let resolved = resolve(component).map_err(|_| {
        Failure::refused(format!(
            "cannot read the component {} (build it with `cargo build --target wasm32-wasip2 --release`, or `floom build`)",
            component.display()
        ))
    })?;
    let is_wasm = resolved.extension().is_some_and(|e| e == "wasm");
    let in_cargo_target = app_dir
        .ancestors()
        .any(|dir| dir.join("Cargo.toml").is_file() && resolved.starts_with(dir.join("target")));
    if resolved.starts_with(app_dir) || (is_wasm && in_cargo_target) {
        return Ok(resolved);
    }
    Err(Failure::refused(format!(
        "the manifest's component {} is outside the app's folder {} (and not a .wasm in a \
         Cargo target/ folder above it): refusing to upload it; pass --component {} to \
         publish it anyway",
        resolved.display(),
        app_dir.display(),
        component.display()
    )))
}

/// Runs `floom publish`.
pub async fn run(args: PublishArgs) -> Result<(), Failure> {
    let manifest_path = if args.path.is_dir() {
        args.path.join("floom.toml")
    } else {
        args.path.clone()
    };
    let (manifest_path, manifest) = super::build::read_manifest(&manifest_path)?;
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| Failure::refused(format!("cannot read {}: {e}", manifest_path.display())))?;
    let component_path = match args.component {
        Some(path) => path,
        // A manifest that says how to build its component is built first.
        None if manifest.build.is_some() => super::build::build(&manifest_path, &manifest)?,
        None => {
            let named = manifest.component_path(&manifest_path).ok_or_else(|| {
                Failure::refused(format!(
                    "{} has no `component = \"path/to/app.wasm\"` (or pass --component)",
                    manifest_path.display()
                ))
            })?;
            confined(&manifest_path, &named)?
        }
    };
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
