-- +goose Up
-- The ledger is purged of events older than LEDGER_RETENTION, oldest first.
CREATE INDEX processed_events_applied_at ON processed_events (applied_at);

-- +goose Down
DROP INDEX processed_events_applied_at;
