package pgdb_test

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/migrations"
)

// A uuid.UUID parameter, alone or in a slice, reaches PostgreSQL as the
// same uuid, and a pool's connections encode it with at most one allocation (pgx on
// its own took it as a driver.Valuer: a string, a failed binary plan and an
// error per parameter, 19 allocations).
func TestUUIDParametersAreEncodedAsBinaryUUIDs(t *testing.T) {
	db := pgtest.MustDB(t, migrations.Orders())
	ctx := context.Background()
	id, ids := uuid.New(), []uuid.UUID{uuid.New(), uuid.New()}
	var text string
	var texts []string
	if err := db.Pool.QueryRow(ctx, "SELECT $1::uuid::text, $2::uuid[]::text[]", id, ids).Scan(&text, &texts); err != nil {
		t.Fatal(err)
	}
	if text != id.String() || !slices.Equal(texts, []string{ids[0].String(), ids[1].String()}) {
		t.Fatalf("sent %s and %v, PostgreSQL got %s and %v", id, ids, text, texts)
	}

	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	m := conn.Conn().TypeMap()
	buf := make([]byte, 0, 64)
	var param any = id // as pgx gets it
	encode := func(m *pgtype.Map) {
		if _, err := m.Encode(pgtype.UUIDOID, pgx.BinaryFormatCode, param, buf); err != nil {
			t.Fatal(err)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { encode(m) }); allocs > 1 {
		t.Errorf("encoding a uuid.UUID allocated %.0f times, want at most 1 (its 16 bytes, boxed)", allocs)
	}
	plain := pgtype.NewMap()
	if allocs := testing.AllocsPerRun(100, func() { encode(plain) }); allocs == 0 {
		t.Error("pgx's own map encodes a uuid.UUID without allocating too: this test shows nothing")
	}
}
