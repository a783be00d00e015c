package projectionstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersonkafka/orders/internal/platform/pgdb"
)

// A rebuild fills a fresh ledger, order_versions and every read model's
// tables in a scratch schema, beside the live ones, which keep serving
// reads; only a complete rebuild is moved in, in one transaction. A rebuild
// that fails or is refused leaves everything as it was.

// rebuildSchema holds the tables being rebuilt.
const rebuildSchema = "projection_rebuild"

// rebuildLockKey is a session advisory lock held for the whole rebuild, so
// two rebuilds cannot build into the same scratch schema.
const rebuildLockKey int64 = 0x72656275696c64 // "rebuild"

// Origin returns, for each partition of topic recorded, the first offset of
// the topic when the projection was last rebuilt from it. A partition not
// recorded was built from offset 0.
func (s *Store) Origin(ctx context.Context, topic string) (map[int]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT partition, first_offset FROM projection_origin WHERE topic = $1`, topic)
	if err != nil {
		return nil, fmt.Errorf("read projection origin: %w", err)
	}
	defer rows.Close()
	origin := map[int]int64{}
	for rows.Next() {
		var (
			p int
			o int64
		)
		if err := rows.Scan(&p, &o); err != nil {
			return nil, fmt.Errorf("read projection origin: %w", err)
		}
		origin[p] = o
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read projection origin: %w", err)
	}
	return origin, nil
}

// Rebuild is the consumer's database being built beside the live one.
// Apply events to its Store, then Commit to move it in; always Close it.
type Rebuild struct {
	Store *Store // writes into the new tables

	live    *Store
	scratch *pgxpool.Pool
	lock    *pgx.Conn
}

// coreTables are the tables of the store itself that a rebuild replaces,
// besides the read models'.
var coreTables = []string{"processed_events", "order_versions", "parked_events"}

// BeginRebuild creates empty tables in a scratch schema of the database at
// dsn (by fsys, the projection's migrations) and returns a Rebuild writing
// into them with s's machine and read models. It fails if another rebuild
// of this database is running.
func (s *Store) BeginRebuild(ctx context.Context, dsn string, fsys fs.FS) (*Rebuild, error) {
	lock, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("begin rebuild: %w", err)
	}
	var got bool
	if err := lock.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, rebuildLockKey).Scan(&got); err != nil || !got {
		_ = lock.Close(context.WithoutCancel(ctx))
		if err == nil {
			err = errors.New("another rebuild of this projection is running")
		}
		return nil, fmt.Errorf("begin rebuild: %w", err)
	}
	r := &Rebuild{live: s, lock: lock}
	if err := pgdb.CreateSchema(ctx, dsn, rebuildSchema, fsys); err != nil {
		r.Close(ctx)
		return nil, fmt.Errorf("begin rebuild: %w", err)
	}
	if r.scratch, err = pgdb.OpenInSchema(ctx, dsn, 4, rebuildSchema); err != nil {
		r.Close(ctx)
		return nil, fmt.Errorf("begin rebuild: %w", err)
	}
	r.Store = New(r.scratch, s.machine, nil, s.models...)
	return r, nil
}

// Loss is what moving a rebuild in would lose: orders the live database
// holds that the rebuilt one does not, and orders it holds at a newer
// version (order_versions). Examples names a few of them.
type Loss struct {
	Missing, Behind int64
	Examples        []uuid.UUID
}

const lossSQL = `
SELECT
    (SELECT count(*) FROM order_versions l
     WHERE NOT EXISTS (SELECT FROM %[1]s.order_versions r WHERE r.order_id = l.order_id)),
    (SELECT count(*) FROM order_versions l JOIN %[1]s.order_versions r ON r.order_id = l.order_id
     WHERE r.version < l.version),
    ARRAY(SELECT l.order_id FROM order_versions l LEFT JOIN %[1]s.order_versions r ON r.order_id = l.order_id
          WHERE r.order_id IS NULL OR r.version < l.version ORDER BY l.order_id LIMIT 5)`

// Loss compares the rebuilt database with the live one.
func (r *Rebuild) Loss(ctx context.Context) (Loss, error) {
	var l Loss
	err := r.live.pool.QueryRow(ctx, fmt.Sprintf(lossSQL, pgx.Identifier{rebuildSchema}.Sanitize())).Scan(&l.Missing, &l.Behind, &l.Examples)
	if err != nil {
		return Loss{}, fmt.Errorf("compare the rebuilt projection: %w", err)
	}
	return l, nil
}

// Commit replaces the live ledger, order_versions and every read model's
// tables by the rebuilt ones, and records origin (partition → first offset
// the rebuild read from) for topic, all in one transaction: readers see the
// old tables until it commits, then the new ones.
func (r *Rebuild) Commit(ctx context.Context, topic string, origin map[int]int64) error {
	tables := slices.Clone(coreTables)
	for _, m := range r.live.models {
		tables = append(tables, m.Tables()...)
	}
	tx, err := r.live.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("commit rebuild: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	var schema string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("commit rebuild: %w", err)
	}
	to, from := pgx.Identifier{schema}.Sanitize(), pgx.Identifier{rebuildSchema}.Sanitize()
	// Commit is retried when the database fails; a failure that lost the
	// reply to a COMMIT that went through leaves the scratch tables moved
	// out, which only this rebuild (it holds the lock) can have done.
	var moved bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NULL`, rebuildSchema+"."+tables[0]).Scan(&moved); err != nil {
		return fmt.Errorf("commit rebuild: %w", err)
	}
	if moved {
		return nil
	}
	parts := make([]int, 0, len(origin))
	for p := range origin {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	offsets := make([]int64, len(parts))
	for i, p := range parts {
		offsets[i] = origin[p]
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = pgx.Identifier{t}.Sanitize()
	}
	type stmt struct {
		sql  string
		args []any
	}
	stmts := []stmt{
		{`LOCK TABLE ` + strings.Join(names, ", ") + ` IN ACCESS EXCLUSIVE MODE`, nil},
		{`DROP TABLE ` + strings.Join(names, ", "), nil},
	}
	for _, t := range names {
		stmts = append(stmts, stmt{`ALTER TABLE ` + from + `.` + t + ` SET SCHEMA ` + to, nil})
	}
	stmts = append(stmts,
		stmt{`DELETE FROM projection_origin WHERE topic = $1`, []any{topic}},
		stmt{`INSERT INTO projection_origin (topic, partition, first_offset)
		  SELECT $1, p, o FROM unnest($2::int[], $3::bigint[]) AS x(p, o)`, []any{topic, parts, offsets}})
	for _, stmt := range stmts {
		if _, err := tx.Exec(ctx, stmt.sql, stmt.args...); err != nil {
			return fmt.Errorf("commit rebuild: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit rebuild: %w", err)
	}
	return nil
}

// Close drops the scratch schema (what is left of it after Commit, or the
// abandoned rebuild) and releases the rebuild lock.
func (r *Rebuild) Close(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	if r.scratch != nil {
		r.scratch.Close()
	}
	_, _ = r.lock.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{rebuildSchema}.Sanitize()+` CASCADE`)
	_ = r.lock.Close(ctx) // the advisory lock ends with the session
}
