//! A command app whose behaviour is picked by `FLOOM_ACTION`, to test how the runtime
//! treats a plain `wasi:cli/command` program: stdin, stdout lines, the result marker,
//! exit codes, floods and the environment.

use std::hint::black_box;
use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let args: serde_json::Value = serde_json::from_str(&input).unwrap_or_default();
    let num = |key: &str, default: u64| args.get(key).and_then(|v| v.as_u64()).unwrap_or(default);
    let action = std::env::var("FLOOM_ACTION").unwrap_or_default();
    let mut out = std::io::stdout().lock();
    match action.as_str() {
        "echo" => {
            println!("got {} bytes", input.len());
            println!("__FLOOM_RESULT__{input}");
        }
        "plain" => {
            println!("hello");
            println!("world");
        }
        "json" => println!("{{\n  \"multi\": [1, 2,\n 3]\n}}"),
        "exit" => {
            println!("about to fail");
            eprintln!("something went wrong");
            return ExitCode::from(3);
        }
        "lines" => {
            for i in 0..num("count", 3) {
                println!("line {i}");
                std::thread::sleep(std::time::Duration::from_millis(num("ms", 0)));
            }
            println!("__FLOOM_RESULT__{{\"lines\":{}}}", num("count", 3));
        }
        "flood" | "flood-stderr" => {
            // 1 GiB by default, in 64 KiB writes of 1 KiB lines.
            let total = num("bytes", 1 << 30);
            let mut block = Vec::with_capacity(64 << 10);
            while block.len() < 64 << 10 {
                block.extend_from_slice(&[b'x'; 1023]);
                block.push(b'\n');
            }
            let mut written = 0;
            while written < total {
                let result = if action == "flood" {
                    out.write_all(&block)
                } else {
                    std::io::stderr().write_all(&block)
                };
                if result.is_err() {
                    return ExitCode::from(4);
                }
                written += block.len() as u64;
            }
            println!("\n__FLOOM_RESULT__{{\"written\":{written}}}");
        }
        "write-unchecked" => {
            // Raw `output-stream.write` calls of `bytes` each (64 KiB lines), never asking
            // `check-write` first: every toolchain keeps that contract, a hostile guest
            // need not.
            let stdout = wasip2::cli::stdout::get_stdout();
            let mut block = Vec::new();
            while (block.len() as u64) < num("bytes", 4 << 20) {
                block.extend_from_slice(&[b'x'; (64 << 10) - 1]);
                block.push(b'\n');
            }
            for _ in 0..num("count", 256) {
                if stdout.write(&block).is_err() {
                    return ExitCode::from(4);
                }
            }
            drop(stdout);
            println!(
                "__FLOOM_RESULT__{{\"written\":{}}}",
                num("count", 256) * block.len() as u64
            );
        }
        "flood-no-marker" => {
            for _ in 0..num("count", 2048) {
                let _ = out.write_all(&[b'y'; 1024]);
            }
        }
        "huge-output" => {
            let big = "x".repeat(num("bytes", 2 << 20) as usize);
            println!("__FLOOM_RESULT__\"{big}\"");
        }
        "env" => {
            let vars: serde_json::Map<String, serde_json::Value> = std::env::vars()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            println!("__FLOOM_RESULT__{}", serde_json::Value::Object(vars));
        }
        "spin" => {
            let mut n: u64 = 0;
            loop {
                n = black_box(n.wrapping_add(1));
            }
        }
        other => {
            eprintln!("unknown action {other:?}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
