package pgdb_test

import (
	"context"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/migrations"
)

func TestMigrateIsIdempotentAndCreatesTables(t *testing.T) {
	db := pgtest.MustDB(t, migrations.Orders())
	ctx := context.Background()
	// A second run (a replica restarting) applies nothing and fails nothing.
	if err := pgdbMigrate(ctx, db.URL); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	for _, table := range []string{"orders", "outbox", "outbox_published", "idempotency_keys"} {
		var n int
		if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_name = $1", table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("table %s: found %d, want 1", table, n)
		}
	}
}

func pgdbMigrate(ctx context.Context, url string) error {
	return pgdb.Migrate(ctx, url, migrations.Orders())
}
