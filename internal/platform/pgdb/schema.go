package pgdb

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A scratch schema holds a second copy of a database's tables, built by the
// same migrations, so the copy can be filled while the live tables serve and
// then moved in with ALTER TABLE ... SET SCHEMA: the moved tables keep the
// names, constraints and index names the migrations gave them.

// CreateSchema (re)creates an empty schema named schema on dsn's database,
// dropping what a previous, unfinished use left, and applies fsys's
// migrations in it.
func CreateSchema(ctx context.Context, dsn, schema string, fsys fs.FS) error {
	cfg, err := ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to database %s: %w", Redact(dsn), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	name := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
		return fmt.Errorf("drop schema %s: %w", schema, err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	if err := migrate(ctx, dsn, fsys, schema); err != nil {
		return fmt.Errorf("schema %s: %w", schema, err)
	}
	return nil
}

// OpenInSchema is Open with every connection's search_path set to schema, so
// unqualified table names resolve there.
func OpenInSchema(ctx context.Context, dsn string, maxConns int32, schema string) (*pgxpool.Pool, error) {
	return open(ctx, dsn, maxConns, schema)
}
