//! A command app that reads its input files under `/in` and writes artifacts under
//! `/out`, picked by `FLOOM_ACTION`: the polite cases, and hostile ones that try to pass
//! the artifact budget (through each way a guest can write), create 100,000 files, or
//! link to the host's files.

use std::io::{Read, Write};
use std::process::ExitCode;

use serde_json::{Value, json};
use sha2::Digest as _;
use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::{Descriptor, DescriptorFlags, OpenFlags, PathFlags};

fn main() -> ExitCode {
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let args: Value = serde_json::from_str(&input).unwrap_or_default();
    let num = |key: &str, default: u64| args.get(key).and_then(Value::as_u64).unwrap_or(default);
    let text = |key: &str| {
        args.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let action = std::env::var("FLOOM_ACTION").unwrap_or_default();
    let result = match action.as_str() {
        "sha" => {
            let path = text("file");
            match std::fs::read(&path) {
                Ok(bytes) => json!({
                    "path": path,
                    "size": bytes.len(),
                    "sha256": hex::encode(sha2::Sha256::digest(&bytes)),
                    "in": list("/in"),
                    "write_in": std::fs::write("/in/new.txt", b"x").map_err(|e| e.to_string()).err(),
                }),
                Err(e) => json!({ "path": path, "error": e.to_string() }),
            }
        }
        "artifacts" => {
            let big = num("big", 100_000) as usize;
            let body: Vec<u8> = (0..big).map(|i| (i % 251) as u8).collect();
            let wrote = [
                std::fs::write("/out/report.txt", b"hello report\n"),
                std::fs::write("/out/data.csv", b"a,b\n1,2\n"),
                std::fs::create_dir_all("/out/sub")
                    .and_then(|()| std::fs::write("/out/sub/nested.json", b"{\"n\":1}")),
                std::fs::write("/out/big.bin", &body),
            ];
            let errors: Vec<String> = wrote
                .into_iter()
                .filter_map(|r| r.err().map(|e| e.to_string()))
                .collect();
            json!({ "errors": errors, "out": list("/out") })
        }
        "fill" => fill(&text("mode"), num("bytes", 1 << 30), num("ms", 0)),
        "many-files" => {
            let (mut made, mut error) = (0u64, None);
            let dirs = text("mode") == "dirs";
            for i in 0..num("count", 100_000) {
                let path = format!("/out/f{i}");
                let r = if dirs {
                    std::fs::create_dir(&path)
                } else {
                    std::fs::File::create(&path).map(drop)
                };
                match r {
                    Ok(()) => made += 1,
                    Err(e) => {
                        error.get_or_insert(e.to_string());
                    }
                }
            }
            // Opening one that exists still works at the cap.
            let reopen = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open("/out/f0")
                .map(drop)
                .map_err(|e| e.to_string())
                .err();
            json!({ "made": made, "error": error, "reopen_error": reopen })
        }
        "links" => links(),
        "write-then-fail" => {
            let _ = std::fs::write("/out/partial.txt", b"written before failing\n");
            println!("failing now");
            return ExitCode::from(3);
        }
        "write-then-spin" => {
            let _ = std::fs::write("/out/partial.txt", b"written before spinning\n");
            println!("spinning now");
            let _ = std::io::stdout().flush();
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "nothing" => json!({}),
        other => json!({ "unknown": other }),
    };
    println!("__FLOOM_RESULT__{result}");
    ExitCode::SUCCESS
}

/// The names in `dir`, sorted.
fn list(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The `/out` preopen, straight from WASI.
fn out_dir() -> Option<Descriptor> {
    get_directories()
        .into_iter()
        .find(|(_, name)| name == "/out")
        .map(|(dir, _)| dir)
}

/// Tries to write `total` bytes in 1 MiB pieces, going on past errors, by `mode`:
/// `stream` (Rust's `std::fs`: wasi-libc's `write`, through `write-via-stream`),
/// `append`, `pwrite` (`descriptor.write` at offsets), `set-size` (one sparse file of
/// `total` bytes) or `files` (a new file per MiB). Sleeps `ms` between pieces so the host
/// can be watched while it writes.
fn fill(mode: &str, total: u64, ms: u64) -> Value {
    const PIECE: u64 = 1 << 20;
    let block = vec![b'x'; PIECE as usize];
    let (mut written, mut refused, mut error) = (0u64, 0u64, None::<String>);
    let mut note = |r: Result<(), String>, written: &mut u64| match r {
        Ok(()) => *written += PIECE,
        Err(e) => {
            refused += 1;
            error.get_or_insert(e);
        }
    };
    match mode {
        "pwrite" | "set-size" => {
            let Some(dir) = out_dir() else {
                return json!({ "error": "no /out" });
            };
            let file = match dir.open_at(
                PathFlags::empty(),
                "fill.bin",
                OpenFlags::CREATE,
                DescriptorFlags::READ | DescriptorFlags::WRITE,
            ) {
                Ok(file) => file,
                Err(e) => return json!({ "error": format!("{e:?}") }),
            };
            if mode == "set-size" {
                let r = file.set_size(total).map_err(|e| format!("{e:?}"));
                let ok = r.is_ok();
                note(r, &mut written);
                return json!({ "set_size_ok": ok, "error": error });
            }
            let mut offset = 0;
            while offset < total {
                let r = file
                    .write(&block, offset)
                    .map(drop)
                    .map_err(|e| format!("{e:?}"));
                note(r, &mut written);
                offset += PIECE;
                pause(ms);
            }
        }
        _ => {
            let mut file = match mode {
                "append" => std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open("/out/fill.bin"),
                _ => std::fs::File::create("/out/fill.bin"),
            }
            .ok();
            let mut n = 0;
            while n * PIECE < total {
                let r = if mode == "files" {
                    std::fs::write(format!("/out/fill-{n}.bin"), &block)
                } else {
                    match &mut file {
                        Some(f) => f.write_all(&block).and_then(|()| f.flush()),
                        None => Err(std::io::Error::other("could not open /out/fill.bin")),
                    }
                };
                note(r.map_err(|e| e.to_string()), &mut written);
                n += 1;
                pause(ms);
            }
        }
    }
    json!({ "written": written, "refused": refused, "error": error })
}

fn pause(ms: u64) {
    if ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Every way to make a link, and every way out of `/out`: each should fail.
fn links() -> Value {
    let Some(dir) = out_dir() else {
        return json!({ "error": "no /out" });
    };
    let _ = std::fs::write("/out/real.txt", b"real\n");
    let err = |r: Result<(), wasip2::filesystem::types::ErrorCode>| match r {
        Ok(()) => "made".to_owned(),
        Err(e) => format!("{e:?}"),
    };
    json!({
        "symlink_etc": err(dir.symlink_at("/etc/passwd", "passwd")),
        "symlink_up": err(dir.symlink_at("../../../../../../etc/passwd", "up")),
        "symlink_inside": err(dir.symlink_at("real.txt", "inside")),
        "hardlink": err(dir.link_at(PathFlags::empty(), "real.txt", &dir, "hard.txt")),
        "read_up": std::fs::read("/out/../../../../etc/passwd").map(|b| b.len()).map_err(|e| e.to_string()),
        "write_up": std::fs::write("/out/../escape.txt", b"x").map_err(|e| e.to_string()),
        "out": list("/out"),
    })
}
