package pgdb_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
	"github.com/ordersonkafka/orders/migrations"
)

func TestDatabaseNameReadsTheDSNItself(t *testing.T) {
	services := filepath.Join(t.TempDir(), "pg_service.conf")
	if err := os.WriteFile(services, []byte("[withdb]\nhost=localhost\ndbname=svcdb\n\n[nodb]\nhost=localhost\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ dsn, want string }{
		{"postgres://postgres@localhost:5432", ""},
		{"postgres://postgres@localhost:5432/", ""},
		{"postgres://postgres@localhost:5432/?sslmode=disable", ""},
		{"postgres://postgres@localhost:5432?sslmode=disable", ""},
		{"postgresql://localhost", ""},
		{"postgres://h/orders?dbname=", ""},
		{"postgres://u:p@h:5432/orders?sslmode=disable", "orders"},
		{"postgresql://u@h/orders", "orders"},
		{"postgres://h/?dbname=orders", "orders"},
		{"postgres://h?sslmode=disable&dbname=orders", "orders"},
		{"postgres://h/a?dbname=b", "b"},
		{"postgres://h1:5432,h2:5433/orders", "orders"},
		{"postgres://[::1]:5432/orders", "orders"},
		{"postgres://[::1],[::2]:5433/orders", "orders"},
		{"postgres://u:p%2F%40w@h/orders", "orders"},
		{"postgres://h/my%20db", "my db"},
		{"postgres://h/a+b", "a+b"},
		{"host=localhost user=postgres sslmode=disable", ""},
		{"host=localhost dbname=''", ""},
		{"", ""},
		{"host=localhost dbname=orders", "orders"},
		{"dbname = 'my db' host=localhost", "my db"},
		{"dbname=a host=localhost dbname=b", "b"},
		{"service=withdb servicefile=" + services, "svcdb"},
		{"service=withdb servicefile=" + services + " dbname=mine", "mine"},
		{"service=nodb servicefile=" + services, ""},
		{"postgres://localhost?service=withdb&servicefile=" + services, "svcdb"},
	}
	check := func(t *testing.T) {
		for _, tc := range cases {
			got, err := pgdb.DatabaseName(tc.dsn)
			if err != nil || got != tc.want {
				t.Errorf("DatabaseName(%q) = %q, %v; want %q", tc.dsn, got, err, tc.want)
			}
		}
	}
	t.Run("without PGDATABASE", func(t *testing.T) {
		t.Setenv("PGDATABASE", "")
		check(t)
	})
	// pgx would use PGDATABASE for a dsn without a database; it does not
	// make the dsn name one.
	t.Run("with PGDATABASE", func(t *testing.T) {
		t.Setenv("PGDATABASE", "postgres")
		check(t)
		for _, dsn := range []string{"postgres://h/postgres", "dbname=postgres"} {
			if got, err := pgdb.DatabaseName(dsn); got != "postgres" || err != nil {
				t.Errorf("DatabaseName(%q) = %q, %v; want postgres", dsn, got, err)
			}
		}
	})
}

func TestDatabaseNameRefusesWhatDoesNotParseWithoutShowingIt(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:s3cret@h:port/db",
		"postgres://u:s3cr/et@h/db",
		"postgres://u:s3cret@h/db?sslmode=sometimes",
		"host=h password=s3cret port=x",
		"host=h password='s3cret",
		"user:s3cret@h/db",
		"host=h password=s3cret service=missing servicefile=/nonexistent",
	} {
		_, err := pgdb.DatabaseName(dsn)
		if err == nil {
			t.Errorf("DatabaseName(%q) parsed", dsn)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "s3cr") || strings.Contains(msg, "et@h") || !strings.Contains(msg, "connection string") {
			t.Errorf("DatabaseName(%q): %q", dsn, msg)
		}
	}
}

// A dsn without a database would be migrated into whichever database the
// server falls back to. The fallback here is a database named like the user,
// made for this test, so a migration that is not refused shows there.
func TestMigrateRefusesADSNThatNamesNoDatabase(t *testing.T) {
	db, dsn := pgtest.MustUserNamedDB(t)
	err := pgdb.Migrate(context.Background(), dsn, migrations.Orders())
	if err == nil || !strings.Contains(err.Error(), "names no database") {
		t.Errorf("Migrate(%s) = %v, want it refused", dsn, err)
	}
	if tables := db.Tables(t); len(tables) != 0 {
		t.Errorf("the database named like the user has tables after a refused migration: %v", tables)
	}
}
