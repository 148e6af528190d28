//! `floom build`: make an app's component from its sources: Python apps with
//! componentize-py (installed by floom into its cache on first use), Rust apps with
//! `cargo build --target wasm32-wasip2 --release`.

use std::path::{Path, PathBuf};

use floom_guest_build::python;
use floom_runtime::Manifest;

use super::client::Failure;

/// Build an app's component.
///
/// DIR is the app's folder (holding floom.toml) or the manifest itself. A manifest with a
/// `[build]` table is a Python app: its entry module, the Floom Python SDK and its
/// pure-Python requirements become a component with componentize-py, which floom
/// installs (pinned) into its cache folder the first time. A folder with a Cargo.toml is
/// a Rust app, built with cargo for wasm32-wasip2. The component goes where the
/// manifest's `component` says (inside the app's folder).
///
/// The cache is FLOOM_CACHE_DIR, else $XDG_CACHE_HOME/floom, else ~/.cache/floom.
///
/// Examples:
///
///   floom build my-app
///
///   floom build examples/py-meeting-action-items && floom publish examples/py-meeting-action-items
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct BuildArgs {
    /// The app's folder or its floom.toml.
    #[arg(default_value = ".")]
    pub path: PathBuf,
}

/// The Python SDK and WIT files, bundled by the build script.
mod bundled {
    include!(concat!(env!("OUT_DIR"), "/python_sdk.rs"));
}

/// Runs `floom build`.
pub fn run(args: &BuildArgs) -> Result<(), Failure> {
    let (manifest_path, manifest) = read_manifest(&args.path)?;
    build(&manifest_path, &manifest)?;
    Ok(())
}

/// The manifest at `path` (an app folder or the file itself), parsed and validated.
pub fn read_manifest(path: &Path) -> Result<(PathBuf, Manifest), Failure> {
    let manifest_path = if path.is_dir() {
        path.join("floom.toml")
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| Failure::refused(format!("cannot read {}: {e}", manifest_path.display())))?;
    let manifest = Manifest::parse(&text)
        .map_err(|e| Failure::refused(format!("{}: {e}", manifest_path.display())))?;
    manifest
        .validate()
        .map_err(|e| Failure::refused(format!("{}: {e}", manifest_path.display())))?;
    Ok((manifest_path, manifest))
}

/// Builds the app of `manifest` (at `manifest_path`); returns the component's path.
pub fn build(manifest_path: &Path, manifest: &Manifest) -> Result<PathBuf, Failure> {
    let app_dir = manifest_path.parent().unwrap_or(Path::new("."));
    let component = manifest.component.as_deref().ok_or_else(|| {
        Failure::refused(format!(
            "{} names no component: add `component = \"build/app.wasm\"` for the build to \
             write",
            manifest_path.display()
        ))
    })?;
    let out = app_dir.join(component);
    let mut say = |step: &str| eprintln!("floom build: {step}");
    match manifest.build.as_ref().and_then(|b| b.python.as_ref()) {
        Some(entry) => {
            // The build writes here: a manifest from someone else must not point it at
            // any other file.
            if !inside(app_dir, &out) {
                return Err(Failure::refused(format!(
                    "component = {:?}: a Python build writes its component inside the app's \
                     folder; use a path like build/app.wasm",
                    component.display()
                )));
            }
            let cache = cache_dir()?;
            let (sdk, wit) = unpack_sdk(&cache)?;
            let toolchain = python::Toolchain::ensure(&cache, &mut say).map_err(refused)?;
            let work = cache
                .join("work")
                .join(format!("{}-{}", manifest.slug, std::process::id()));
            let requirements = manifest
                .build
                .as_ref()
                .and_then(|b| b.requirements.as_ref())
                .map(|r| app_dir.join(r));
            let built = python::build(
                &toolchain,
                &python::App {
                    entry: &app_dir.join(entry),
                    requirements: requirements.as_deref(),
                    sdk: &sdk,
                    wit: &wit,
                    work: &work,
                    out: &out,
                },
                &mut say,
            );
            let _ = std::fs::remove_dir_all(&work);
            built.map_err(refused)?;
        }
        None if app_dir.join("Cargo.toml").is_file() => build_rust(app_dir, &out, &mut say)?,
        None => {
            return Err(Failure::refused(format!(
                "{} has no [build] table and {} has no Cargo.toml: nothing to build (a \
                 Python app needs [build] python = \"app.py\")",
                manifest_path.display(),
                app_dir.display()
            )));
        }
    }
    if !out.is_file() {
        return Err(Failure::refused(format!(
            "the build finished but {} is not there: does the manifest's `component` name \
             the file the build makes?",
            out.display()
        )));
    }
    let size = std::fs::metadata(&out).map_or(0, |m| m.len());
    say(&format!(
        "built {} ({:.1} MB)",
        out.display(),
        size as f64 / 1e6
    ));
    Ok(out)
}

