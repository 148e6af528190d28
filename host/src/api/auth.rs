//! Who is calling: the admin (the server's secret), or nobody. Agent tokens slot in here
//! as another kind of caller.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// The credentials a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// The admin secret.
    Admin,
}

impl Caller {
    /// Reads `Authorization: Bearer`, `x-floom-token` or `x-floom-secret`. A token that
    /// matches nothing is refused outright, so a typo is not mistaken for anonymity.
    pub fn from_headers(headers: &HeaderMap, admin_token: &str) -> Result<Self, ApiError> {
        let Some(token) = presented_token(headers)? else {
            return Ok(Caller::Anonymous);
        };
        if bool::from(token.as_bytes().ct_eq(admin_token.as_bytes())) {
            Ok(Caller::Admin)
        } else {
            Err(ApiError::auth_failed("the token is not valid"))
        }
    }

    /// Refuses anyone but the admin.
    pub fn require_admin(self) -> Result<(), ApiError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Anonymous => Err(ApiError::auth_failed(
                "this needs the admin token (Authorization: Bearer <token>)",
            )),
        }
    }

    /// Whether the caller may see and run private apps.
    pub fn is_admin(self) -> bool {
        self == Caller::Admin
    }
}

fn presented_token(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::auth_failed("the Authorization header is not text"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::auth_failed("use Authorization: Bearer <token>"))?;
        return Ok(Some(token.trim().to_owned()));
    }
    for name in ["x-floom-token", "x-floom-secret"] {
        if let Some(value) = headers.get(name) {
            let token = value
                .to_str()
                .map_err(|_| ApiError::auth_failed(format!("the {name} header is not text")))?;
            return Ok(Some(token.trim().to_owned()));
        }
    }
    Ok(None)
}

/// Whether `presented` is the view token whose hash is `hash`, compared in constant time.
pub fn view_token_matches(presented: &str, hash: &str) -> bool {
    bool::from(sha256_hex(presented).as_bytes().ct_eq(hash.as_bytes()))
}

/// Hex sha256 of a token: what is stored instead of the token.
pub fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// A new random secret: 32 bytes, hex.
pub fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(bytes))
}
