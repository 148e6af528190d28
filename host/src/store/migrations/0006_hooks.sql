-- Triggers in and out (SPEC section 9) and operating apps (section 12): inbound triggers,
-- schedules, notification subscriptions and their outbox, and the operator's controls.

-- A paused app refuses new runs. Its visibility as last set by PATCH (NULL: the current
-- version's manifest decides; a publish of a new version clears it).
ALTER TABLE apps ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE apps ADD COLUMN public INTEGER;

-- The URL a run asked to be notified at (its own "webhook").
ALTER TABLE executions ADD COLUMN webhook TEXT;
-- Time series and exports select by creation time.
CREATE INDEX executions_by_app_created ON executions (app, created_at);

-- Inbound triggers. The secret is sealed, not hashed: signatures are checked with it.
CREATE TABLE triggers (
    id         TEXT PRIMARY KEY,      -- trg_...
    app        TEXT NOT NULL,
    action     TEXT NOT NULL,
    secret     BLOB NOT NULL,         -- nonce followed by the ciphertext
    created_at INTEGER NOT NULL,
    rotated_at INTEGER
);
CREATE INDEX triggers_by_app ON triggers (app, created_at);

CREATE TABLE schedules (
    id                TEXT PRIMARY KEY,   -- sch_...
    app               TEXT NOT NULL,
    action            TEXT NOT NULL,
    inputs            TEXT NOT NULL,      -- JSON
    cron              TEXT NOT NULL,
    timezone          TEXT NOT NULL,      -- IANA name
    paused            INTEGER NOT NULL DEFAULT 0,
    next_tick         INTEGER NOT NULL,   -- unix ms of the next tick not yet run
    created_at        INTEGER NOT NULL,
    last_tick         INTEGER,
    last_execution_id TEXT,
    last_error        TEXT                -- why the last tick started no run
);
CREATE INDEX schedules_by_app ON schedules (app, created_at);
CREATE INDEX schedules_due ON schedules (next_tick) WHERE paused = 0;

-- One row per tick that started a run. The primary key is the claim, written in the
-- transaction that writes the execution: no tick runs twice, whoever tries again.
CREATE TABLE schedule_ticks (
    schedule_id  TEXT NOT NULL,
    tick         INTEGER NOT NULL,        -- unix ms
    execution_id TEXT NOT NULL,
    PRIMARY KEY (schedule_id, tick)
) WITHOUT ROWID;

-- Notification subscriptions of an app's execution events.
CREATE TABLE subscriptions (
    id              TEXT PRIMARY KEY,     -- whk_...
    app             TEXT NOT NULL,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,        -- JSON array of event types
    secret          BLOB NOT NULL,        -- sealed whsec_ key
    created_at      INTEGER NOT NULL,
    disabled_at     INTEGER,              -- set when the receiver answered 410 Gone
    disabled_reason TEXT
);
CREATE INDEX subscriptions_by_app ON subscriptions (app, created_at);

-- Each app's key for the webhooks that runs name themselves, made on first use.
CREATE TABLE run_webhook_secrets (
    app        TEXT PRIMARY KEY,
    secret     BLOB NOT NULL,             -- sealed whsec_ key
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- The outbox: one row per notification, written in the transaction that records the
-- execution's change, then delivered and retried from here.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,     -- msg_...: the webhook-id header, kept across retries
    subscription_id TEXT,                 -- NULL for the run's own webhook
    app             TEXT NOT NULL,
    url             TEXT NOT NULL,
    execution_id    TEXT NOT NULL,
    event           TEXT NOT NULL,        -- execution.succeeded, ...
    state           TEXT NOT NULL,        -- pending | delivered | failed | cancelled
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER,              -- while pending (pushed ahead while an attempt is out)
    finished_at     INTEGER
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, id);
CREATE INDEX deliveries_by_execution ON deliveries (execution_id);

-- Every attempt at a delivery.
CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL,
    attempt     INTEGER NOT NULL,         -- 1, 2, ...
    at          INTEGER NOT NULL,         -- unix ms
    status      INTEGER,                  -- the HTTP status, when one came back
    error       TEXT,                     -- what failed, when none did
    latency_ms  INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;

-- The sweeper's: finished deliveries past the retention period, and claimed ticks older
-- than a day (a tick before a schedule's next_tick can never be claimed again anyway).
CREATE INDEX deliveries_finished ON deliveries (finished_at) WHERE state != 'pending';
CREATE INDEX schedule_ticks_by_age ON schedule_ticks (tick);
