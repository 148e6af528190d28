//! Replays the publish inputs kept under `fuzz/regressions/publish/` (crashes the fuzzer
//! found, and a few seeds) through the same harness as the `publish` fuzz target: the
//! real API router, in-process. The fuzzers themselves run from `scripts/fuzz.sh`.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use floom_host::fuzzing::PublishHarness;

fn harness() -> PublishHarness {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("floom-fuzz-regressions-{}-{n}", std::process::id()));
    PublishHarness::new(dir).expect("the harness starts")
}

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions/publish")
        .join(name)
}

#[test]
fn every_kept_case_gets_a_documented_answer() {
    let dir = case("");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());

    let harness = harness();
    // Each case is checked by the harness; one that panics is named, and the others
    // still run.
    let failed: Vec<String> = cases
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("a readable case");
            std::panic::catch_unwind(AssertUnwindSafe(|| harness.publish(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "failing cases: {failed:#?}");
}

/// The harness reaches past the multipart and manifest checks into compiling, probing
/// and storing: the seed with a real (tiny) command component publishes.
#[test]
fn the_valid_seed_publishes() {
    let harness = harness();
    let data = std::fs::read(case("seed-valid-command-app")).expect("the seed");
    assert_eq!(harness.publish(&data), StatusCode::CREATED);
    assert_eq!(harness.publish(&data), StatusCode::OK);
}
