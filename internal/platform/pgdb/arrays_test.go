package pgdb_test

import (
	"bytes"
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
)

// Each array type reaches PostgreSQL as the array of the plain slice it is,
// empty ones and extreme values included, and its bytes are those pgx
// writes for the plain slice.
func TestArraysAreWhatPgxWritesInOnePass(t *testing.T) {
	db := pgtest.MustDB(t, nil)
	ctx := context.Background()
	u1, u2 := uuid.New(), uuid.New()
	ts := []time.Time{
		time.Date(2026, 12, 5, 10, 11, 12, 123456000, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.FixedZone("x", 3600)),
		time.Unix(0, 0).UTC(),
	}
	texts := []string{"", "placed", "ünïcödé", "a\"b\\c,{}"}
	for _, tc := range []struct {
		name, cast string
		ours       any
		plain      any
		oid        uint32
	}{
		{"uuid", "uuid[]", pgdb.UUIDs{u1, u2}, [][16]byte{u1, u2}, pgtype.UUIDArrayOID},
		{"uuid, none", "uuid[]", pgdb.UUIDs{}, [][16]byte{}, pgtype.UUIDArrayOID},
		{"bigint", "bigint[]", pgdb.Int8s{0, -1, math.MaxInt64, math.MinInt64}, []int64{0, -1, math.MaxInt64, math.MinInt64}, pgtype.Int8ArrayOID},
		{"int", "int[]", pgdb.Int4s{7, -7, math.MaxInt32}, []int32{7, -7, math.MaxInt32}, pgtype.Int4ArrayOID},
		{"text", "text[]", pgdb.Texts(texts), texts, pgtype.TextArrayOID},
		{"timestamptz", "timestamptz[]", pgdb.Timestamps(ts), ts, pgtype.TimestamptzArrayOID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ours, plain string
			if err := db.Pool.QueryRow(ctx, "SELECT $1::"+tc.cast+"::text, $2::"+tc.cast+"::text", tc.ours, tc.plain).Scan(&ours, &plain); err != nil {
				t.Fatal(err)
			}
			if ours != plain {
				t.Errorf("PostgreSQL got %s, and %s for the plain slice", ours, plain)
			}
			conn, err := db.Pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Release()
			m := conn.Conn().TypeMap()
			want, err := pgtype.NewMap().Encode(tc.oid, pgtype.BinaryFormatCode, tc.plain, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Encode(tc.oid, pgtype.BinaryFormatCode, tc.ours, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("binary\n got %x\nwant %x", got, want)
			}
			// The text format, which pgx may choose elsewhere, is the plain slice's.
			txt, err := m.Encode(tc.oid, pgtype.TextFormatCode, tc.ours, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantText, _ := pgtype.NewMap().Encode(tc.oid, pgtype.TextFormatCode, tc.plain, nil)
			if !bytes.Equal(txt, wantText) {
				t.Errorf("text\n got %s\nwant %s", txt, wantText)
			}
		})
	}
	// What the types are for: a batch's arrays of hundreds of elements cost
	// as few allocations as an empty one, where pgx boxes every element.
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	m := conn.Conn().TypeMap()
	long := make(pgdb.UUIDs, 500)
	ours := testing.AllocsPerRun(50, func() { _, _ = m.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, long, nil) })
	theirs := testing.AllocsPerRun(50, func() { _, _ = m.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, [][16]byte(long), nil) })
	if ours > 5 || theirs < 500 {
		t.Errorf("500 uuids: %v allocations, the plain slice %v; want at most 5 against one or more an element", ours, theirs)
	}
	var got []string
	if err := db.Pool.QueryRow(ctx, "SELECT array_agg(x ORDER BY n) FROM unnest($1::text[]) WITH ORDINALITY AS u(x, n)", pgdb.Texts(texts)).Scan(&got); err != nil || !slices.Equal(got, texts) {
		t.Errorf("unnest gives %q (%v), want %q", got, err, texts)
	}
}
