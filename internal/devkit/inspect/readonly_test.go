package inspect

import (
	"context"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/migrations"
)

// The page's sessions refuse to write: a mistake in this package is an
// error (SQLSTATE 25006), never a change to the services' data.
func TestThePagesSessionsAreReadOnly(t *testing.T) {
	orders, projection := pgtest.MustDB(t, migrations.Orders()), pgtest.MustDB(t, migrations.Projection())
	p, err := New(context.Background(), Config{OrdersDB: orders.URL, ProjectionDB: projection.URL,
		Brokers: []string{"127.0.0.1:1"}, RegistryURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	writes := []struct{ db, sql string }{
		{"orders", "DELETE FROM outbox"},
		{"projection", "DELETE FROM processed_events"},
	}
	for _, w := range writes {
		pool := p.orders
		if w.db == "projection" {
			pool = p.projection
		}
		_, err := pool.Exec(context.Background(), w.sql)
		if err == nil || !strings.Contains(err.Error(), "25006") {
			t.Errorf("%s on %s's session: %v, want SQLSTATE 25006 (read-only transaction)", w.sql, w.db, err)
		}
	}
}
