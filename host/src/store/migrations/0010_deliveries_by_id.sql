-- Deliveries keyed by their own id: a table WITHOUT ROWID is one B-tree where a rowid
-- table with a TEXT primary key is two, so each delivery's insert and each attempt's
-- update touch one tree fewer. The sweeper finds old deliveries by id (a msg_ UUIDv7
-- sorts by creation, and a delivery ends after it is made), so `deliveries_finished`
-- goes: one index fewer on every delivery's end.
CREATE TABLE deliveries_by_id (
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
) WITHOUT ROWID;
INSERT INTO deliveries_by_id (id, subscription_id, app, url, execution_id, event, state,
                              attempts, created_at, next_attempt_at, finished_at)
    SELECT id, subscription_id, app, url, execution_id, event, state,
           attempts, created_at, next_attempt_at, finished_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_by_id RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, id);
