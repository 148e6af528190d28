//! An SDK app whose actions each misbehave in one way. The tests run them through the
//! runtime and check that each ends in the right status and error code, and that the
//! host stays unharmed.
//!
//! Inputs are optional numbers: `bytes`, `ms`, `count`, `port`, `mib`; and `names` for
//! `secret`.

use std::hint::black_box;
use std::io::Write;

use floom_sdk::{App, Context, Error};
use serde_json::{Value, json};

struct Misbehave;

impl App for Misbehave {
    type Input = Value;
    type Output = Value;

    fn run(ctx: &Context, input: Value) -> Result<Value, Error> {
        let num =
            |key: &str, default: u64| input.get(key).and_then(Value::as_u64).unwrap_or(default);
        match ctx.action() {
            "ok" => Ok(json!({ "ok": true, "input": input })),
            "spin" => spin(),
            "alloc" => alloc(),
            "recurse" => Ok(json!({ "depth": recurse(num("start", 1)) })),
            "recurse-big" => Ok(json!({ "depth": recurse_big(black_box(1)) })),
            "panic" => panic!("boom: the guest panicked on purpose"),
            "app-error" => Err(Error::new("bad_thing", "it went wrong on purpose")),
            // An error whose code and message are `bytes` long: past every output cap.
            "huge-error" => {
                let size = num("bytes", 20 << 20) as usize;
                Err(Error::new("c".repeat(size), "m".repeat(size)))
            }
            "huge-output" => Ok(Value::String("x".repeat(num("bytes", 2 << 20) as usize))),
            "emit" => {
                for i in 0..num("count", 3) {
                    floom_sdk::emit(&json!({ "i": i }))?;
                    std::thread::sleep(std::time::Duration::from_millis(num("ms", 0)));
                }
                Ok(json!({ "emitted": num("count", 3) }))
            }
            // `count` chunks `ms` apart, each stamped with the wall clock when emitted
            // (unix microseconds): how long a chunk takes to reach its subscribers.
            "tick" => {
                for i in 0..num("count", 10) {
                    let at_us = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_micros() as u64);
                    floom_sdk::emit(&json!({ "i": i, "at_us": at_us }))?;
                    std::thread::sleep(std::time::Duration::from_millis(num("ms", 100)));
                }
                Ok(json!({ "ticks": num("count", 10) }))
            }
            // `count` chunks of `bytes` each (a JSON string), as fast as the host takes
            // them; counts the ones refused past the event caps.
            "chatty" => {
                let chunk = "x".repeat(num("bytes", (64 << 10) - 2) as usize);
                let mut refused = 0;
                for _ in 0..num("count", 10_000) {
                    refused += u64::from(floom_sdk::emit(&chunk).is_err());
                }
                Ok(json!({ "refused": refused }))
            }
            "big-chunk" => {
                let refused = floom_sdk::emit(&"x".repeat(num("bytes", 100 << 10) as usize)).err();
                Ok(json!({ "refused": refused.map(|e| e.to_string()) }))
            }
            "log" => {
                floom_sdk::info!("an info line");
                floom_sdk::warn!("a warning");
                println!("to stdout");
                eprintln!("to stderr");
                Ok(json!({ "logged": true }))
            }
            "flood-stdout" => {
                let line = [b'x'; 1023];
                let mut out = std::io::stdout().lock();
                for _ in 0..num("count", 1 << 20) {
                    out.write_all(&line)
                        .map_err(|e| Error::new("write", e.to_string()))?;
                    out.write_all(b"\n")
                        .map_err(|e| Error::new("write", e.to_string()))?;
                }
                Ok(json!({ "flooded": true }))
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(num("ms", 1000)));
                Ok(json!({ "slept_ms": num("ms", 1000) }))
            }
            "hold" => {
                // Holds `mib` MiB of touched memory while it sleeps: density measurements.
                let held = vec![1u8; (num("mib", 0) << 20) as usize];
                std::thread::sleep(std::time::Duration::from_millis(num("ms", 1000)));
                Ok(json!({ "held_bytes": black_box(held).len() }))
            }
            "files" => Ok(files()),
            "env" => Ok(json!({
                "vars": std::env::vars().collect::<Vec<_>>(),
                "args": std::env::args().collect::<Vec<_>>(),
            })),
            "network" => Ok(network(num("port", 80))),
            "secret" => {
                let names: Vec<String> = input
                    .get("names")
                    .and_then(|n| serde_json::from_value(n.clone()).ok())
                    .unwrap_or_default();
                let found: serde_json::Map<String, Value> = names
                    .into_iter()
                    .map(|name| {
                        let value = floom_sdk::secret(&name).map_or(Value::Null, Value::String);
                        (name, value)
                    })
                    .collect();
                Ok(Value::Object(found))
            }
            "fetch" => fetch(&input),
            other => Err(Error::new("unknown_action", other.to_owned())),
        }
    }
}

