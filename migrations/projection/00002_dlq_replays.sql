-- +goose Up
-- Dead letters replayed by `order-consumer dlq replay`, by their position in
-- the dead-letter topic: a second replay of the same selection skips them
-- (unless -force), so the DLQ does not fill up with the same poison again.
CREATE TABLE dlq_replays (
    dlq_topic     text        NOT NULL,
    dlq_partition int         NOT NULL,
    dlq_offset    bigint      NOT NULL,
    replayed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset)
);

-- +goose Down
DROP TABLE dlq_replays;
