-- +goose Up
-- What the consumer holds of each order: the version and status the newest
-- event applied to it left. The consumer judges each event against it (in
-- Go, with the domain's state machine) under the order's advisory lock, and
-- updates it in the same transaction as the ledger and every read model.
-- The read models (order_projection, ...) only receive what was applied.
-- No CHECK on status: which statuses exist is the state machine's to say.
CREATE TABLE order_versions (
    order_id   uuid        PRIMARY KEY,
    version    bigint      NOT NULL CHECK (version >= 1),
    status     text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Until now the projection held this; it is copied once.
INSERT INTO order_versions (order_id, version, status, updated_at)
SELECT id, version, status, projected_at FROM order_projection;

-- +goose Down
DROP TABLE order_versions;
