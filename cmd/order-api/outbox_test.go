package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/migrations"
)

// `outbox list` prints the rows the relay set aside; `outbox retry` moves
// one order's, or all, back to the outbox with their ids, so the relay
// publishes each order's in their order; a command line that does not say
// which is refused, nothing moved. (internal/producer/outbox's tests
// publish what was moved back.)
func TestOutboxCommands(t *testing.T) {
	db := pgtest.MustDB(t, migrations.Orders())
	ctx := context.Background()
	const a, b = "01a24490-0000-7000-8000-00000000000a", "01a24490-0000-7000-8000-00000000000b"
	if _, err := db.Pool.Exec(ctx, `
INSERT INTO outbox_set_aside (id, event_id, topic, message_key, payload, schema_version, headers, created_at, reason)
VALUES (5, gen_random_uuid(), 'order-events', convert_to($1, 'UTF8'), '\x00', 1, '{"event_type": "PLACED"}', now(), 'Kafka refused it: too large'),
       (6, gen_random_uuid(), 'order-events', convert_to($1, 'UTF8'), '\x00', 1, '{"event_type": "PAID"}', now(), 'an earlier event of its order is set aside (outbox row 5)'),
       (7, gen_random_uuid(), 'order-events', convert_to($2, 'UTF8'), '\x00', 1, '{"event_type": "PLACED"}', now(), 'Kafka refused it: invalid')`, a, b); err != nil {
		t.Fatal(err)
	}
	env := func(k string) string { return map[string]string{"DATABASE_URL": db.URL}[k] }
	outboxIDs := func() []int64 {
		t.Helper()
		rs, err := db.Pool.Query(ctx, `SELECT id FROM outbox ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rs, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"outbox", "list"}, env, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{a + "  PLACED", "Kafka refused it: too large", a + "  PAID", "(outbox row 5)", b, "set aside: 3"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("outbox list does not say %q:\n%s", want, out.String())
		}
	}
	for _, args := range [][]string{{}, {"-order", a, "-all"}, {"-order", "not-an-id"}, {"-all", "extra"}} {
		if err := run(ctx, append([]string{"outbox", "retry"}, args...), env, &out, &out); err == nil {
			t.Errorf("outbox retry %s: accepted", strings.Join(args, " "))
		}
	}
	if ids := outboxIDs(); len(ids) != 0 {
		t.Fatalf("refused command lines moved rows %v", ids)
	}
	out.Reset()
	if err := run(ctx, []string{"outbox", "retry", "-order", strings.ToUpper(a)}, env, &out, &out); err != nil || !strings.Contains(out.String(), "moved back to the outbox: 2") {
		t.Fatalf("retry -order: %v\n%s", err, out.String())
	}
	if ids := outboxIDs(); len(ids) != 2 || ids[0] != 5 || ids[1] != 6 {
		t.Fatalf("outbox ids %v after retry -order, want the order's 5 and 6", ids)
	}
	out.Reset()
	if err := run(ctx, []string{"outbox", "retry", "-all"}, env, &out, &out); err != nil || !strings.Contains(out.String(), "moved back to the outbox: 1") {
		t.Fatalf("retry -all: %v\n%s", err, out.String())
	}
	if ids := outboxIDs(); len(ids) != 3 || ids[2] != 7 {
		t.Fatalf("outbox ids %v after retry -all, want 5, 6 and 7", ids)
	}
}
