package outbox_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/producer/outbox"
	"github.com/ordersonkafka/orders/migrations"
)

// The statements that replace archived rows are their plain statements with
// one ON CONFLICT clause added to the archiving insert, the same clause in
// each, setting every column the insert writes but id: written out whole,
// they cannot drift apart unnoticed.
func TestReplacingStatementsDifferOnlyByTheirOnConflictClause(t *testing.T) {
	columns := regexp.MustCompile(`INSERT INTO outbox_published \(([^)]*)\)`)
	var clause string
	for _, pair := range []struct{ name, plain, replacing string }{
		{"batch read", outbox.SelectBatchSQL, outbox.SelectBatchReplacingSQL},
		{"mark", outbox.MarkSQL, outbox.MarkReplacingSQL},
	} {
		t.Run(pair.name, func(t *testing.T) {
			prefix := 0
			for prefix < len(pair.plain) && pair.plain[prefix] == pair.replacing[prefix] {
				prefix++
			}
			suffix := 0
			for suffix < len(pair.plain)-prefix && pair.plain[len(pair.plain)-1-suffix] == pair.replacing[len(pair.replacing)-1-suffix] {
				suffix++
			}
			if prefix+suffix != len(pair.plain) {
				t.Fatalf("the statements differ by more than an added clause:\n%s\n----\n%s", pair.plain, pair.replacing)
			}
			added := pair.replacing[prefix : len(pair.replacing)-suffix]
			if !strings.HasSuffix(pair.plain[:prefix], " FROM moved") || !strings.HasPrefix(added, "\nON CONFLICT (id) DO UPDATE SET ") {
				t.Fatalf("the added text is not an ON CONFLICT clause after the archiving insert:\n%q", added)
			}
			if clause == "" {
				clause = added
			} else if added != clause {
				t.Errorf("the clause differs from the batch read's:\n%s\n----\n%s", added, clause)
			}
			m := columns.FindStringSubmatch(pair.plain)
			if m == nil {
				t.Fatalf("no archiving insert in\n%s", pair.plain)
			}
			cols := strings.Split(m[1], ", ")
			if got := strings.Count(added, " = excluded."); got != len(cols)-1 {
				t.Errorf("the clause sets %d columns, want the %d the insert writes but id", got, len(cols)-1)
			}
			for _, col := range cols[1:] {
				if !strings.Contains(added, " "+col+" = excluded."+col) {
					t.Errorf("the clause does not set %s", col)
				}
			}
		})
	}
}

// Each plain statement that moves rows is refused when outbox_published
// holds the id of a row it moves, in the way archiveConflict recognises,
// and its replacing variant then moves the row over the archived one.
func TestReplacingStatementsMoveARowOverAnArchivedOne(t *testing.T) {
	for _, tc := range []struct {
		name             string
		plain, replacing string
		args             []any
	}{
		{"batch read", outbox.SelectBatchSQL, outbox.SelectBatchReplacingSQL, []any{10, []int64{1}, []int64{}}},
		{"mark", outbox.MarkSQL, outbox.MarkReplacingSQL, []any{[]int64{1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := pgtest.MustDB(t, migrations.Orders())
			ctx := context.Background()
			if _, err := db.Pool.Exec(ctx, `
INSERT INTO outbox (event_id, topic, message_key, payload, schema_version, headers)
VALUES (gen_random_uuid(), 'order-events', 'new', '\x01', 1, '{}')`); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Pool.Exec(ctx, `
INSERT INTO outbox_published (id, event_id, topic, message_key, payload, schema_version, headers, created_at, published_at)
VALUES (1, gen_random_uuid(), 'order-events', 'old', '\x00', 1, '{}', now() - interval '1 day', now() - interval '1 day')`); err != nil {
				t.Fatal(err)
			}
			_, err := db.Pool.Exec(ctx, tc.plain, tc.args...)
			if !outbox.ArchiveConflict(err) {
				t.Fatalf("the plain statement: %v, want outbox_published_pkey refusing id 1", err)
			}
			if _, err := db.Pool.Exec(ctx, tc.replacing, tc.args...); err != nil {
				t.Fatalf("the replacing statement: %v", err)
			}
			var key []byte
			if err := db.Pool.QueryRow(ctx, `SELECT message_key FROM outbox_published WHERE id = 1`).Scan(&key); err != nil {
				t.Fatal(err)
			}
			var left int
			if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&left); err != nil {
				t.Fatal(err)
			}
			if string(key) != "new" || left != 0 {
				t.Errorf("archived row 1 has key %q and the outbox %d rows, want the moved row (key \"new\") and none", key, left)
			}
		})
	}
}

// Every statement the relay runs is one PostgreSQL accepts against the
// migrated schema, including those only a rare path runs.
func TestTheRelaysStatementsPrepare(t *testing.T) {
	db := pgtest.MustDB(t, migrations.Orders())
	ctx := context.Background()
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for name, sql := range map[string]string{
		"selectBatch": outbox.SelectBatchSQL, "selectBatchReplacing": outbox.SelectBatchReplacingSQL,
		"mark": outbox.MarkSQL, "markReplacing": outbox.MarkReplacingSQL,
		"selectBatchDeleting": outbox.SelectBatchDeletingSQL, "delete": outbox.DeleteSQL, "purge": outbox.PurgeSQL,
		"setAside": outbox.SetAsideSQL, "listSetAside": outbox.ListSetAsideSQL, "retry": outbox.RetrySQL,
	} {
		if _, err := conn.Conn().Prepare(ctx, name, sql); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
