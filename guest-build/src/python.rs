//! Python apps: componentize-py, installed on first use into a cache folder (a venv with
//! the pinned version), builds an app's entry module, the Floom Python SDK and its
//! pure-Python requirements into an SDK-world component.
//!
//! Used by `floom build` and by the build scripts that bundle the Python examples, so both
//! build exactly the same way.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The componentize-py release every build uses.
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// The CPython version componentize-py bundles: requirements are resolved for it.
pub const BUNDLED_PYTHON: &str = "3.14";
/// The world Python apps are built for (the `floom:app` package in `wit/`).
pub const WORLD: &str = "python-app";

/// Why a Python build failed, in words for the person who ran it.
#[derive(Debug)]
pub struct BuildError(pub String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

fn fail(message: impl Into<String>) -> BuildError {
    BuildError(message.into())
}

/// componentize-py in its own venv.
#[derive(Debug, Clone)]
pub struct Toolchain {
    venv: PathBuf,
}

impl Toolchain {
    /// The pinned componentize-py under `cache` (`<cache>/componentize-py-<version>`),
    /// installed there with `python3 -m venv` and pip when it is not yet. `say` is told
    /// each step that takes a while.
    pub fn ensure(cache: &Path, say: &mut dyn FnMut(&str)) -> Result<Self, BuildError> {
        let venv = cache.join(format!("componentize-py-{COMPONENTIZE_PY}"));
        let toolchain = Toolchain { venv };
        // Written last: a venv without it is an install that did not finish.
        let installed = toolchain.venv.join(".floom-installed");
        if installed.exists() {
            return Ok(toolchain);
        }
        // Two builds (two build scripts, two `floom build`s) take turns installing.
        std::fs::create_dir_all(cache)
            .map_err(|e| fail(format!("cannot create {}: {e}", cache.display())))?;
        let _turn = lock(&cache.join(".install.lock"))?;
        if installed.exists() {
            return Ok(toolchain);
        }
        let python = python3()?;
        say(&format!(
            "installing componentize-py {COMPONENTIZE_PY} into {} (once)",
            toolchain.venv.display()
        ));
        let _ = std::fs::remove_dir_all(&toolchain.venv);
        std::fs::create_dir_all(cache)
            .map_err(|e| fail(format!("cannot create {}: {e}", cache.display())))?;
        run(
            Command::new(&python)
                .arg("-m")
                .arg("venv")
                .arg(&toolchain.venv),
            "python3 -m venv",
            "Python's venv module is missing: install it (Debian: apt install python3-venv)",
        )?;
        run(
            Command::new(toolchain.bin("pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("componentize-py=={COMPONENTIZE_PY}")),
            "pip install componentize-py",
            "pip could not install componentize-py from PyPI: check the network or the pip \
             configuration (PIP_INDEX_URL)",
        )?;
        std::fs::write(&installed, COMPONENTIZE_PY)
            .map_err(|e| fail(format!("cannot write {}: {e}", installed.display())))?;
        Ok(toolchain)
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.venv.join("bin").join(name)
    }
}

/// One Python app to build.
#[derive(Debug, Clone)]
pub struct App<'a> {
    /// The entry module (`[build] python`); its folder is the source root.
    pub entry: &'a Path,
    /// A pip requirements file of pure-Python packages (`[build] requirements`).
    pub requirements: Option<&'a Path>,
    /// The Floom Python SDK (the folder holding the `floom` package).
    pub sdk: &'a Path,
    /// The `wit/` folder (the `floom:app` package and its WASI dependencies).
    pub wit: &'a Path,
    /// Scratch space for this build (generated entry module, installed packages).
    pub work: &'a Path,
    /// Where the component goes.
    pub out: &'a Path,
}

/// Builds `app` with `toolchain`. `say` is told each step.
pub fn build(
    toolchain: &Toolchain,
    app: &App<'_>,
    say: &mut dyn FnMut(&str),
) -> Result<(), BuildError> {
    let module = app
        .entry
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| app.entry.extension().is_some_and(|e| e == "py") && is_identifier(s))
        .ok_or_else(|| {
            fail(format!(
                "{} must be a Python file whose name is a module name (like app.py)",
                app.entry.display()
            ))
        })?;
    let source_root = app.entry.parent().unwrap_or(Path::new("."));
    if !app.entry.is_file() {
        return Err(fail(format!("{} does not exist", app.entry.display())));
    }
    let _ = std::fs::remove_dir_all(app.work);
    let entry_dir = app.work.join("entry");
    std::fs::create_dir_all(&entry_dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", entry_dir.display())))?;
    // componentize-py wants a module exporting the world's `Handler`: a two-line one
    // that imports the app (registering its actions) and the SDK's dispatcher.
    std::fs::write(
        entry_dir.join("floom_main.py"),
        format!(
            "import sys\n\n# Keeps __pycache__ folders out of the app's and the SDK's sources.\n\
             sys.dont_write_bytecode = True\n\
             import {module}  # noqa: E402,F401 (registers the actions)\n\
             from floom._export import Handler  # noqa: E402,F401\n"
        ),
    )
    .map_err(|e| fail(format!("cannot write the entry module: {e}")))?;
    let mut paths = vec![entry_dir, app.sdk.to_owned(), source_root.to_owned()];
    if let Some(requirements) = app.requirements {
        let site = app.work.join("site-packages");
        say(&format!("installing {}", requirements.display()));
        run(
            Command::new(toolchain.bin("pip"))
                .args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--target",
                ])
                .arg(&site)
                .arg("-r")
                .arg(requirements),
            "pip install -r",
            "pip could not install the requirements (is each one on PyPI, and pure Python?)",
        )?;
        refuse_native(&site)?;
        paths.push(site);
    }
    if let Some(parent) = app.out.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
    }
    say(&format!(
        "building {} with componentize-py {COMPONENTIZE_PY} (about 15 s)",
        app.entry.display()
    ));
    let mut command = Command::new(toolchain.bin("componentize-py"));
    command
        .arg("-d")
        .arg(app.wit)
        .args(["-w", WORLD, "componentize"]);
    for path in &paths {
        command.arg("-p").arg(path);
    }
    command.arg("floom_main").arg("-o").arg(app.out);
    run(
        &mut command,
        "componentize-py",
        "componentize-py could not build the app: its message is above",
    )?;
    Ok(())
}

