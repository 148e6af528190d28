//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): a key shown as
//! `whsec_<base64>`, and `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `{webhook-id}.{webhook-timestamp}.{body}`, so the convention's libraries verify a
//! delivery as given.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of a key in the convention's form.
const PREFIX: &str = "whsec_";
/// Random bytes in a key (the convention's libraries take 24 to 64).
const KEY_BYTES: usize = 32;

/// A new signing key, `whsec_<base64 of 32 random bytes>`.
pub fn new_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(format!("{PREFIX}{}", STANDARD.encode(bytes)))
}

/// The `webhook-signature` value for a delivery: `v1,<base64>`.
pub fn signature(key: &str, id: &str, timestamp: i64, body: &[u8]) -> anyhow::Result<String> {
    let secret = STANDARD
        .decode(key.strip_prefix(PREFIX).unwrap_or(key))
        .map_err(|e| anyhow::anyhow!("a signing key is not base64: {e}"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret)
        .map_err(|e| anyhow::anyhow!("a signing key is unusable: {e}"))?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_convention_does() {
        // The example of the Standard Webhooks specification.
        let key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn new_keys_are_in_the_convention_s_form() {
        let key = new_key().unwrap();
        assert!(key.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&key[6..]).unwrap().len(), KEY_BYTES);
        assert_ne!(key, new_key().unwrap());
    }
}
