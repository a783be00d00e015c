package migrations_test

import (
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/migrations"
)

var (
	upSection  = regexp.MustCompile(`(?s)-- \+goose Up(.*?)(?:-- \+goose Down|$)`)
	comment    = regexp.MustCompile(`--[^\n]*`)
	tableName  = regexp.MustCompile(`(?i)\b(?:CREATE|ALTER)\s+TABLE\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?:ONLY\s+)?(\w+)`)
	checkIn    = regexp.MustCompile(`(?is)\bCHECK\s*\(\s*(\w+)\s+IN\s*\(([^)]*)\)\s*\)`)
	checkOf    = regexp.MustCompile(`(?i)\bCHECK\s*\(\s*\(?\s*(status|event_type)\b`)
	dropCheck  = regexp.MustCompile(`(?i)\bDROP\s+CONSTRAINT\s+(?:IF\s+EXISTS\s+)?(\w+)`)
	quotedText = regexp.MustCompile(`'([^']*)'`)
)

// checkLists returns, for each "table.column" of the database migrated by
// fsys, the values its CHECK (column IN (...)) allows once every migration
// has run: a later definition replaces an earlier one, and a DROP
// CONSTRAINT of PostgreSQL's default name (table_column_check) removes it.
func checkLists(fsys fs.FS) (map[string][]string, error) {
	names, err := fs.Glob(fsys, "*.sql") // sorted: the order they are applied in
	if err != nil {
		return nil, err
	}
	lists := map[string][]string{}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		up := upSection.FindStringSubmatch(string(b))
		if up == nil {
			return nil, fmt.Errorf("%s has no -- +goose Up section", name)
		}
		for _, stmt := range strings.Split(comment.ReplaceAllString(up[1], ""), ";") {
			table := tableName.FindStringSubmatch(stmt)
			checks := checkIn.FindAllStringSubmatch(stmt, -1)
			read := 0
			for _, c := range checks {
				if strings.EqualFold(c[1], "status") || strings.EqualFold(c[1], "event_type") {
					read++
				}
			}
			if n := len(checkOf.FindAllString(stmt, -1)); n > 0 && (table == nil || n > read) {
				return nil, fmt.Errorf("%s: a CHECK on status or event_type this test cannot read (want CHECK (column IN ('a', 'b')) in a CREATE or ALTER TABLE):\n%s", name, strings.TrimSpace(stmt))
			}
			if table == nil {
				continue
			}
			for _, drop := range dropCheck.FindAllStringSubmatch(stmt, -1) {
				for key := range lists {
					if strings.EqualFold(drop[1], strings.ReplaceAll(key, ".", "_")+"_check") {
						delete(lists, key)
					}
				}
			}
			for _, c := range checks {
				var values []string
				for _, q := range quotedText.FindAllStringSubmatch(c[2], -1) {
					values = append(values, q[1])
				}
				lists[table[1]+"."+c[1]] = values
			}
		}
	}
	return lists, nil
}

// TestStatusChecksAreTheDomainLists keeps the CHECK constraints of both
// databases equal to order.Standard.Statuses() (and order.Standard.EventTypes(), for any column
// named event_type that is checked): a new status the database would
// refuse fails here, not in production.
func TestStatusChecksAreTheDomainLists(t *testing.T) {
	var statuses, types []string
	for _, s := range order.Standard.Statuses() {
		statuses = append(statuses, string(s))
	}
	for _, e := range order.Standard.EventTypes() {
		types = append(types, string(e))
	}
	for db, c := range map[string]struct {
		fsys fs.FS
		want []string // columns that must be checked, so this test cannot pass on nothing
	}{
		"orders":     {migrations.Orders(), []string{"orders.status"}},
		"projection": {migrations.Projection(), []string{"order_projection.status"}},
	} {
		t.Run(db, func(t *testing.T) {
			lists, err := checkLists(c.fsys)
			if err != nil {
				t.Fatal(err)
			}
			for _, col := range c.want {
				if _, ok := lists[col]; !ok {
					t.Errorf("no CHECK (... IN (...)) on %s after the last migration", col)
				}
			}
			for col, got := range lists {
				var want []string
				switch {
				case strings.HasSuffix(col, ".status"):
					want = statuses
				case strings.HasSuffix(col, ".event_type"):
					want = types
				default:
					continue // another vocabulary (outcome, ...)
				}
				if !sameSet(got, want) {
					t.Errorf("%s allows %v; the domain lists %v", col, got, want)
				}
			}
		})
	}
}

// The reader above follows redefinitions and refuses what it cannot read;
// without that, the test above could pass on a stale list.
func TestCheckListsFollowRedefinitions(t *testing.T) {
	lists, err := checkLists(fstest.MapFS{
		"00001_a.sql": {Data: []byte("-- +goose Up\nCREATE TABLE t (\n  status text CHECK (status IN ('a', 'b')),\n  kind text CHECK (kind IN ('x'))\n);\n-- +goose Down\nDROP TABLE t;\n")},
		"00002_b.sql": {Data: []byte("-- +goose Up\n-- CHECK (status IN ('commented'))\nALTER TABLE t DROP CONSTRAINT t_status_check,\n  ADD CONSTRAINT t_status_check CHECK (status IN ('a', 'b', 'c'));\n")},
		"00003_c.sql": {Data: []byte("-- +goose Up\nALTER TABLE t DROP CONSTRAINT t_kind_check;\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := lists["t.status"]; !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("t.status allows %v, want the redefinition [a b c]", got)
	}
	if got, ok := lists["t.kind"]; ok {
		t.Errorf("t.kind allows %v after its CHECK was dropped", got)
	}
}

func TestCheckListsRefuseWhatTheyCannotRead(t *testing.T) {
	for name, sql := range map[string]string{
		"ANY array":        "CREATE TABLE t (status text CHECK (status = ANY (ARRAY['a'])));",
		"no table":         "DO $$ BEGIN PERFORM 1 WHERE 'a' IN ('a') AND CHECK (status IN ('a')); END $$;",
		"named constraint": "ALTER TABLE t ADD CONSTRAINT s CHECK ((status)::text = 'a');",
	} {
		if lists, err := checkLists(fstest.MapFS{"00001.sql": {Data: []byte("-- +goose Up\n" + sql)}}); err == nil {
			t.Errorf("%s: read as %v, want an error", name, lists)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b) && len(slices.Compact(a)) == len(b)
}
