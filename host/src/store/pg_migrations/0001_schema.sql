-- The PostgreSQL schema: the same tables, columns and meanings as the SQLite store's
-- migrations 0001-0010 (see ../migrations for the why of each), in PostgreSQL's types:
-- unix milliseconds as BIGINT, flags as BOOLEAN, sealed keys and bytes as BYTEA. Later
-- changes are new files here, applied in order under an advisory lock.

CREATE TABLE apps (
    slug            TEXT PRIMARY KEY,
    current_version BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    paused          BOOLEAN NOT NULL DEFAULT FALSE,
    public          BOOLEAN               -- as last set by PATCH; NULL: the manifest decides
);

CREATE TABLE app_versions (
    slug       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    manifest   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    public     BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (slug, version)
);

CREATE TABLE retired_slugs (
    slug       TEXT PRIMARY KEY,
    deleted_at BIGINT NOT NULL
);

-- Bytes every host must reach, by sha256: published components (any host can run any
-- app) and input files and artifacts (any host can serve them).
CREATE TABLE components (
    sha256 TEXT PRIMARY KEY,
    bytes  BYTEA NOT NULL
);
CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    bytes  BYTEA NOT NULL
);

CREATE TABLE executions (
    n                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                  TEXT NOT NULL UNIQUE,
    app                 TEXT NOT NULL,
    version             BIGINT NOT NULL,
    action              TEXT NOT NULL,
    status              TEXT NOT NULL,
    inputs              TEXT NOT NULL,
    output              TEXT,
    error               TEXT,
    usage               TEXT,
    view_token_hash     TEXT NOT NULL,
    attempts            BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    started_at          BIGINT,
    finished_at         BIGINT,
    events_pruned       BOOLEAN NOT NULL DEFAULT FALSE,
    trigger_source      TEXT NOT NULL DEFAULT 'api',
    mcp_call            TEXT,
    webhook             TEXT,
    approval            TEXT,
    approval_expires_at BIGINT,
    step                BIGINT NOT NULL DEFAULT 1,
    step_action         TEXT,
    step_inputs         TEXT
);
CREATE INDEX executions_by_app ON executions (app, n);
CREATE INDEX executions_by_status ON executions (status, n);
CREATE INDEX executions_to_prune ON executions (finished_at)
    WHERE NOT events_pruned AND finished_at IS NOT NULL;
CREATE INDEX executions_by_mcp_call ON executions (mcp_call) WHERE mcp_call IS NOT NULL;
CREATE INDEX executions_by_app_created ON executions (app, created_at);
CREATE INDEX executions_awaiting ON executions (approval_expires_at)
    WHERE status = 'awaiting_approval';

CREATE TABLE events (
    execution_id TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    data         TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    apps        TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

CREATE TABLE secrets (
    app        TEXT NOT NULL,
    name       TEXT NOT NULL,
    sealed     BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (app, name)
);

CREATE TABLE idempotency (
    caller       TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    view_token   BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (caller, key)
);
CREATE INDEX idempotency_by_age ON idempotency (created_at);

CREATE TABLE triggers (
    id         TEXT PRIMARY KEY,
    app        TEXT NOT NULL,
    action     TEXT NOT NULL,
    secret     BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    rotated_at BIGINT
);
CREATE INDEX triggers_by_app ON triggers (app, created_at);

CREATE TABLE schedules (
    id                TEXT PRIMARY KEY,
    app               TEXT NOT NULL,
    action            TEXT NOT NULL,
    inputs            TEXT NOT NULL,
    cron              TEXT NOT NULL,
    timezone          TEXT NOT NULL,
    paused            BOOLEAN NOT NULL DEFAULT FALSE,
    next_tick         BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    last_tick         BIGINT,
    last_execution_id TEXT,
    last_error        TEXT
);
CREATE INDEX schedules_by_app ON schedules (app, created_at);
CREATE INDEX schedules_due ON schedules (next_tick) WHERE NOT paused;

CREATE TABLE schedule_ticks (
    schedule_id  TEXT NOT NULL,
    tick         BIGINT NOT NULL,
    execution_id TEXT NOT NULL,
    PRIMARY KEY (schedule_id, tick)
);
CREATE INDEX schedule_ticks_by_age ON schedule_ticks (tick);

CREATE TABLE subscriptions (
    id              TEXT PRIMARY KEY,
    app             TEXT NOT NULL,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,        -- JSON array of event types
    secret          BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    disabled_at     BIGINT,
    disabled_reason TEXT
);
CREATE INDEX subscriptions_by_app ON subscriptions (app, created_at);

CREATE TABLE run_webhook_secrets (
    app        TEXT PRIMARY KEY,
    secret     BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE outbox (
    n            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id TEXT NOT NULL,
    app          TEXT NOT NULL,
    event        TEXT NOT NULL,
    targets      TEXT NOT NULL,           -- JSON [[subscription_id or null, url], ...]
    at           BIGINT NOT NULL
);

CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    subscription_id TEXT,
    app             TEXT NOT NULL,
    url             TEXT NOT NULL,
    execution_id    TEXT NOT NULL,
    event           TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT,
    finished_at     BIGINT
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, id);

CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    status      BIGINT,
    error       TEXT,
    latency_ms  BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

CREATE TABLE execution_files (
    execution_id TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('input', 'artifact')),
    name         TEXT NOT NULL,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    content_type TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (execution_id, kind, name)
);
CREATE INDEX execution_files_by_blob ON execution_files (sha256);
CREATE INDEX execution_files_by_age ON execution_files (created_at);
