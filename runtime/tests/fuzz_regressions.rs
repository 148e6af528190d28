//! Replays the inputs kept under `fuzz/regressions/` (crashes the fuzzers found, and a
//! few seeds) through the same entry points as the fuzz targets, on stable Rust without
//! cargo-fuzz. The fuzzers themselves run from `scripts/fuzz.sh`.

use std::path::{Path, PathBuf};

/// Every input kept for `target`, by file name.
fn cases(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let data = std::fs::read(&path).expect("a readable case");
            (path, data)
        })
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    cases
}

/// Runs every case, naming each that panics, so one failure does not hide the others.
fn replay(target: &str, entry: fn(&[u8])) {
    let failed: Vec<String> = cases(target)
        .into_iter()
        .filter(|(_, data)| std::panic::catch_unwind(|| entry(data)).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "failing cases: {failed:#?}");
}

#[test]
fn manifest() {
    replay("manifest", floom_runtime::fuzzing::manifest);
}

#[test]
fn command_output() {
    replay("command_output", floom_runtime::fuzzing::command_output);
}
