//! Compiles guest crates for `wasm32-wasip2` from a build script, so `cargo test` and
//! `cargo run` on a fresh clone need nothing else; and Python apps with componentize-py
//! ([`python`]), for build scripts and `floom build` alike.
//!
//! The guests are workspace members built by a nested cargo with the `guest` profile: a
//! profile of its own means the nested build takes different build-directory locks than
//! the outer one (dev, test, release or bench) and cannot deadlock on them. Two build
//! scripts building guests at once simply take turns on the nested lock.

pub mod python;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target guests are built for.
pub const TARGET: &str = "wasm32-wasip2";
/// The cargo profile guests are built with (see the workspace `Cargo.toml`).
pub const PROFILE: &str = "guest";

/// One built guest component.
#[derive(Debug, Clone)]
pub struct Guest {
    /// The cargo package name.
    pub package: String,
    /// The crate's directory.
    pub dir: PathBuf,
    /// The built component.
    pub wasm: PathBuf,
    /// The crate's `floom.toml`, if it has one.
    pub manifest: Option<PathBuf>,
}

impl Guest {
    /// An identifier for generated constants: `meeting-action-items` → `MEETING_ACTION_ITEMS`.
    pub fn const_name(&self) -> String {
        self.package.to_uppercase().replace('-', "_")
    }
}

/// Builds every guest crate found directly under the `dirs` of the workspace at `root`
/// and returns them sorted by package name. Panics with a clear message on failure, as
/// build scripts do.
pub fn build(root: &Path, dirs: &[&str]) -> Vec<Guest> {
    let mut guests: Vec<Guest> = dirs
        .iter()
        .flat_map(|dir| discover(&root.join(dir)))
        .collect();
    guests.sort_by(|a, b| a.package.cmp(&b.package));

    for path in ["sdk", "wit", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    for guest in &guests {
        println!("cargo:rerun-if-changed={}", guest.dir.display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    ensure_target();
    // The examples' floom.toml files point into the workspace's target dir.
    let target_dir = target_dir(root);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["build", "--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&target_dir);
    for guest in &guests {
        command.args(["-p", &guest.package]);
    }
    // What the outer cargo set for its own build must not leak into the nested one.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
        "__CARGO_FIX_PLZ",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the guests: {e}"));
    assert!(
        status.success(),
        "building the guest components for {TARGET} failed ({status}); the compiler output is above"
    );

    let out_dir = target_dir.join(TARGET).join(PROFILE);
    for guest in &mut guests {
        guest.wasm = out_dir.join(&guest.wasm);
        assert!(
            guest.wasm.exists(),
            "{} was not built",
            guest.wasm.display()
        );
    }
    guests
}

/// The workspace's target dir (where the examples' manifests point, and where build
/// scripts keep the Python toolchain and the Python guests they build).
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Python apps (folders with a `floom.toml` whose `[build]` names a `python` entry)
/// directly under each of `dirs` of the workspace at `root`, built into
/// `<target>/floom-python/<folder>.wasm` (skipped when nothing changed), with
/// componentize-py installed into `<target>/floom-tools`. Panics with the build's
/// message on failure, as build scripts do.
pub fn build_python(root: &Path, dirs: &[&str]) -> Vec<Guest> {
    let target = target_dir(root);
    let mut guests = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for app in entries.filter_map(Result::ok).map(|e| e.path()) {
            let manifest = app.join("floom.toml");
            let Ok(text) = std::fs::read_to_string(&manifest) else {
                continue;
            };
            let table: toml::Table = toml::from_str(&text).expect("parse floom.toml");
            let build = table.get("build").and_then(|b| b.as_table());
            let Some(entry) = build.and_then(|b| b.get("python")).and_then(|p| p.as_str()) else {
                continue;
            };
            let requirements = build
                .and_then(|b| b.get("requirements"))
                .and_then(|r| r.as_str())
                .map(|r| app.join(r));
            let name = app
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("app")
                .to_owned();
            let out = target.join("floom-python").join(format!("{name}.wasm"));
            println!("cargo:rerun-if-changed={}", app.display());
            let built = python::build_cached(
                &target.join("floom-tools"),
                &python::App {
                    entry: &app.join(entry),
                    requirements: requirements.as_deref(),
                    sdk: &root.join("sdk/python"),
                    wit: &root.join("wit"),
                    work: &target.join("floom-python").join(format!(".work-{name}")),
                    out: &out,
                },
                &mut |step| println!("cargo:warning={name}: {step}"),
            );
            if let Err(e) = built {
                panic!("building the Python app {}: {e}", app.display());
            }
            guests.push(Guest {
                package: name,
                dir: app,
                wasm: out,
                manifest: Some(manifest),
            });
        }
    }
    guests.sort_by(|a, b| a.package.cmp(&b.package));
    guests
}

/// Every crate directory under `dir`, with the file name of its component.
fn discover(dir: &Path) -> Vec<Guest> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("Cargo.toml").exists())
        .map(|dir| {
            let text = std::fs::read_to_string(dir.join("Cargo.toml")).expect("read Cargo.toml");
            let manifest: toml::Table = toml::from_str(&text).expect("parse Cargo.toml");
            let package = manifest["package"]["name"]
                .as_str()
                .expect("package.name")
                .to_owned();
            // A library (cdylib) component is named after the crate with underscores; a
            // binary keeps its dashes.
            let wasm = if dir.join("src/lib.rs").exists() {
                format!("{}.wasm", package.replace('-', "_"))
            } else {
                format!("{package}.wasm")
            };
            let manifest = Some(dir.join("floom.toml")).filter(|m| m.exists());
            Guest {
                package,
                dir,
                wasm: wasm.into(),
                manifest,
            }
        })
        .collect()
}

/// Makes sure the standard library for the guest target is installed, installing it
/// with rustup when it is not.
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = || {
        sysroot
            .as_ref()
            .is_some_and(|s| s.join("lib/rustlib").join(TARGET).exists())
    };
    if installed() {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with `rustup target add {TARGET}`");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    if !added || !installed() {
        panic!(
            "the Rust standard library for {TARGET} is missing and `rustup target add {TARGET}` \
             did not install it. Install it by hand (`rustup target add {TARGET}`, or your \
             distribution's rust-std package for {TARGET}) and run the build again."
        );
    }
}
