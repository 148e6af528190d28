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

/// The harness reaches every stage of a publish: the seed with a real (tiny) command
/// component compiles, starts and is stored; a component over the limit is refused.
///
/// The seed's component is this WAT (`wasm-tools parse`), 186 bytes:
///
/// ```text
/// (component
///   (core module $m (func (export "run") (result i32) (i32.const 0)))
///   (core instance $i (instantiate $m))
///   (func $run (result (result)) (canon lift (core func $i "run")))
///   (instance $run-inst (export "run" (func $run)))
///   (export "wasi:cli/run@0.2.0" (instance $run-inst)))
/// ```
#[test]
fn the_seeds_reach_each_stage() {
    let harness = harness();
    let publish = |name: &str| {
        let data = std::fs::read(case(name)).expect("the seed");
        harness.publish(&data)
    };
    assert_eq!(publish("seed-valid-command-app"), StatusCode::CREATED);
    assert_eq!(publish("seed-valid-command-app"), StatusCode::OK);
    assert_eq!(
        publish("seed-component-over-the-limit"),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}
