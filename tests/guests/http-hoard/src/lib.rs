//! An SDK app that makes the host hold memory through `wasi:http` and never sends a
//! request: the attack the run's `wasi:http` budget exists for. Every resource it makes
//! is kept until the action returns.
//!
//! Actions (inputs in parentheses, all optional numbers):
//!
//! - `ok`: touches no `wasi:http` at all (the component still imports it).
//! - `bodies` (`requests`, `bytes`): `requests` outgoing requests, with up to `bytes`
//!   written into each body, as far as `check-write` allows without sending.
//! - `fields` (`count`, `bytes`): `count` fields maps, each with `bytes` of header values
//!   appended in 8 KiB pieces.
//! - `strings` (`count`, `bytes`): `count` requests, each with a method, path and
//!   authority of `bytes` bytes.

use floom_sdk::{App, Context, Error};
use serde_json::{Value, json};
use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest};
use wasip2::io::streams::OutputStream;

struct Hoard;

impl App for Hoard {
    type Input = Value;
    type Output = Value;

    fn run(ctx: &Context, input: Value) -> Result<Value, Error> {
        let num =
            |key: &str, default: u64| input.get(key).and_then(Value::as_u64).unwrap_or(default);
        match ctx.action() {
            "ok" => Ok(json!({ "ok": true })),
            "bodies" => bodies(num("requests", 4090), num("bytes", 1 << 20)),
            "fields" => fields(num("count", 4090), num("bytes", 1 << 20)),
            "strings" => strings(num("count", 4090), num("bytes", 1 << 20)),
            other => Err(Error::new("unknown_action", other.to_owned())),
        }
    }
}

floom_sdk::export!(Hoard);

/// A request kept alive with its body; fields in the order they must be dropped (a
/// stream before its body).
struct Unsent {
    _stream: OutputStream,
    _body: OutgoingBody,
    _request: OutgoingRequest,
}

fn failed(what: &str) -> impl Fn(()) -> Error + '_ {
    move |()| Error::new("refused", format!("the host refused {what}"))
}

fn bodies(requests: u64, bytes: u64) -> Result<Value, Error> {
    // One buffer as large as any single write the host may grant.
    let data = vec![b'x'; bytes.min(1 << 20) as usize];
    let mut kept = Vec::new();
    let mut buffered = 0u64;
    for _ in 0..requests {
        let request = OutgoingRequest::new(Fields::new());
        let body = request.body().map_err(failed("a body"))?;
        let stream = body.write().map_err(failed("a body stream"))?;
        let mut left = bytes;
        while left > 0 {
            let permit = stream
                .check_write()
                .map_err(|e| Error::new("stream", format!("{e:?}")))?;
            if permit == 0 {
                break;
            }
            let n = permit.min(left).min(data.len() as u64) as usize;
            stream
                .write(&data[..n])
                .map_err(|e| Error::new("stream", format!("{e:?}")))?;
            left -= n as u64;
            buffered += n as u64;
        }
        kept.push(Unsent {
            _stream: stream,
            _body: body,
            _request: request,
        });
    }
    Ok(json!({ "requests": kept.len(), "buffered": buffered }))
}

fn fields(count: u64, bytes: u64) -> Result<Value, Error> {
    let value = vec![b'v'; 8 << 10];
    let mut kept = Vec::new();
    let mut held = 0u64;
    for _ in 0..count {
        let fields = Fields::new();
        let mut appended = 0u64;
        let mut i = 0u64;
        while appended < bytes {
            let n = value.len().min((bytes - appended) as usize);
            fields
                .append(&format!("x-hoard-{i}"), &value[..n])
                .map_err(|e| Error::new("refused", format!("a header value: {e:?}")))?;
            appended += n as u64;
            i += 1;
        }
        held += appended;
        kept.push(fields);
    }
    Ok(json!({ "fields": kept.len(), "held": held }))
}

fn strings(count: u64, bytes: u64) -> Result<Value, Error> {
    let long = "a".repeat(bytes as usize);
    let path = format!("/{long}");
    let method = Method::Other("X".repeat(bytes.max(1) as usize));
    let mut kept = Vec::new();
    let mut accepted = 0u64;
    for _ in 0..count {
        let request = OutgoingRequest::new(Fields::new());
        accepted += u64::from(request.set_method(&method).is_ok());
        accepted += u64::from(request.set_path_with_query(Some(&path)).is_ok());
        accepted += u64::from(request.set_authority(Some(&long)).is_ok());
        kept.push(request);
    }
    Ok(json!({ "requests": kept.len(), "accepted": accepted }))
}
