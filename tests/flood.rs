//! A guest writing 1 GiB to stdout or through the SDK must not grow the host's memory.
//! One test in its own binary, so the process's peak RSS is this test's alone.

use std::time::Duration;

use floom_runtime::Status;
use floom_tests::{compile, engine, guests, manifest, run};
use serde_json::json;

/// Peak resident set size of this process, from `/proc/self/status`.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number");
    kib * 1024
}

#[tokio::test]
async fn a_gigabyte_of_output_does_not_grow_host_memory() {
    let engine = engine();
    let cmd = compile(
        &engine,
        manifest("misbehave-cmd", &["flood", "flood-stderr"], ""),
        guests::MISBEHAVE_CMD,
    );
    let sdk = compile(
        &engine,
        manifest("misbehave", &["flood-stdout"], ""),
        guests::MISBEHAVE,
    );
    let timeout = Some(Duration::from_secs(120));
    // Warm up: one small run of each, so allocator pools and the like are counted in the
    // baseline.
    run(&cmd, "flood", json!({ "bytes": 1 << 20 }), timeout).await;
    run(&sdk, "flood-stdout", json!({ "count": 1024 }), timeout).await;
    let baseline = peak_rss();

    let gib: u64 = 1 << 30;
    let ran = run(&cmd, "flood", json!({ "bytes": gib }), timeout).await;
    assert_eq!(
        ran.outcome.status,
        Status::Succeeded,
        "{:?}",
        ran.outcome.error
    );
    // The result marker after the flood is still found.
    assert_eq!(ran.output(), json!({ "written": gib }));
    assert!(ran.outcome.usage.stdout_bytes > gib);
    // 10,000 line chunks, then the cap's notice.
    assert_eq!(ran.chunks().len(), 10_000);

    let ran = run(&cmd, "flood-stderr", json!({ "bytes": gib }), timeout).await;
    assert_eq!(ran.outcome.status, Status::Succeeded);
    assert!(ran.logs().iter().any(|l| l.contains("capture cap")));

    let ran = run(&sdk, "flood-stdout", json!({ "count": 1 << 20 }), timeout).await;
    assert_eq!(
        ran.outcome.status,
        Status::Succeeded,
        "{:?}",
        ran.outcome.error
    );
    assert!(ran.outcome.usage.stdout_bytes >= gib);

    let grown = peak_rss().saturating_sub(baseline);
    assert!(
        grown < 128 << 20,
        "peak RSS grew by {} MiB over 3 GiB of guest output",
        grown >> 20
    );
}
