-- +goose Up
-- What the consumer holds of each order: the version and status the newest
-- event applied to it left, and the terms it was placed with (customer,
-- currency, total, creation time), which no event may change. The consumer
-- judges each event against it (in Go, with the domain's state machine)
-- under the order's advisory lock, and updates it in the same transaction
-- as the ledger and every read model. The read models (order_projection,
-- ...) only receive what was applied.
-- No CHECK on status: which statuses exist is the state machine's to say.
CREATE TABLE order_versions (
    order_id    uuid        PRIMARY KEY,
    version     bigint      NOT NULL CHECK (version >= 1),
    status      text        NOT NULL,
    customer_id text        NOT NULL,
    currency    text        NOT NULL,
    total_minor bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Until now the projection held this; it is copied once. The consumers of
-- the version before must be stopped first: one still running would
-- advance the projection but not this table (docs/operations.md).
INSERT INTO order_versions (order_id, version, status, customer_id, currency, total_minor, created_at, updated_at)
SELECT id, version, status, customer_id, currency, total_minor, created_at, projected_at FROM order_projection;

-- +goose Down
DROP TABLE order_versions;
