-- Streamed events of finished executions are pruned after the retention period (the
-- terminal event stays, so a replay still ends); this marks the executions done.

ALTER TABLE executions ADD COLUMN events_pruned INTEGER NOT NULL DEFAULT 0;
CREATE INDEX executions_to_prune ON executions (finished_at)
    WHERE events_pruned = 0 AND finished_at IS NOT NULL;
