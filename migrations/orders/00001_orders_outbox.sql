-- +goose Up
CREATE TABLE orders (
    id                uuid        PRIMARY KEY,
    customer_id       text        NOT NULL,
    currency          char(3)     NOT NULL,
    items             jsonb       NOT NULL,
    total_minor       bigint      NOT NULL CHECK (total_minor > 0),
    status            text        NOT NULL CHECK (status IN ('placed', 'paid', 'refunded', 'cancelled')),
    version           bigint      NOT NULL CHECK (version >= 1),
    payment_reference text        NOT NULL DEFAULT '',
    cancel_reason     text        NOT NULL DEFAULT '',
    refund_reason     text        NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
-- Listing filters by customer or status and pages by id (UUIDv7, time-ordered).
CREATE INDEX orders_customer_id_id ON orders (customer_id, id);
CREATE INDEX orders_status_id ON orders (status, id);

-- The transactional outbox: written in the same transaction as the order row,
-- read by the relay in id order. payload is the Avro binary body (without the
-- Confluent frame: the schema ID is the registry's and is added when the relay
-- publishes); schema_version names the schemas/ file it was written with.
CREATE TABLE outbox (
    id             bigserial   PRIMARY KEY,
    event_id       uuid        NOT NULL UNIQUE,
    topic          text        NOT NULL,
    message_key    bytea       NOT NULL,
    payload        bytea       NOT NULL,
    schema_version int         NOT NULL,
    headers        jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz
);
-- The relay's queue: only unpublished rows, in id order.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
-- The purge of published rows past their retention.
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Wake the relay on commit. A statement-level trigger with a constant payload
-- sends one notification per transaction however many rows it inserts
-- (PostgreSQL folds identical notifications of one transaction).
-- +goose StatementBegin
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Idempotency-Key of POST /orders: the first response is kept and replayed
-- for a retry with the same body.
CREATE TABLE idempotency_keys (
    key         text        PRIMARY KEY,
    fingerprint bytea       NOT NULL,
    order_id    uuid        NOT NULL REFERENCES orders (id),
    response    bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
DROP TABLE outbox;
DROP TABLE orders;
