-- +goose Up
-- Published rows move out of the outbox, into outbox_published, in the
-- relay's batch statement. The outbox then holds only what is not published
-- yet, plus the dead rows of what moved until vacuum removes them: small
-- enough for autovacuum to keep clean (before, a day of marked rows stayed,
-- and each mark left a dead entry in the queue's partial index that every
-- read passed until vacuum), and moving a row (a delete and an insert into
-- a table with two indexes) costs PostgreSQL about half what marking it did
-- (an update writing a new version and an entry in each of three indexes).
--
-- No relay may mark rows while they move: an old replica's mark between
-- the copy and the delete would be lost (its row deleted unarchived, or
-- left unmarked and published again). The lock waits for marks under way
-- and holds new writes to the outbox until this migration commits.
LOCK TABLE outbox IN SHARE ROW EXCLUSIVE MODE;
CREATE TABLE outbox_published (
    id             bigint      PRIMARY KEY,
    event_id       uuid        NOT NULL,
    topic          text        NOT NULL,
    message_key    bytea       NOT NULL,
    payload        bytea       NOT NULL,
    schema_version int         NOT NULL,
    headers        jsonb       NOT NULL,
    created_at     timestamptz NOT NULL,
    published_at   timestamptz NOT NULL
);
-- The purge of published rows past RELAY_RETENTION.
CREATE INDEX outbox_published_published_at ON outbox_published (published_at);

INSERT INTO outbox_published (id, event_id, topic, message_key, payload, schema_version, headers, created_at, published_at)
SELECT id, event_id, topic, message_key, payload, schema_version, headers, created_at, published_at
FROM outbox WHERE published_at IS NOT NULL;
DELETE FROM outbox WHERE published_at IS NOT NULL;
-- Drops the partial indexes on it too: the primary key orders the queue.
ALTER TABLE outbox DROP COLUMN published_at;

-- +goose Down
ALTER TABLE outbox ADD COLUMN published_at timestamptz;
INSERT INTO outbox (id, event_id, topic, message_key, payload, schema_version, headers, created_at, published_at)
SELECT id, event_id, topic, message_key, payload, schema_version, headers, created_at, published_at
FROM outbox_published;
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
DROP TABLE outbox_published;