/// Like [`build`], skipped when `app.out` was built from exactly these inputs (its
/// sources, requirements, the SDK, the WIT files and the toolchain version): build
/// scripts run often, and a Python build takes seconds. Returns whether it built.
pub fn build_cached(
    cache: &Path,
    app: &App<'_>,
    say: &mut dyn FnMut(&str),
) -> Result<bool, BuildError> {
    let key = inputs_key(app);
    let stamp = app.out.with_extension("inputs");
    if let Some(parent) = app.out.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
    }
    // Build scripts of several crates build the same apps at once: one builds, the
    // others wait and find it done.
    let _turn = lock(&app.out.with_extension("lock"))?;
    if app.out.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|k| k == key) {
        return Ok(false);
    }
    let toolchain = Toolchain::ensure(cache, say)?;
    build(&toolchain, app, say)?;
    std::fs::write(&stamp, key)
        .map_err(|e| fail(format!("cannot write {}: {e}", stamp.display())))?;
    Ok(true)
}

/// A digest of everything a build reads.
fn inputs_key(app: &App<'_>) -> String {
    use sha2::Digest as _;
    let mut files = Vec::new();
    let source_root = app.entry.parent().unwrap_or(Path::new("."));
    for dir in [source_root, app.sdk, app.wit] {
        python_files(dir, &mut files);
    }
    files.extend(app.requirements.map(Path::to_owned));
    files.sort();
    let mut digest = sha2::Sha256::new();
    digest.update(format!(
        "{COMPONENTIZE_PY} {WORLD} {}\n",
        app.entry.display()
    ));
    for file in files {
        digest.update(file.display().to_string());
        digest.update(std::fs::read(&file).unwrap_or_default());
    }
    format!("{:x}", digest.finalize())
}

