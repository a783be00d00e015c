package outbox

import "strings"

// selectBatchSQL moves the rows Kafka acknowledged ($2) to outbox_published
// and reads the next batch in one statement, leaving out the batch being
// written to Kafka ($3). The outer SELECT sees the snapshot from before the
// DELETE, hence the explicit exclusion of $2 too, written as NOT IN
// (subquery) so PostgreSQL hashes it (id <> ALL($2) compared every row with
// every id: 16% slower draining a backlog in batches of 1000).
const selectBatchSQL = `WITH ` + moveCTE + `, archived AS (` + archiveSQL + `)` + selectNextSQL

// markSQL moves ($1) published rows outside a batch read.
var markSQL = `WITH ` + strings.Replace(moveCTE, "$2", "$1", 1) + archiveSQL

const (
	moveCTE = `moved AS (
    DELETE FROM outbox WHERE id = ANY($2::bigint[])
    RETURNING id, event_id, topic, message_key, payload, schema_version, headers, created_at
)`
	archiveSQL = `
INSERT INTO outbox_published (id, event_id, topic, message_key, payload, schema_version, headers, created_at, published_at)
SELECT id, event_id, topic, message_key, payload, schema_version, headers, created_at, now() FROM moved`
	selectNextSQL = `
SELECT id, topic, message_key, payload, schema_version, headers, created_at
FROM outbox WHERE id NOT IN (SELECT unnest($2::bigint[] || $3::bigint[])) ORDER BY id LIMIT $1`
	// replaceArchived is added to the archiving insert when outbox_published
	// already holds an id being moved (the outbox's sequence was reset by
	// hand): the old row is replaced, so publishing goes on. Only then: it
	// makes the move about a fifth slower.
	replaceArchived = `
ON CONFLICT (id) DO UPDATE SET event_id = excluded.event_id, topic = excluded.topic, message_key = excluded.message_key,
    payload = excluded.payload, schema_version = excluded.schema_version, headers = excluded.headers,
    created_at = excluded.created_at, published_at = excluded.published_at`
)

// replacing returns query with replaceArchived added to its archiving insert.
func replacing(query string) string {
	return strings.Replace(query, archiveSQL, archiveSQL+replaceArchived, 1)
}

// With Retention 0, published rows are deleted instead of kept.
const (
	selectBatchDeletingSQL = `
WITH deleted AS (
    DELETE FROM outbox WHERE id = ANY($2::bigint[])
)
SELECT id, topic, message_key, payload, schema_version, headers, created_at
FROM outbox WHERE id NOT IN (SELECT unnest($2::bigint[] || $3::bigint[])) ORDER BY id LIMIT $1`
	deleteSQL = `DELETE FROM outbox WHERE id = ANY($1)`
)

const purgeSQL = `
DELETE FROM outbox_published WHERE id IN (
    SELECT id FROM outbox_published WHERE published_at < now() - $1::interval ORDER BY published_at LIMIT 5000)`
