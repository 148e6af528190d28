//! SSE fan-out: many live subscribers of one execution each get every chunk, in order,
//! and the end; and how long a chunk takes from the guest's emit to each subscriber.
//!
//! `cargo test --test fanout -- --nocapture` (part of the suite: 500 subscribers) and,
//! for the figure in BENCHMARKS.md, 10,000 subscribers on the release build:
//! `FLOOM_BIN=$PWD/target/release/floom cargo test --test fanout -- --ignored --nocapture`.
//!
//! The subscribers are raw HTTP/1.1 connections in this process, so the latency includes
//! this client's own work on the same two cores: an upper bound on the server's share.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use support::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Chunks emitted after every subscriber was following that are measured.
const MEASURED_CHUNKS: usize = 10;
/// How far apart the guest emits its chunks.
const TICK_MS: u64 = 200;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

/// What one subscriber saw: each chunk's number with its arrival time and the guest's
/// emit time (unix µs), and the terminal event's kind.
#[derive(Default)]
struct Seen {
    chunks: Vec<(u64, u64, u64)>,
    end: Option<String>,
}

/// Takes the next HTTP/1.1 chunk of a `Transfer-Encoding: chunked` body out of `raw`.
fn next_body_chunk(raw: &mut Vec<u8>) -> Option<Vec<u8>> {
    let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
    let size_text = std::str::from_utf8(&raw[..line_end]).expect("chunk size is text");
    let size = usize::from_str_radix(size_text.trim(), 16).expect("chunk size is hex");
    let start = line_end + 2;
    if raw.len() < start + size + 2 {
        return None;
    }
    let body = raw[start..start + size].to_vec();
    raw.drain(..start + size + 2);
    Some(body)
}

/// The end of a chunked HTTP/1.1 body: the stream of events is over.
const LAST_CHUNK: &[u8] = b"\r\n0\r\n\r\n";

/// Follows execution `id`'s events over one connection until its stream ends; `ready`
/// counts the subscribers whose stream has begun; `permit` is let go then.
///
/// While it follows, it only stamps and keeps what each read brought: this test binary
/// is not optimised, and parsing 10,000 streams as they arrive would be the client's
/// latency, not the server's. They are parsed once every stream is over.
async fn subscribe(
    address: String,
    id: String,
    ready: Arc<AtomicUsize>,
    permit: OwnedSemaphorePermit,
) -> Reads {
    let mut permit = Some(permit);
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    let request = format!(
        "GET /api/executions/{id}/events HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
        support::TOKEN
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut reads = Reads::new();
    let mut buffer = vec![0u8; 16 << 10];
    let mut tail = Vec::with_capacity(2 * LAST_CHUNK.len());
    loop {
        let read = stream.read(&mut buffer).await.expect("read");
        let arrived = now_us();
        assert!(read > 0, "the connection closed before the stream ended");
        reads.push((arrived, buffer[..read].to_vec()));
        if permit.take().is_some() {
            // The response has begun (its status is checked once it is over).
            ready.fetch_add(1, Ordering::AcqRel);
        }
        // The last chunk may come split over two reads.
        tail.extend_from_slice(&buffer[read.saturating_sub(LAST_CHUNK.len())..read]);
        tail.drain(..tail.len().saturating_sub(LAST_CHUNK.len()));
        if tail == LAST_CHUNK {
            return reads;
        }
    }
}

/// What one connection's reads brought, each with its arrival time (unix µs).
type Reads = Vec<(u64, Vec<u8>)>;

/// What a subscriber's reads said.
fn parse(reads: Reads) -> Seen {
    let mut raw = Vec::new();
    let mut headers_done = false;
    let mut body = String::new();
    let mut seen = Seen::default();
    for (arrived, bytes) in reads {
        raw.extend_from_slice(&bytes);
        if !headers_done {
            let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            raw.drain(..end + 4);
            headers_done = true;
        }
        while let Some(piece) = next_body_chunk(&mut raw) {
            body.push_str(std::str::from_utf8(&piece).expect("UTF-8 events"));
        }
        while let Some(end) = body.find("\n\n") {
            let event: String = body.drain(..end + 2).collect();
            let field = |name: &str| {
                event
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::to_owned)
            };
            let (Some(kind), Some(data)) = (field("event: "), field("data: ")) else {
                continue; // a keep-alive comment
            };
            match kind.as_str() {
                "chunk" => {
                    let data: Value = serde_json::from_str(&data).expect("chunk JSON");
                    let tick = &data["data"];
                    let (Some(i), Some(at)) = (tick["i"].as_u64(), tick["at_us"].as_u64()) else {
                        panic!("a chunk without its stamp: {data}");
                    };
                    seen.chunks.push((i, arrived, at));
                }
                "end" | "error" => seen.end = Some(kind),
                _ => {}
            }
        }
    }
    seen
}

