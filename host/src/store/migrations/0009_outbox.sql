-- The outbox proper: one narrow row per execution change that has somewhere to go,
-- written in the change's own transaction. It is one append to a table without a
-- secondary index, where a delivery row costs five B-trees (the table, its id and three
-- indexes); so a run with subscribers commits its end about as fast as one without. The
-- notifier's next claim turns each row into its deliveries and deletes it.
CREATE TABLE outbox (
    n            INTEGER PRIMARY KEY,
    execution_id TEXT NOT NULL,
    app          TEXT NOT NULL,
    event        TEXT NOT NULL,       -- execution.succeeded, ...
    targets      TEXT NOT NULL,       -- JSON [[subscription_id or null, url], ...]
    at           INTEGER NOT NULL     -- unix ms of the change
);

-- No query looks deliveries up by execution: the index only cost each delivery a B-tree.
DROP INDEX deliveries_by_execution;
