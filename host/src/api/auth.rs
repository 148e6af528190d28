//! Who is calling and what they may do: the admin (the server's secret), an agent token
//! scoped to apps and a role, or an anonymous client (known by its address).
//!
//! Refusals never reveal more than the caller may know: without credentials a private
//! app answers 401; with credentials that do not cover it, it answers exactly like an
//! app that does not exist (404).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::tokens::{PREFIX, Role, Token};

/// The credentials a request carries.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No credentials; the client's address when known.
    Anonymous(Option<IpAddr>),
    /// The server's admin secret: everything.
    Admin,
    /// An agent token.
    Agent(Arc<Token>),
}

/// What a caller wants to do with an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// See it and run it.
    Run,
    /// Publish, delete, roll back, set secrets.
    Administer,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(presented) = presented_token(&parts.headers)? else {
            let addr = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip());
            return Ok(Caller::Anonymous(addr));
        };
        if presented.starts_with(PREFIX) {
            return state
                .tokens
                .check(&presented)
                .map(Caller::Agent)
                .map_err(|e| ApiError::auth_failed(e.to_string()));
        }
        if bool::from(presented.as_bytes().ct_eq(state.admin_token.as_bytes())) {
            Ok(Caller::Admin)
        } else {
            Err(ApiError::auth_failed("the token is not valid"))
        }
    }
}

impl Caller {
    /// Whether the caller's credentials cover `slug`.
    pub fn covers(&self, slug: &str) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Agent(token) => token.covers(slug),
            Caller::Anonymous(_) => false,
        }
    }

    /// The apps whose executions the caller may list (`None`: every app; a scoped
    /// token, the ones it covers); anonymous callers list nothing, and `doing` ("listing
    /// executions") says what they were refused.
    pub fn listable_apps(&self, doing: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self {
            Caller::Anonymous(_) => Err(ApiError::auth_failed(format!(
                "{doing} needs a token (Authorization: Bearer <token>)"
            ))),
            Caller::Admin => Ok(None),
            Caller::Agent(token) => Ok(token.apps.clone()),
        }
    }

    /// The admin, or an admin token that covers every app: may manage tokens and see
    /// everything.
    pub fn is_full_admin(&self) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Agent(token) => token.role == Role::Admin && token.apps.is_none(),
            Caller::Anonymous(_) => false,
        }
    }

    /// Refuses anyone but a full admin.
    pub fn require_full_admin(&self) -> Result<(), ApiError> {
        match self {
            _ if self.is_full_admin() => Ok(()),
            Caller::Anonymous(_) => Err(ApiError::auth_failed(
                "this needs an admin token (Authorization: Bearer <token>)",
            )),
            _ => Err(ApiError::forbidden(
                "this needs an admin token that covers every app",
            )),
        }
    }

    /// Whether the caller may do `need` with the app `slug` (`public` or not).
    pub fn authorize(&self, slug: &str, public: bool, need: Need) -> Result<(), ApiError> {
        let hidden = || ApiError::not_found(format!("no app {slug:?}"));
        match (self, need) {
            (Caller::Admin, _) => Ok(()),
            (_, Need::Run) if public || self.covers(slug) => Ok(()),
            (Caller::Anonymous(_), Need::Run) => Err(ApiError::auth_failed(format!(
                "{slug} is private: send a token that covers it (Authorization: Bearer <token>)"
            ))),
            (Caller::Anonymous(_), Need::Administer) => Err(ApiError::auth_failed(
                "this needs an admin token (Authorization: Bearer <token>)",
            )),
            (Caller::Agent(_), Need::Run) => Err(hidden()),
            (Caller::Agent(token), Need::Administer) if token.covers(slug) => match token.role {
                Role::Admin => Ok(()),
                Role::Run => Err(ApiError::forbidden(
                    "this needs a token with the admin role",
                )),
            },
            (Caller::Agent(_), Need::Administer) if public => Err(ApiError::forbidden(format!(
                "the token does not cover {slug}"
            ))),
            (Caller::Agent(_), Need::Administer) => Err(hidden()),
        }
    }

    /// Whether the request carried credentials at all.
    pub fn has_credentials(&self) -> bool {
        !matches!(self, Caller::Anonymous(_))
    }

    /// A stable name for scoping idempotency keys and rate limits.
    pub fn identity(&self) -> String {
        match self {
            Caller::Admin => "admin".to_owned(),
            Caller::Agent(token) => token.id.clone(),
            Caller::Anonymous(Some(addr)) => format!("ip:{addr}"),
            Caller::Anonymous(None) => "anonymous".to_owned(),
        }
    }
}

/// The credential a request carries, if any. A header that is present but blank is an
/// error, never a credential: nothing may authenticate with an empty secret.
fn presented_token(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let token = header_token(headers)?;
    if token.as_deref().is_some_and(str::is_empty) {
        return Err(ApiError::auth_failed("the token is empty"));
    }
    Ok(token)
}

fn header_token(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
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
    !presented.is_empty() && bool::from(sha256_hex(presented).as_bytes().ct_eq(hash.as_bytes()))
}

/// Hex sha256 of a token: what is stored instead of the token.
pub fn sha256_hex(token: &str) -> String {
    crate::tokens::hash(token)
}

/// A new random secret: 32 bytes, hex.
pub fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(bytes))
}
