package orderapi_test

import (
	"context"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
)

// Idempotency keys, each with a full response, must not be kept for ever.
// A key is honoured for IDEMPOTENCY_KEY_TTL; past it, using it again places
// a new order, and the purge deletes it.
func TestIdempotencyKeysAreHonouredForTheirTTL(t *testing.T) {
	s := newStack(t)
	api := s.start(t, "IDEMPOTENCY_KEY_TTL", "1h", "RELAY_ENABLED", "false")
	ctx := context.Background()
	other := `{"customer_id":"c-10","currency":"EUR","items":[{"sku":"PEN","quantity":2,"unit_price_minor":150}]}`

	first := place(t, api.url, "Idempotency-Key", "key-1")
	if st, _ := post(t, api.url+"/orders", other, "Idempotency-Key", "key-1"); st != 422 {
		t.Fatalf("the key reused with another body within the TTL: %d, want 422", st)
	}
	if _, err := s.db.Pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '2 hours' WHERE key = 'key-1'`); err != nil {
		t.Fatal(err)
	}
	st, o := post(t, api.url+"/orders", other, "Idempotency-Key", "key-1")
	if st != 201 || o["id"] == first {
		t.Fatalf("the key reused past the TTL: %d %v, want a new order (the first was %s)", st, o, first)
	}
	if st, again := post(t, api.url+"/orders", other, "Idempotency-Key", "key-1"); st != 201 || again["id"] != o["id"] {
		t.Fatalf("a retry of the new order's request: %d %v, want its replay", st, again)
	}

	// Keys past the TTL are purged (at start, then every minute).
	place(t, api.url, "Idempotency-Key", "key-2")
	if _, err := s.db.Pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '2 hours' WHERE key = 'key-2'`); err != nil {
		t.Fatal(err)
	}
	s.start(t, "IDEMPOTENCY_KEY_TTL", "1h", "RELAY_ENABLED", "false")
	keys := func() map[string]bool {
		rows, err := s.db.Pool.Query(ctx, `SELECT key FROM idempotency_keys`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]bool{}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				t.Fatal(err)
			}
			out[k] = true
		}
		return out
	}
	stacktest.WaitFor(t, "key-2 purged", wait, func() bool { return !keys()["key-2"] })
	if !keys()["key-1"] {
		t.Error("a key within its TTL was purged")
	}
}