fn refused(e: python::BuildError) -> Failure {
    Failure::refused(e.0)
}

/// Builds a Rust app with cargo and puts its component where the manifest says (inside
/// the app's folder), wherever cargo's target dir is.
fn build_rust(app_dir: &Path, out: &Path, say: &mut dyn FnMut(&str)) -> Result<(), Failure> {
    say(&format!(
        "cargo build --target wasm32-wasip2 --release in {}",
        app_dir.display()
    ));
    let output = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args(["build", "--target", "wasm32-wasip2", "--release"])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(app_dir.join("Cargo.toml"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Failure::refused(format!("cannot run cargo: {e} (is Rust installed?)")))?;
    if !output.status.success() {
        return Err(Failure::refused(format!(
            "cargo build failed ({}); its output is above (the target may need \
             `rustup target add wasm32-wasip2`)",
            output.status
        )));
    }
    // The last `.wasm` cargo reports is the app's own.
    let built = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .flat_map(|message| {
            message["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str().map(PathBuf::from))
                .collect::<Vec<_>>()
        })
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| {
            Failure::refused(
                "cargo built no .wasm: is the crate a cdylib (`[lib] crate-type = [\"cdylib\"]`) \
                 or a binary?",
            )
        })?;
    let same = |a: &Path, b: &Path| a.canonicalize().ok() == b.canonicalize().ok();
    if same(&built, out) {
        return Ok(());
    }
    if !inside(app_dir, out) {
        return Err(Failure::refused(format!(
            "cargo built {}, but the manifest's component is {} (outside the app's folder, \
             so it is not copied there)",
            built.display(),
            out.display()
        )));
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::refused(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::copy(&built, out).map_err(|e| {
        Failure::refused(format!(
            "cannot copy {} to {}: {e}",
            built.display(),
            out.display()
        ))
    })?;
    Ok(())
}

/// Whether `path` (which may not exist yet) is below `dir`, both as written.
fn inside(dir: &Path, path: &Path) -> bool {
    path.strip_prefix(dir).is_ok_and(|rest| {
        rest.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    })
}

/// Where floom keeps its tools and unpacked SDK.
fn cache_dir() -> Result<PathBuf, Failure> {
    if let Some(dir) = std::env::var_os("FLOOM_CACHE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("floom"));
    }
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/floom"))
        .ok_or_else(|| Failure::refused("set FLOOM_CACHE_DIR (no HOME to put the cache in)"))
}

/// Writes the bundled SDK and WIT files into the cache once per version of them;
/// returns the SDK folder (holding `floom/`) and the `wit/` folder.
fn unpack_sdk(cache: &Path) -> Result<(PathBuf, PathBuf), Failure> {
    use sha2::Digest as _;
    let mut digest = sha2::Sha256::new();
    for (path, contents) in bundled::FILES {
        digest.update(path.as_bytes());
        digest.update([0]);
        digest.update(contents.as_bytes());
    }
    let dir = cache.join(format!("sdk-{}", &hex::encode(digest.finalize())[..16]));
    let (sdk, wit) = (dir.join("sdk/python"), dir.join("wit"));
    if dir.is_dir() {
        return Ok((sdk, wit));
    }
    let failed = |e: std::io::Error| Failure::refused(format!("cannot unpack the SDK: {e}"));
    let partial = cache.join(format!(".sdk-{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    for (path, contents) in bundled::FILES {
        let file = partial.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        std::fs::write(&file, contents).map_err(failed)?;
    }
    // Whole or not at all, also with another build doing the same.
    if let Err(e) = std::fs::rename(&partial, &dir) {
        let _ = std::fs::remove_dir_all(&partial);
        if !dir.is_dir() {
            return Err(failed(e));
        }
    }
    Ok((sdk, wit))
}
