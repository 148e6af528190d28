-- A sync run written once with its end (it streamed nothing) keeps its two events, `start`
-- and its terminal one, in its own row: a JSON array of their data, seq 1 and 2, each
-- naming its kind as "type". Its commit then touches no page of `events` at all: one
-- B-tree fewer per run. Every other execution's events are rows of `events`, as before.

ALTER TABLE executions ADD COLUMN inline_events TEXT;