/// Latencies in ms, sorted, of every chunk emitted after `since` (unix µs) as each
/// subscriber saw it.
fn latencies(seen: &[Seen], since: u64) -> Vec<f64> {
    let mut all: Vec<f64> = seen
        .iter()
        .flat_map(|s| s.chunks.iter())
        .filter(|(_, _, at)| *at > since)
        .map(|(_, arrived, at)| arrived.saturating_sub(*at) as f64 / 1000.0)
        .collect();
    all.sort_by(f64::total_cmp);
    all
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Starts a ticking execution, follows it with `subscribers` connections, waits for
/// [`MEASURED_CHUNKS`] chunks emitted once all follow, cancels it, and checks every
/// subscriber saw every chunk from its first on, in order, and the end. Returns the
/// latencies (ms, sorted).
async fn fan_out(subscribers: usize) -> Vec<f64> {
    let connections = (subscribers + 100).to_string();
    let server = Server::start(&["--max-connections", &connections, "--runs-per-minute", "0"]);
    server.publish_misbehave("ticker", "").await;
    let run = server
        .start_run(
            "/api/apps/ticker/actions/tick/run",
            json!({ "count": 1000, "ms": TICK_MS }),
        )
        .await;
    let id = run["execution_id"].as_str().expect("an id").to_owned();
    let address = server.base.trim_start_matches("http://").to_owned();

    let ready = Arc::new(AtomicUsize::new(0));
    // Connect a few hundred at a time: a burst of 10,000 SYNs overflows the backlog.
    let connecting = Arc::new(Semaphore::new(256));
    let mut tasks = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let permit = connecting.clone().acquire_owned().await.expect("semaphore");
        let (address, id, ready) = (address.clone(), id.clone(), ready.clone());
        tasks.push(tokio::spawn(subscribe(address, id, ready, permit)));
    }
    let began = Instant::now();
    while ready.load(Ordering::Acquire) < subscribers {
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "{} of {subscribers} subscribers following",
            ready.load(Ordering::Acquire)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_following = now_us();
    let measuring = Duration::from_millis(TICK_MS * (MEASURED_CHUNKS as u64 + 1));
    tokio::time::sleep(measuring + Duration::from_millis(500)).await;
    let cancelled = server
        .post(&format!("/api/executions/{id}/cancel"))
        .bearer_auth(support::TOKEN)
        .send()
        .await
        .unwrap();
    assert!(cancelled.status().is_success(), "{}", cancelled.status());

    let mut reads = Vec::with_capacity(subscribers);
    for task in tasks {
        reads.push(
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("every subscriber gets the end")
                .expect("subscriber task"),
        );
    }
    // Parsed only now: parsing one finished stream while others still read would put
    // this client's work into their arrival times.
    let seen: Vec<Seen> = reads.into_iter().map(parse).collect();
    for s in &seen {
        assert_eq!(s.end.as_deref(), Some("error"), "ended by the cancel");
        let numbers: Vec<u64> = s.chunks.iter().map(|c| c.0).collect();
        let first = numbers.first().copied().unwrap_or(0);
        let expected: Vec<u64> = (first..first + numbers.len() as u64).collect();
        assert_eq!(numbers, expected, "every chunk, in order");
        // The replay gives a late subscriber the chunks before it came, so all start at 0.
        assert_eq!(first, 0, "the replay starts at the first chunk");
    }
    let latencies = latencies(&seen, all_following);
    assert!(
        latencies.len() >= subscribers * MEASURED_CHUNKS,
        "{} chunks measured",
        latencies.len()
    );
    println!(
        "fan-out: {subscribers} subscribers, {} chunk deliveries measured: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_live_subscriber_gets_every_chunk_in_order_and_the_end() {
    fan_out(500).await;
}

/// The figure for BENCHMARKS.md (and `scripts/bench_http.py`): 10,000 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture, FLOOM_BIN=$PWD/target/release/floom"]
async fn ten_thousand_live_subscribers() {
    fan_out(10_000).await;
}
