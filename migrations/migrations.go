// Package migrations embeds the numbered SQL migrations of each database the
// project owns. One runner (internal/platform/pgdb.Migrate) applies them, for the
// services at start-up, for `make migrate` and for every test database.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed orders/*.sql projection/*.sql
var files embed.FS

// Orders returns the migrations of order-api's database (orders, outbox,
// its archive of published rows, idempotency keys).
func Orders() fs.FS { return sub("orders") }

// Projection returns the migrations of order-consumer's database (the order
// projection and the processed-events ledger).
func Projection() fs.FS { return sub("projection") }

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil { // the directory is embedded above; this cannot fail
		panic(err)
	}
	return f
}
