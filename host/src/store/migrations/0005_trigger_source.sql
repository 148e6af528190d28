-- How each execution started (SPEC section 12), and for one started by an MCP
-- `tools/call`, the call's key: sha256 of the caller, the client's session and the
-- JSON-RPC request id. `notifications/cancelled` names only the request id, so this is
-- how any host finds the execution to cancel, with nothing kept in memory.

ALTER TABLE executions ADD COLUMN trigger_source TEXT NOT NULL DEFAULT 'api';
ALTER TABLE executions ADD COLUMN mcp_call TEXT;
CREATE INDEX executions_by_mcp_call ON executions (mcp_call) WHERE mcp_call IS NOT NULL;