floom_sdk::export!(Misbehave);

/// Fetches `url` `times` times (default 1) with the SDK's client and reports the last
/// response; a refusal fails the run with the SDK's error code.
fn fetch(input: &Value) -> Result<Value, Error> {
    let url = input["url"].as_str().unwrap_or_default();
    let times = input["times"].as_u64().unwrap_or(1);
    let mut last = Value::Null;
    for _ in 0..times {
        let mut request =
            floom_sdk::http::Request::new(input["method"].as_str().unwrap_or("GET"), url);
        for pair in input["headers"].as_array().into_iter().flatten() {
            request = request.header(
                pair[0].as_str().unwrap_or(""),
                pair[1].as_str().unwrap_or(""),
            );
        }
        if let Some(body) = input["body"].as_str() {
            request = request.body(body.as_bytes());
        }
        let response = request.send()?;
        let status = response.status();
        let body = response.bytes()?;
        last = json!({
            "status": status,
            "length": body.len(),
            "body": String::from_utf8_lossy(&body[..body.len().min(1000)]),
        });
    }
    Ok(last)
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn alloc() -> Result<Value, Error> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the memory is really used.
        blocks.push(vec![1u8; 1 << 20]);
        black_box(&blocks);
    }
}

/// Small frames: the wasm stack itself overflows.
fn recurse(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        recurse(black_box(n.wrapping_add(1))).wrapping_add(n)
    }
}

/// Big frames live in linear memory (Rust's shadow stack), which runs out first.
#[allow(unconditional_recursion)]
fn recurse_big(n: u64) -> u64 {
    let frame = black_box([n; 16]);
    recurse_big(black_box(frame[3] + 1)) + frame[0]
}

fn files() -> Value {
    let attempt = |r: std::io::Result<String>| match r {
        Ok(s) => json!({ "ok": s }),
        Err(e) => json!({ "err": e.to_string() }),
    };
    json!({
        "read_passwd": attempt(std::fs::read_to_string("/etc/passwd")),
        "list_root": attempt(std::fs::read_dir("/").map(|d| format!("{} entries", d.count()))),
        "list_cwd": attempt(std::fs::read_dir(".").map(|d| format!("{} entries", d.count()))),
        "create": attempt(std::fs::write("floom-escape.txt", "x").map(|()| "created".into())),
    })
}

fn network(port: u64) -> Value {
    use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
    let attempt = |r: std::io::Result<String>| match r {
        Ok(s) => json!({ "ok": s }),
        Err(e) => json!({ "err": e.to_string() }),
    };
    json!({
        "tcp": attempt(TcpStream::connect(format!("127.0.0.1:{port}")).map(|_| "connected".into())),
        "udp": attempt(UdpSocket::bind("127.0.0.1:0").map(|_| "bound".into())),
        "dns": attempt(("localhost", 80).to_socket_addrs().map(|a| format!("{:?}", a.collect::<Vec<_>>()))),
    })
}
