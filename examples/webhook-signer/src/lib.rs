//! Signs and verifies webhook payloads with a secret key: an app with several actions,
//! a declared secret and its own error codes.
//!
//! The signature is Stripe-style: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`,
//! keyed by the `SIGNING_KEY` secret (`floom secrets set webhook-signer SIGNING_KEY
//! --value-stdin`). The key never leaves the sandbox; only signatures do.

use floom_sdk::{App, Context, Error};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Signatures older than this are refused by `verify` unless the caller says otherwise.
const DEFAULT_TOLERANCE_S: u64 = 300;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The exact request body to sign or verify.
    body: String,
    /// For `sign`: the timestamp to sign with (default: now).
    timestamp: Option<u64>,
    /// For `verify`: the `t=...,v1=...` header value.
    signature: Option<String>,
    /// For `verify`: how old a signature may be, in seconds.
    tolerance_s: Option<u64>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Output {
    Signed { header: String, timestamp: u64 },
    Verified { valid: bool, age_s: u64 },
}

struct WebhookSigner;

impl App for WebhookSigner {
    type Input = Input;
    type Output = Output;

    fn run(ctx: &Context, input: Input) -> Result<Output, Error> {
        let key = floom_sdk::secret("SIGNING_KEY").ok_or_else(|| {
            Error::new(
                "missing_secret",
                "SIGNING_KEY is not set: floom secrets set webhook-signer SIGNING_KEY --value-stdin",
            )
        })?;
        let now = unix_now()?;
        match ctx.action() {
            "sign" => {
                let timestamp = input.timestamp.unwrap_or(now);
                let v1 = sign(&key, timestamp, &input.body)?;
                Ok(Output::Signed {
                    header: format!("t={timestamp},v1={v1}"),
                    timestamp,
                })
            }
            "verify" => {
                let header = input
                    .signature
                    .ok_or_else(|| Error::invalid_input("verify needs `signature`"))?;
                let (timestamp, v1) = parse_header(&header)?;
                let age_s = now.saturating_sub(timestamp);
                if age_s > input.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S) {
                    floom_sdk::warn!("signature is {age_s} s old");
                    return Ok(Output::Verified {
                        valid: false,
                        age_s,
                    });
                }
                let expected =
                    hex::decode(v1).map_err(|_| Error::invalid_input("v1 is not hex"))?;
                let mut mac = mac(&key)?;
                mac.update(format!("{timestamp}.{}", input.body).as_bytes());
                // `verify_slice` compares in constant time.
                let valid = mac.verify_slice(&expected).is_ok();
                Ok(Output::Verified { valid, age_s })
            }
            other => Err(Error::new("unknown_action", format!("no action {other:?}"))),
        }
    }
}

floom_sdk::export!(WebhookSigner);

fn mac(key: &str) -> Result<Hmac<Sha256>, Error> {
    Hmac::<Sha256>::new_from_slice(key.as_bytes())
        .map_err(|e| Error::new("bad_secret", e.to_string()))
}

fn sign(key: &str, timestamp: u64, body: &str) -> Result<String, Error> {
    let mut mac = mac(key)?;
    mac.update(format!("{timestamp}.{body}").as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

fn parse_header(header: &str) -> Result<(u64, &str), Error> {
    let mut timestamp = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse().ok(),
            Some(("v1", s)) => v1 = Some(s),
            _ => {}
        }
    }
    match (timestamp, v1) {
        (Some(t), Some(v1)) => Ok((t, v1)),
        _ => Err(Error::invalid_input(
            "signature must look like t=<unix seconds>,v1=<hex>",
        )),
    }
}

fn unix_now() -> Result<u64, Error> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip() {
        let v1 = sign("k", 1_700_000_000, "{}").unwrap();
        let header = format!("t=1700000000,v1={v1}");
        assert_eq!(parse_header(&header).unwrap(), (1_700_000_000, v1.as_str()));
        assert_ne!(sign("other", 1_700_000_000, "{}").unwrap(), v1);
        assert!(parse_header("v1=abc").is_err());
    }
}
