-- +goose Up
-- Idempotency keys are honoured for IDEMPOTENCY_KEY_TTL, then purged, oldest
-- first.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- +goose Down
DROP INDEX idempotency_keys_created_at;
