// Package pgdb opens PostgreSQL connection pools and applies the embedded
// migrations. It is the only migration runner of the project: services at
// start-up, `make migrate` and tests all go through Migrate.
package pgdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Open returns a pool for dsn after checking that the server answers.
// maxConns <= 0 keeps pgxpool's default (the larger of 4 and the CPU count).
func Open(ctx context.Context, dsn string, maxConns int32) (*pgxpool.Pool, error) {
	return open(ctx, dsn, maxConns, "")
}

// open is Open with search_path set to schema, unless it is empty.
func open(ctx context.Context, dsn string, maxConns int32, schema string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	bound(&cfg.ConnConfig.Config)
	if cfg.PingTimeout == 0 {
		cfg.PingTimeout = PingTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(IdleInTransactionTimeout.Milliseconds(), 10)
	}
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		registerUUID(c.TypeMap())
		registerArrays(c.TypeMap())
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, ConnectTimeout+CallTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s: %w", Redact(dsn), err)
	}
	return pool, nil
}

// Migrate applies every migration of fsys not yet applied to the database at
// dsn. A PostgreSQL session lock makes concurrent callers (several replicas
// starting at once) take turns. It refuses a dsn that names no database (see
// DatabaseName) rather than migrate whichever one the server falls back to,
// usually the maintenance database "postgres".
func Migrate(ctx context.Context, dsn string, fsys fs.FS) error {
	return migrate(ctx, dsn, fsys, "")
}

// migrate is Migrate with search_path set to schema, unless it is empty.
func migrate(ctx context.Context, dsn string, fsys fs.FS, schema string) error {
	name, err := DatabaseName(dsn)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	if name == "" {
		return fmt.Errorf("migrate %s: the database url names no database; refusing to migrate the server's default one", Redact(dsn))
	}
	cfg, err := ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	if schema != "" {
		cfg.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	return migrateDB(ctx, db, fsys)
}

func migrateDB(ctx context.Context, db *sql.DB, fsys fs.FS) error {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// EnsureDatabase creates the database named in dsn if it does not exist,
// connecting to the server's "postgres" database to do so. It is for the
// playground and `make migrate`; production databases are provisioned.
func EnsureDatabase(ctx context.Context, dsn string) error {
	cfg, err := ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	name := cfg.Database
	if name == "" || name == "postgres" {
		return nil
	}
	admin := cfg.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to database server %s: %w", Redact(dsn), err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// Redact returns dsn with its password replaced, for logs and errors.
func Redact(dsn string) string {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "(unparsable database url)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// OpenMigrated applies fsys's migrations when migrate is true, then opens a
// pool: what a service does at start-up.
func OpenMigrated(ctx context.Context, dsn string, maxConns int32, migrate bool, fsys fs.FS) (*pgxpool.Pool, error) {
	if migrate {
		if err := Migrate(ctx, dsn, fsys); err != nil {
			return nil, err
		}
	}
	return Open(ctx, dsn, maxConns)
}
