package outbox

// The statements the relay runs on the outbox tables, each written whole as
// PostgreSQL receives it.
//
// A published row moves from outbox to outbox_published. The ...ReplacingSQL
// variants differ from their plain statement only by an ON CONFLICT clause on
// the archiving insert, which replaces a row outbox_published already holds
// with the id being moved (the outbox's sequence was reset by hand), so
// publishing goes on. They run only after the plain statement was refused
// for that (archiveConflict): the clause makes every move about a fifth
// slower. sql_test.go holds each pair to differing by that clause alone.

// selectBatchSQL moves the rows Kafka acknowledged ($2) to outbox_published
// and reads the next batch in one statement, leaving out the batch being
// written to Kafka ($3). The outer SELECT sees the snapshot from before the
// DELETE, hence the explicit exclusion of $2 too, written as NOT IN
// (subquery) so PostgreSQL hashes it (id <> ALL($2) compared every row with
// every id: 16% slower draining a backlog in batches of 1000).
const selectBatchSQL = `WITH moved AS (
    DELETE FROM outbox WHERE id = ANY($2::bigint[])
    RETURNING id, event_id, topic, message_key, payload, schema_version, headers, created_at
), archived AS (
INSERT INTO outbox_published (id, event_id, topic, message_key, payload, schema_version, headers, created_at, published_at)
SELECT id, event_id, topic, message_key, payload, schema_version, headers, created_at, now() FROM moved)
SELECT id, topic, message_key, payload, schema_version, headers, created_at
FROM outbox WHERE id NOT IN (SELECT unnest($2::bigint[] || $3::bigint[])) ORDER BY id LIMIT $1`

// selectBatchReplacingSQL is selectBatchSQL replacing archived rows of the
// ids it moves.
const selectBatchReplacingSQL = `WITH moved AS (
    DELETE FROM outbox WHERE id = ANY($2::bigint[])
    RETURNING id, event_id, topic, message_key, payload, schema_version, headers, created_at
), archived AS (
INSERT INTO outbox_published (id, event_id, topic, message_key, payload, schema_version, headers, created_at, published_at)
SELECT id, event_id, topic, message_key, payload, schema_version, headers, created_at, now() FROM moved
ON CONFLICT (id) DO UPDATE SET event_id = excluded.event_id, topic = excluded.topic, message_key = excluded.message_key,
    payload = excluded.payload, schema_version = excluded.schema_version, headers = excluded.headers,
    created_at = excluded.created_at, published_at = excluded.published_at)
SELECT id, topic, message_key, payload, schema_version, headers, created_at
FROM outbox WHERE id NOT IN (SELECT unnest($2::bigint[] || $3::bigint[])) ORDER BY id LIMIT $1`

// markSQL moves ($1) published rows outside a batch read.
const markSQL = `WITH moved AS (
    DELETE FROM outbox WHERE id = ANY($1::bigint[])
    RETURNING id, event_id, topic, message_key, payload, schema_version, headers, created_at
)
INSERT INTO outbox_published (id, event_id, topic, message_key, payload, schema_version, headers, created_at, published_at)
SELECT id, event_id, topic, message_key, payload, schema_version, headers, created_at, now() FROM moved`

// markReplacingSQL is markSQL replacing archived rows of the ids it moves.
const markReplacingSQL = `WITH moved AS (
    DELETE FROM outbox WHERE id = ANY($1::bigint[])
    RETURNING id, event_id, topic, message_key, payload, schema_version, headers, created_at
)
INSERT INTO outbox_published (id, event_id, topic, message_key, payload, schema_version, headers, created_at, published_at)
SELECT id, event_id, topic, message_key, payload, schema_version, headers, created_at, now() FROM moved
ON CONFLICT (id) DO UPDATE SET event_id = excluded.event_id, topic = excluded.topic, message_key = excluded.message_key,
    payload = excluded.payload, schema_version = excluded.schema_version, headers = excluded.headers,
    created_at = excluded.created_at, published_at = excluded.published_at`

// With Retention 0, published rows are deleted instead of kept: the batch
// read deletes the acknowledged rows ($2) in place of moving them, and
// deleteSQL does outside a batch read what markSQL does.
const (
	selectBatchDeletingSQL = `
WITH deleted AS (
    DELETE FROM outbox WHERE id = ANY($2::bigint[])
)
SELECT id, topic, message_key, payload, schema_version, headers, created_at
FROM outbox WHERE id NOT IN (SELECT unnest($2::bigint[] || $3::bigint[])) ORDER BY id LIMIT $1`
	deleteSQL = `DELETE FROM outbox WHERE id = ANY($1)`
)

// purgeSQL deletes at most 5000 of the rows published more than $1 ago,
// oldest first (purge repeats it while it deletes that many).
const purgeSQL = `
DELETE FROM outbox_published WHERE id IN (
    SELECT id FROM outbox_published WHERE published_at < now() - $1::interval ORDER BY published_at LIMIT 5000)`
