-- +goose Up
-- Outbox rows Kafka refuses for what they are (too large for the topic, an
-- invalid record), set aside by the relay with the refusal as reason, and
-- with them every later row of the same order, so that the order's events
-- stay in order while every other order keeps flowing. A row moves here
-- from the outbox in one statement: no relay, of this version or an older
-- one, can publish it meanwhile. `order-api outbox retry` moves rows back
-- to the outbox with their ids, so they are published in their order again.
CREATE TABLE outbox_set_aside (
    id             bigint      PRIMARY KEY,
    event_id       uuid        NOT NULL UNIQUE,
    topic          text        NOT NULL,
    message_key    bytea       NOT NULL,
    payload        bytea       NOT NULL,
    schema_version int         NOT NULL,
    headers        jsonb       NOT NULL,
    created_at     timestamptz NOT NULL,
    reason         text        NOT NULL,
    set_aside_at   timestamptz NOT NULL DEFAULT now()
);
-- The relay's read looks each row's order up here: a row that follows a
-- set-aside row of its order is set aside too.
CREATE INDEX outbox_set_aside_message_key ON outbox_set_aside (message_key, id);

-- +goose Down
INSERT INTO outbox (id, event_id, topic, message_key, payload, schema_version, headers, created_at)
SELECT id, event_id, topic, message_key, payload, schema_version, headers, created_at
FROM outbox_set_aside;
DROP TABLE outbox_set_aside;
