-- +goose Up
-- The read model of order-consumer: one row per order, the full state carried
-- by the newest event applied to it. created_at and updated_at are the order's
-- own (from the event); last_event_at is when that event occurred in order-api
-- and projected_at when this database applied it, so their difference is the
-- end-to-end lag.
CREATE TABLE order_projection (
    id                uuid        PRIMARY KEY,
    status            text        NOT NULL CHECK (status IN ('placed', 'paid', 'refunded', 'cancelled')),
    version           bigint      NOT NULL CHECK (version >= 1),
    customer_id       text        NOT NULL,
    currency          char(3)     NOT NULL,
    items             jsonb       NOT NULL,
    total_minor       bigint      NOT NULL CHECK (total_minor > 0),
    payment_reference text        NOT NULL DEFAULT '',
    cancel_reason     text        NOT NULL DEFAULT '',
    refund_reason     text        NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    last_event_id     uuid        NOT NULL,
    last_event_at     timestamptz NOT NULL,
    projected_at      timestamptz NOT NULL DEFAULT now()
);

-- The ledger that makes applying idempotent: each event_id is recorded once,
-- with what its first delivery did. A redelivery (duplicate) only increments
-- deliveries, so the row still says whether the event was applied or stale.
CREATE TABLE processed_events (
    event_id   uuid        PRIMARY KEY,
    order_id   uuid        NOT NULL,
    version    bigint      NOT NULL,
    event_type text        NOT NULL,
    outcome    text        NOT NULL CHECK (outcome IN ('applied', 'stale')),
    applied_at timestamptz NOT NULL DEFAULT now(),
    deliveries int         NOT NULL DEFAULT 1 CHECK (deliveries >= 1)
);
-- An order's history in the ledger, for operators and tests.
CREATE INDEX processed_events_order_id ON processed_events (order_id, version);

-- +goose Down
DROP TABLE processed_events;
DROP TABLE order_projection;