/// The `.py`, `.wit` and `.txt` files below `dir`, skipping hidden folders and
/// `build/` (where components go).
fn python_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if !name.starts_with('.') && name != "build" && name != "__pycache__" {
                python_files(&path, files);
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "py" || e == "wit" || e == "txt")
        {
            files.push(path);
        }
    }
}

/// Refuses installed packages that carry native code (a WebAssembly build of CPython
/// cannot load it), naming each.
fn refuse_native(site: &Path) -> Result<(), BuildError> {
    let mut native = Vec::new();
    let Ok(entries) = std::fs::read_dir(site) else {
        return Ok(());
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(package) = name.strip_suffix(".dist-info") else {
            continue;
        };
        let record = std::fs::read_to_string(entry.path().join("RECORD")).unwrap_or_default();
        let has_native = record.lines().any(|line| {
            let file = line.split(',').next().unwrap_or_default();
            [".so", ".pyd", ".dylib"]
                .iter()
                .any(|ext| file.ends_with(ext) || file.contains(&format!("{ext}.")))
        });
        if has_native {
            // `name-1.2.3` → `name`.
            let package = package.rsplit_once('-').map_or(package, |(name, _)| name);
            native.push(package.to_owned());
        }
    }
    if native.is_empty() {
        return Ok(());
    }
    native.sort();
    Err(fail(format!(
        "{} need{} native code, which a WebAssembly Python cannot load: only pure-Python \
         packages work (look for a pure-Python alternative)",
        native.join(", "),
        if native.len() == 1 { "s" } else { "" }
    )))
}

/// An exclusive lock on `path` (created if missing), held until dropped.
fn lock(path: &Path) -> Result<std::fs::File, BuildError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| fail(format!("cannot open {}: {e}", path.display())))?;
    file.lock()
        .map_err(|e| fail(format!("cannot lock {}: {e}", path.display())))?;
    Ok(file)
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The Python 3 to make the venv with.
fn python3() -> Result<PathBuf, BuildError> {
    let python = std::env::var_os("PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    match Command::new(&python).arg("--version").output() {
        Ok(output) if output.status.success() => Ok(python),
        _ => Err(fail(format!(
            "Python 3 was not found as {}: install it (Debian: apt install python3 \
             python3-venv), or point PYTHON at one",
            python.display()
        ))),
    }
}

/// Runs `command`, turning a failure into `advice` with what the command printed.
fn run(command: &mut Command, what: &str, advice: &str) -> Result<Output, BuildError> {
    let output = command
        .output()
        .map_err(|e| fail(format!("cannot run {what}: {e}. {advice}")))?;
    if output.status.success() {
        return Ok(output);
    }
    let printed = String::from_utf8_lossy(&output.stderr);
    let printed = printed.trim();
    let tail: Vec<&str> = printed.lines().rev().take(20).collect();
    Err(fail(format!(
        "{what} failed ({}): {advice}\n{}",
        output.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_packages_are_named() {
        let site = std::env::temp_dir().join(format!("floom-site-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&site);
        for (dist, file) in [
            (
                "fastthing-1.0.dist-info",
                "fastthing/_speedups.cpython-311-x86_64-linux-gnu.so,sha256=x,1",
            ),
            ("plain-2.3.dist-info", "plain/__init__.py,sha256=x,1"),
        ] {
            std::fs::create_dir_all(site.join(dist)).unwrap();
            std::fs::write(site.join(dist).join("RECORD"), file).unwrap();
        }
        let err = refuse_native(&site).unwrap_err().to_string();
        assert!(err.starts_with("fastthing needs native code"), "{err}");
        assert!(!err.contains("plain"), "{err}");
        std::fs::remove_dir_all(&site).unwrap();
    }

    #[test]
    fn module_names() {
        assert!(is_identifier("app"));
        assert!(is_identifier("_my_app2"));
        assert!(!is_identifier("my-app"));
        assert!(!is_identifier("2app"));
    }
}
