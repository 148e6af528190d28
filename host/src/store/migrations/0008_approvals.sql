-- Approvals (SPEC section 11). An execution whose action needs approval waits in status
-- 'awaiting_approval' with its approval here; nothing waits in memory, so a pending
-- approval survives restarts (and later, any host can decide it).

-- The latest approval, as the API shows it (JSON: proposed_output, requested_at,
-- expires_at, then decision, decided_by, annotation, decided_at); earlier steps' approvals
-- stay in the event stream.
ALTER TABLE executions ADD COLUMN approval TEXT;
-- When the pending approval expires (NULL once decided).
ALTER TABLE executions ADD COLUMN approval_expires_at INTEGER;
-- 1 for the execution's own action; each approved `then` step adds one and runs
-- step_action on step_inputs (the approved output), with an attempt counter of its own.
ALTER TABLE executions ADD COLUMN step INTEGER NOT NULL DEFAULT 1;
ALTER TABLE executions ADD COLUMN step_action TEXT;
ALTER TABLE executions ADD COLUMN step_inputs TEXT;
-- The sweeper's and the approval list's way in.
CREATE INDEX executions_awaiting ON executions (approval_expires_at)
    WHERE status = 'awaiting_approval';
