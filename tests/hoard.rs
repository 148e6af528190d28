//! A guest hoarding host memory through `wasi:http` (unsent requests with full bodies,
//! huge header values, huge request strings) must not grow the host's memory past its
//! budget. One test in its own binary, so the process's RSS is this test's alone.

use std::time::Duration;

use floom_runtime::{Caps, Status};
use floom_tests::{compile, engine, guests, manifest, run};
use serde_json::json;

/// A `/proc/self/status` field, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a number");
    kib << 10
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoarding_through_wasi_http_does_not_grow_host_memory() {
    let engine = engine();
    let app = compile(
        &engine,
        manifest(
            "http-hoard",
            &["bodies", "fields", "strings"],
            "[network]\nallowed_hosts = [\"example.com\"]",
        ),
        guests::HTTP_HOARD,
    );
    let timeout = Some(Duration::from_secs(60));
    let attacks = [
        ("bodies", json!({ "requests": 4090, "bytes": 1 << 20 })),
        ("fields", json!({ "count": 4090, "bytes": 48 << 10 })),
        ("strings", json!({ "count": 4090, "bytes": 1 << 20 })),
    ];
    // Warm up: one run of each, so the pool slots, fiber stacks and allocator arenas the
    // runs use are in the baseline.
    for (action, input) in &attacks {
        run(&app, action, input.clone(), timeout).await;
    }
    let baseline = status_bytes("VmRSS:");
    // Reset the peak (VmHWM) to the current RSS (Linux 4.0+).
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");

    // Two of each at once, round after round; the RSS after each round shows whether
    // what runs held is given back.
    let mut after_rounds = Vec::new();
    for _ in 0..ROUNDS {
        for &(action, ref input) in &attacks {
            let runs = (0..2).map(|_| {
                let app = app.clone();
                let input = input.clone();
                tokio::spawn(async move { run(&app, action, input, timeout).await })
            });
            for ran in join_all(runs).await {
                assert_eq!(ran.outcome.status, Status::Failed, "{action}");
                assert_eq!(ran.code(), "memory_limit", "{action}");
            }
        }
        after_rounds.push(status_bytes("VmRSS:"));
    }
    let peak = status_bytes("VmHWM:");
    let after = status_bytes("VmRSS:");
    let budget = Caps::default().http_memory_bytes;
    let (first, second) = after_rounds.split_at(ROUNDS / 2);
    let max = |rss: &[u64]| rss.iter().copied().max().unwrap_or(0);
    eprintln!(
        "RSS baseline {:.1} MiB, peak {:.1} MiB (+{:.1}), after {:.1} MiB (+{:.1}); \
         highest after a round: first half {:.1} MiB, second half {:.1} MiB; \
         budget {:.0} MiB per run",
        mib(baseline),
        mib(peak),
        mib(peak.saturating_sub(baseline)),
        mib(after),
        mib(after.saturating_sub(baseline)),
        mib(max(first)),
        mib(max(second)),
        mib(budget),
    );
    // Two runs at once may each hold their budget, plus what each guest keeps in its own
    // linear memory (the hoard's buffers, a few MiB) and allocator slack. Before the
    // budget, one `bodies` run alone held 4 GB.
    let bound = 2 * budget + (32 << 20);
    assert!(
        peak.saturating_sub(baseline) < bound,
        "peak grew {:.1} MiB, over {:.1} MiB",
        mib(peak - baseline),
        mib(bound)
    );
    // glibc keeps much of what the runs freed in its per-thread arenas, and pool slots
    // keep up to 2 MiB of touched pages each (measured: about +50 MiB after the first
    // rounds, then flat). What matters is that more runs do not hold more: nothing is
    // left behind per run.
    assert!(
        max(second) < max(first) + (16 << 20),
        "RSS kept growing: {:.1} MiB, then {:.1} MiB",
        mib(max(first)),
        mib(max(second))
    );
}

/// Rounds of attacks (each: two of every attack at once).
const ROUNDS: usize = 16;

/// Awaits every task, in order.
async fn join_all<T: Send + 'static>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        out.push(task.await.expect("task"));
    }
    out
}
