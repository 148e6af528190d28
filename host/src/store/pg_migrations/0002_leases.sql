-- Several hosts: each running execution is leased to the host that runs it. The host
-- renews the lease while the run goes on; once it runs out (the host died, or lost the
-- database), any host puts the execution back in the queue, and the old host's writes
-- for it are refused.
ALTER TABLE executions ADD COLUMN lease_owner TEXT;
ALTER TABLE executions ADD COLUMN lease_until BIGINT;
-- A cancel asked on a host that does not run the execution: its host sees it at its
-- next renewal and stops the guest.
ALTER TABLE executions ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX executions_leased ON executions (lease_until) WHERE status = 'running';

-- What every host must agree on, such as a value sealed with the master key at the
-- first start: a host given another key cannot open it, and refuses to start.
CREATE TABLE floom_settings (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
