-- An app's executions by the time they were accepted: the per-day figures of the
-- operator's chart read one app's recent days without scanning its whole history.

CREATE INDEX executions_by_app_created ON executions (app, created_at);
