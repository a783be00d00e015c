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
//
// A row of the batch that follows a set-aside row of its order (follows:
// the first such row's id) is moved to outbox_set_aside in the same
// statement, whenever it was written: an order's events are published in
// their order or not at all. Its row is returned too, to be logged and
// counted, never written. The batch is read once, walking the primary key
// (each row's lookup is a probe of outbox_set_aside's index); the outer
// SELECT returns it in the CTE's order, id order, without a sort of its own.
const selectBatchSQL = `WITH moved AS (
    DELETE FROM outbox WHERE id = ANY($2::bigint[])
    RETURNING id, event_id, topic, message_key, payload, schema_version, headers, created_at
), archived AS (
INSERT INTO outbox_published (id, event_id, topic, message_key, payload, schema_version, headers, created_at, published_at)
SELECT id, event_id, topic, message_key, payload, schema_version, headers, created_at, now() FROM moved), ` + readBatchSQL

// readBatchSQL is the end of every batch read: the next $1 rows not among
// $2 and $3, those following a set-aside row moved beside it.
const readBatchSQL = `batch AS (
SELECT id, event_id, topic, message_key, payload, schema_version, headers, created_at,
    (SELECT min(s.id) FROM outbox_set_aside s WHERE s.message_key = o.message_key AND s.id < o.id) AS follows
FROM outbox o WHERE id NOT IN (SELECT unnest($2::bigint[] || $3::bigint[])) ORDER BY id LIMIT $1
), diverted AS (
    DELETE FROM outbox WHERE id = ANY(ARRAY(SELECT id FROM batch WHERE follows IS NOT NULL))
    RETURNING id
), set_aside AS (
INSERT INTO outbox_set_aside (id, event_id, topic, message_key, payload, schema_version, headers, created_at, reason)
SELECT id, event_id, topic, message_key, payload, schema_version, headers, created_at,
    'an earlier event of its order is set aside (outbox row ' || follows || ')'
FROM batch WHERE id = ANY(ARRAY(SELECT id FROM diverted)))
SELECT id, topic, message_key, payload, schema_version, headers, created_at, follows FROM batch`

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
    created_at = excluded.created_at, published_at = excluded.published_at), ` + readBatchSQL

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
), ` + readBatchSQL
	deleteSQL = `DELETE FROM outbox WHERE id = ANY($1)`
)

// setAsideSQL moves outbox row $1, which Kafka refused for the reason $2,
// and every later row of its order to outbox_set_aside, in one statement:
// no relay, whatever its version, can publish them meanwhile. It returns
// what it moved, for the log. Nothing when row $1 is gone (deleted by an
// operator).
const setAsideSQL = `WITH moved AS (
    DELETE FROM outbox WHERE id >= $1::bigint AND message_key = (SELECT message_key FROM outbox WHERE id = $1::bigint)
    RETURNING id, event_id, topic, message_key, payload, schema_version, headers, created_at
)
INSERT INTO outbox_set_aside (id, event_id, topic, message_key, payload, schema_version, headers, created_at, reason)
SELECT id, event_id, topic, message_key, payload, schema_version, headers, created_at,
    CASE WHEN id = $1::bigint THEN $2::text ELSE 'an earlier event of its order is set aside (outbox row ' || $1::bigint || ')' END
FROM moved
RETURNING id, message_key, event_id::text, COALESCE(headers->>'event_type', ''), reason`

// purgeSQL deletes at most 5000 of the rows published more than $1 ago,
// oldest first (purge repeats it while it deletes that many).
const purgeSQL = `
DELETE FROM outbox_published WHERE id IN (
    SELECT id FROM outbox_published WHERE published_at < now() - $1::interval ORDER BY published_at LIMIT 5000)`
