-- +goose Up
-- Where in the topic the projection was built from: the first offset of each
-- partition when it was last rebuilt. A rebuild refuses a topic that no
-- longer holds those offsets (retention, a new cluster), which would drop
-- the orders whose events are gone; with no row, a partition counts as
-- built from offset 0.
CREATE TABLE projection_origin (
    topic        text        NOT NULL,
    partition    int         NOT NULL,
    first_offset bigint      NOT NULL CHECK (first_offset >= 0),
    rebuilt_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

-- +goose Down
DROP TABLE projection_origin;
