//! The README's two commands share one build: the features Cargo resolves for each
//! dependency of `cargo run -p floom-host` are the ones `cargo test` resolves for the
//! workspace (the `floom-workspace-hack` crate asks for what only test and bench crates
//! would), so the second command does not rebuild the tree for a feature. Checked with
//! `cargo tree`, which reads the lock file and builds nothing; it merges the normal and
//! the build-script/proc-macro builds of a crate, so a difference in the latter alone is
//! not seen here. Such a difference made the test command rebuild wasmtime until the hack
//! asked for `anyhow`'s and `indexmap`'s build-side features too; to look for one, run
//! `cargo build -p floom-host -v` after `cargo test --no-run`: it should compile no
//! crate from outside the workspace.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Each package (name and version) with the features `cargo tree` resolved for it.
fn features(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--prefix", "none", "--format", "{p}|{f}"])
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("run cargo tree");
    assert!(output.status.success(), "{output:?}");
    let mut resolved: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((package, features)) = line.split_once('|') else {
            continue;
        };
        // `name v1.2.3 (path or "proc-macro")`: the name and version say which build.
        let package: Vec<&str> = package.split_whitespace().take(2).collect();
        let features = features.trim_end_matches(" (*)");
        resolved.entry(package.join(" ")).or_default().extend(
            features
                .split(',')
                .filter(|f| !f.is_empty())
                .map(String::from),
        );
    }
    resolved
}

#[test]
fn cargo_test_resolves_the_features_cargo_run_built() {
    let run = features(&["-p", "floom-host", "-e", "normal,build"]);
    let test = features(&["--workspace", "-e", "normal,build,dev"]);
    let differ: Vec<String> = run
        .iter()
        .filter_map(|(package, features)| {
            let tested = test.get(package)?;
            (tested != features).then(|| {
                let more: Vec<&String> = tested.difference(features).collect();
                format!("{package}: the tests add {more:?}")
            })
        })
        .collect();
    assert!(
        differ.is_empty(),
        "`cargo test` would rebuild these (and what depends on them) after `cargo run -p \
         floom-host`; ask for the features in workspace-hack/Cargo.toml:\n{}",
        differ.join("\n")
    );
}
