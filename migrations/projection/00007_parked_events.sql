-- +goose Up
-- Events that came before their predecessor was applied (a version gap: the
-- order's key moved partition when partitions were added, or the
-- predecessor sits in the DLQ). The consumer judges them parked, in Go, and
-- applies them in version order in the transaction that applies the
-- predecessor. Each keeps the event, decoded (event, the consumer's own
-- JSON of it, read back by the same release), and the message it came in,
-- byte for byte, so that one that can never apply, or waits past
-- CONSUMER_PARKED_MAX_AGE, is dead-lettered intact. A row to be
-- dead-lettered has why (leaving: out_of_sequence, terms_changed, expired) and leaving_reason set; the consumer
-- deletes it once the DLQ has it. Not in the ledger (processed_events) until
-- applied.
CREATE TABLE parked_events (
    event_id       uuid        PRIMARY KEY,
    order_id       uuid        NOT NULL,
    version        bigint      NOT NULL,
    event          jsonb       NOT NULL,
    topic          text        NOT NULL,
    partition      int         NOT NULL,
    "offset"       bigint      NOT NULL,
    msg_key        bytea,
    msg_value      bytea,
    header_keys    text[]      NOT NULL,
    header_values  bytea[]     NOT NULL,
    msg_time       timestamptz NOT NULL,
    parked_at      timestamptz NOT NULL DEFAULT now(),
    leaving        text,
    leaving_reason text
);
CREATE INDEX parked_events_order ON parked_events (order_id, version);
CREATE INDEX parked_events_parked_at ON parked_events (parked_at);

-- +goose Down
DROP TABLE parked_events;
