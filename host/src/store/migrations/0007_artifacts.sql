-- Files in, artifacts out (SPEC section 10): each execution's input files and the
-- artifacts its run left under /out. The bytes live in the blob store, by sha256; a
-- blob is deleted when the last row naming it is.
CREATE TABLE execution_files (
    execution_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('input', 'artifact')),
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    content_type TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (execution_id, kind, name)
) WITHOUT ROWID;
CREATE INDEX execution_files_by_blob ON execution_files (sha256);
CREATE INDEX execution_files_by_age ON execution_files (created_at);
