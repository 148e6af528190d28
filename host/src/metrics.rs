//! Prometheus metrics: runs by status, run durations, queue depth, active sandboxes and
//! compile-cache hits, served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label with the terminal status of a run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// succeeded, failed, timed_out or cancelled.
    pub status: String,
}

/// A label saying whether a compile was served from the cache.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabel {
    /// `hit` or `miss`.
    pub result: String,
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    runs: Family<StatusLabel, Counter>,
    duration: Histogram,
    queued: Gauge,
    running: Gauge,
    compiles: Family<CacheLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("floom");
        let runs = Family::<StatusLabel, Counter>::default();
        registry.register("runs", "Finished runs by terminal status", runs.clone());
        // 0.1 ms to ~6.5 min in factors of 4: from a tiny app to the 290 s cap.
        let duration = Histogram::new(exponential_buckets(0.0001, 4.0, 13));
        registry.register(
            "run_duration_seconds",
            "Wall-clock time of runs, from sandbox start to end",
            duration.clone(),
        );
        let queued = Gauge::default();
        registry.register(
            "queue_depth",
            "Executions waiting for a sandbox",
            queued.clone(),
        );
        let running = Gauge::default();
        registry.register(
            "active_sandboxes",
            "Executions running in a sandbox",
            running.clone(),
        );
        let compiles = Family::<CacheLabel, Counter>::default();
        registry.register(
            "compiles",
            "Component loads, by whether the compile cache had them",
            compiles.clone(),
        );
        Metrics {
            registry,
            runs,
            duration,
            queued,
            running,
            compiles,
        }
    }
}

impl Metrics {
    /// Adds the embedded store's counters: its commits and write-ahead log frames.
    pub fn register_store(&mut self, work: &crate::store::StoreWork) {
        self.registry.register(
            "store_commits",
            "Transactions the embedded store committed",
            work.commits.clone(),
        );
        self.registry.register(
            "store_wal_frames",
            "Pages the embedded store appended to its write-ahead log",
            work.wal_frames.clone(),
        );
    }

    /// Counts a finished run.
    pub fn run_finished(&self, status: &str, seconds: f64) {
        self.runs
            .get_or_create(&StatusLabel {
                status: status.to_owned(),
            })
            .inc();
        self.duration.observe(seconds);
    }

    /// Counts a component load.
    pub fn compiled(&self, from_cache: bool) {
        self.compiles
            .get_or_create(&CacheLabel {
                result: if from_cache { "hit" } else { "miss" }.to_owned(),
            })
            .inc();
    }

    /// The text exposition, with the gauges set to `queued` and `running`.
    pub fn render(&self, queued: usize, running: usize) -> String {
        self.queued.set(i64::try_from(queued).unwrap_or(i64::MAX));
        self.running.set(i64::try_from(running).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
