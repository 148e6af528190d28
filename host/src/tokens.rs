//! Agent tokens: `floom_` plus 32 random bytes, shown once, stored as a sha256, scoped to
//! a list of apps (or all) and a role. Kept in memory so checking one costs a hash and a
//! map lookup, not a database read; hosts sharing a store reload them every moment
//! ([`Tokens::refresh`]), so one host's revocation reaches the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockWriteGuard};

use serde::{Deserialize, Serialize};

use crate::store::{DynStore, Millis, TokenRecord, now_ms};

/// The prefix of every agent token.
pub const PREFIX: &str = "floom_";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Run the apps it covers and read their executions.
    Run,
    /// Also publish, delete, roll back and set secrets of the apps it covers; with every
    /// app covered, also manage tokens.
    Admin,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Run => "run",
            Role::Admin => "admin",
        }
    }
}

/// A live token.
#[derive(Debug, Clone)]
pub struct Token {
    /// `tok_...`
    pub id: String,
    /// The role.
    pub role: Role,
    /// The apps it covers; `None` for all.
    pub apps: Option<Vec<String>>,
    /// When it stops working.
    pub expires_at: Option<Millis>,
    /// When it was revoked.
    pub revoked_at: Option<Millis>,
}

impl Token {
    /// Whether it covers `slug`.
    pub fn covers(&self, slug: &str) -> bool {
        self.apps
            .as_ref()
            .is_none_or(|apps| apps.iter().any(|a| a == slug))
    }
}

/// Why a presented agent token does not work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No such token.
    #[error("the token is not valid")]
    Unknown,
    /// Revoked.
    #[error("the token was revoked")]
    Revoked,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
}

/// The token registry.
pub struct Tokens {
    store: DynStore,
    by_hash: RwLock<HashMap<String, Arc<Token>>>,
    /// Counts this host's changes to `by_hash` (made under its lock), so a
    /// [`Tokens::refresh`] that read the store before one never undoes it.
    local_changes: AtomicU64,
}

/// sha256 of a token, hex: what is stored instead of the token.
pub fn hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

impl Tokens {
    /// Loads every token from the store.
    pub async fn load(store: DynStore) -> anyhow::Result<Self> {
        let by_hash = RwLock::new(by_hash(store.tokens().await?));
        Ok(Tokens {
            store,
            by_hash,
            local_changes: AtomicU64::new(0),
        })
    }

    /// Reloads every token from the store, for the changes other hosts sharing it made
    /// (the whole table, in one query). A round that raced a change made here is dropped:
    /// the next one sees it.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let changes = self.local_changes.load(Ordering::SeqCst);
        let fresh = by_hash(self.store.tokens().await?);
        let mut map = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
        if self.local_changes.load(Ordering::SeqCst) == changes {
            *map = fresh;
        }
        Ok(())
    }

    /// The tokens, to change on this host's behalf: counted, so a refresh that read the
    /// store before this change never undoes it.
    fn change(&self) -> RwLockWriteGuard<'_, HashMap<String, Arc<Token>>> {
        let map = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
        self.local_changes.fetch_add(1, Ordering::SeqCst);
        map
    }

    /// The token that `presented` is, if it works now.
    pub fn check(&self, presented: &str) -> Result<Arc<Token>, TokenError> {
        let map = self.by_hash.read().unwrap_or_else(|p| p.into_inner());
        let token = map.get(&hash(presented)).ok_or(TokenError::Unknown)?;
        if token.revoked_at.is_some() {
            return Err(TokenError::Revoked);
        }
        if token.expires_at.is_some_and(|at| at <= now_ms()) {
            return Err(TokenError::Expired);
        }
        Ok(token.clone())
    }

    /// Issues a token; returns its record and the token itself (shown once).
    pub async fn create(
        &self,
        name: String,
        role: Role,
        apps: Option<Vec<String>>,
        expires_at: Option<Millis>,
    ) -> anyhow::Result<(TokenRecord, String)> {
        let secret = format!("{PREFIX}{}", crate::api::auth::random_token()?);
        let record = TokenRecord {
            id: format!("tok_{}", uuid::Uuid::now_v7().simple()),
            name,
            secret_hash: hash(&secret),
            role: role.as_str().to_owned(),
            apps,
            created_at: now_ms(),
            expires_at,
            revoked_at: None,
        };
        self.store.insert_token(record.clone()).await?;
        self.change()
            .insert(record.secret_hash.clone(), Arc::new(live(record.clone())));
        Ok((record, secret))
    }

    /// Revokes a token at once; false when unknown or already revoked.
    pub async fn revoke(&self, id: &str) -> anyhow::Result<bool> {
        let at = now_ms();
        if !self.store.revoke_token(id, at).await? {
            return Ok(false);
        }
        let mut map = self.change();
        for token in map.values_mut() {
            if token.id == id {
                let mut revoked = (**token).clone();
                revoked.revoked_at = Some(at);
                *token = Arc::new(revoked);
            }
        }
        Ok(true)
    }
}

impl Tokens {
    /// Drops every token's grant to `slug`, after the store dropped them with the app.
    pub fn forget_app(&self, slug: &str) {
        let mut map = self.change();
        for token in map.values_mut() {
            if token
                .apps
                .as_ref()
                .is_some_and(|apps| apps.iter().any(|a| a == slug))
            {
                let mut narrowed = (**token).clone();
                if let Some(apps) = &mut narrowed.apps {
                    apps.retain(|a| a != slug);
                }
                *token = Arc::new(narrowed);
            }
        }
    }
}

/// Tokens by the hash of their secret.
fn by_hash(records: Vec<TokenRecord>) -> HashMap<String, Arc<Token>> {
    records
        .into_iter()
        .map(|record| (record.secret_hash.clone(), Arc::new(live(record))))
        .collect()
}

fn live(record: TokenRecord) -> Token {
    Token {
        id: record.id,
        role: if record.role == "admin" {
            Role::Admin
        } else {
            Role::Run
        },
        apps: record.apps,
        expires_at: record.expires_at,
        revoked_at: record.revoked_at,
    }
}
