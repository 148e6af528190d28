-- Only unfinished executions are looked up by status (the recovery at startup); finished
-- ones are found by id, app or time. Indexing just those means a run's end deletes its
-- entry instead of adding one under its terminal status: one index page fewer per run,
-- and an index that stays as small as the work in flight.
DROP INDEX executions_by_status;
CREATE INDEX executions_unfinished ON executions (status, n) WHERE finished_at IS NULL;
