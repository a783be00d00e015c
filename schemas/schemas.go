// Package schemas embeds the Avro schemas of the order events, every version
// ever published, and states the compatibility policy of their subject.
//
// The policy is FULL_TRANSITIVE: every version can read data written with
// every other, in both directions. Consumers may be upgraded before or after
// the producer (old readers meet new events during a rolling deploy), and a
// consumer rebuilding its projection from the start of the topic reads every
// version ever written. In practice a change may only add or remove fields
// that have a default. Enum symbols cannot be added under this policy (an
// old reader would meet a symbol it does not know), so a new event type is a
// deliberate, breaking decision: a new subject, not a new version.
//
// Files are named order_event.vN.avsc, N counting from 1 without gaps; a
// published file is never edited, only followed by a new one.
package schemas

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Compatibility is the Schema Registry compatibility level of the value
// subject, set by the relay before it registers a schema.
const Compatibility = "FULL_TRANSITIVE"

//go:embed *.avsc
var files embed.FS

// Schema is one version of the order event schema.
type Schema struct {
	Version int    // N of order_event.vN.avsc
	Text    string // the schema as JSON
}

var all = load()

func load() []Schema {
	entries, err := fs.Glob(files, "order_event.v*.avsc")
	if err != nil {
		panic(err)
	}
	var out []Schema
	for _, name := range entries {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "order_event.v"), ".avsc"))
		if err != nil {
			panic(fmt.Sprintf("schemas: %s: version is not a number", name))
		}
		b, err := files.ReadFile(name)
		if err != nil {
			panic(err)
		}
		out = append(out, Schema{Version: n, Text: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// All returns every version, oldest first.
func All() []Schema { return append([]Schema(nil), all...) }

// Latest returns the newest version: the one events are written with.
func Latest() Schema { return all[len(all)-1] }

// ByVersion returns version v, or false if there is none.
func ByVersion(v int) (Schema, bool) {
	for _, s := range all {
		if s.Version == v {
			return s, true
		}
	}
	return Schema{}, false
}
