-- Agent tokens, app secrets and idempotency keys.

-- Scoped agent tokens. Only a hash of each token is kept; the token is shown once.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,        -- tok_...
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,    -- sha256 of the whole token
    role        TEXT NOT NULL,           -- run | admin
    apps        TEXT,                    -- JSON array of slugs; NULL covers every app
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);

-- Secret values, encrypted (ChaCha20-Poly1305, the app and name bound as associated data).
CREATE TABLE secrets (
    app        TEXT NOT NULL,
    name       TEXT NOT NULL,
    sealed     BLOB NOT NULL,           -- nonce followed by the ciphertext
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (app, name)
) WITHOUT ROWID;

-- Idempotency-Key: the same caller, key and body within 24 h get the same execution.
CREATE TABLE idempotency (
    caller       TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,          -- sha256 of the route and the body
    execution_id TEXT NOT NULL,
    view_token   BLOB NOT NULL,          -- encrypted, to answer the replay like the original
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (caller, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency (created_at);
