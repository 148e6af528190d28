-- Apps, their immutable versions, executions and their events.

CREATE TABLE apps (
    slug            TEXT PRIMARY KEY,
    current_version INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,   -- unix milliseconds
    updated_at      INTEGER NOT NULL
);

-- Every published version; kept after the app is deleted so its executions stay readable.
CREATE TABLE app_versions (
    slug       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    sha256     TEXT NOT NULL,           -- content address of the component
    manifest   TEXT NOT NULL,           -- the floom.toml text as published
    kind       TEXT NOT NULL,           -- sdk | command
    public     INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (slug, version)
) WITHOUT ROWID;

CREATE TABLE executions (
    n               INTEGER PRIMARY KEY,  -- insertion order: list order and cursor
    id              TEXT NOT NULL UNIQUE,
    app             TEXT NOT NULL,
    version         INTEGER NOT NULL,
    action          TEXT NOT NULL,
    status          TEXT NOT NULL,        -- queued | running | succeeded | failed | timed_out | cancelled
    inputs          TEXT NOT NULL,        -- JSON
    output          TEXT,                 -- JSON
    error           TEXT,                 -- JSON { code, message, app_code? }
    usage           TEXT,                 -- JSON
    view_token_hash TEXT NOT NULL,        -- sha256 of the view token; the token itself is shown once
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER
);
CREATE INDEX executions_by_app ON executions (app, n);
CREATE INDEX executions_by_status ON executions (status, n);

-- The SSE stream of each execution, replayable from any sequence number.
CREATE TABLE events (
    execution_id TEXT NOT NULL,
    seq          INTEGER NOT NULL,        -- 1, 2, ... per execution
    kind         TEXT NOT NULL,           -- start | chunk | log | end | error
    data         TEXT NOT NULL,           -- the SSE data: JSON that repeats the kind as "type"
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;
