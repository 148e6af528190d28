-- Slugs of deleted apps whose executions are kept: such a slug is not published again
-- until it is purged, so a new app never inherits the old one's history.

CREATE TABLE retired_slugs (
    slug       TEXT PRIMARY KEY,
    deleted_at INTEGER NOT NULL        -- unix milliseconds
) WITHOUT ROWID;
