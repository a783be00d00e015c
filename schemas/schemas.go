// Package schemas embeds the Avro schemas of the order events, every version
// ever published, and states the compatibility policy of their subject.
//
// The subject's level is BACKWARD_TRANSITIVE: each new version reads the
// data of every version before it. That is what a consumer needs to rebuild
// its projection from the start of the topic, and it is the level Confluent's
// registry enforces. Under it, consumers are deployed before the producer
// that writes a new version.
//
// On top of it, the project keeps a rule the registry cannot express: from
// version 3 (the first whose enums have a default) every version also reads
// every later version's data — FULL_TRANSITIVE from version 3 on. So a
// consumer that is not yet upgraded still reads a newer producer's events:
// it ignores a field it does not know, and meets a status or event type it
// does not know as UNKNOWN (the enums' default), which it parks in the
// dead-letter topic instead of guessing. Versions 1 and 2 have enums without
// a default, so FULL_TRANSITIVE over every version would forbid a new symbol
// for ever; that is why the registry's level stops at BACKWARD_TRANSITIVE.
//
// Allowed, then: adding a field with a default, removing a field that has
// one, adding an enum symbol. Not allowed: a field without a default, a
// changed type (beyond Avro's promotions), a renamed field without an alias,
// a removed enum symbol. schemas_test.go checks both rules on every version.
//
// Files are named order_event.vN.avsc, N counting from 1 without gaps; a
// published file is never edited, only followed by a new one.
package schemas

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

// Compatibility is the Schema Registry compatibility level of the value
// subject, set by the relay before it registers a schema.
const Compatibility = "BACKWARD_TRANSITIVE"

// FullFrom is the first version of the project's own rule: it and every
// later version read each other's data (see the package comment).
const FullFrom = 3

// UnknownSymbol is the default of every enum from version 3: what a reader
// meets in place of a symbol its schema does not have. It is never written.
const UnknownSymbol = "UNKNOWN"

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

// CheckPolicy checks versions (every version, oldest first) against the
// policy in the package comment: each reads the data of every earlier one;
// from FullFrom on each also reads every later one's; an enum never loses
// a symbol (a rebuild must interpret everything ever written, not park
// it); and from FullFrom on every enum has the default UnknownSymbol, so the
// next symbol can be added. The error names each breach.
func CheckPolicy(versions []Schema) error {
	parsed := make([]avro.Schema, len(versions))
	for i, v := range versions {
		s, err := avro.ParseWithCache(v.Text, "", &avro.SchemaCache{}) // every version shares the record's name
		if err != nil {
			return fmt.Errorf("v%d does not parse: %w", v.Version, err)
		}
		parsed[i] = s
	}
	// A checker per pair: hamba/avro's caches verdicts by a fingerprint
	// that ignores defaults, so a shared one answers for one version with
	// another's verdict (the embedded registry had the same bug).
	compatible := func(reader, writer avro.Schema) error {
		return avro.NewSchemaCompatibility().Compatible(reader, writer)
	}
	var errs []error
	for i, older := range versions {
		for j := i + 1; j < len(versions); j++ {
			newer := versions[j]
			if err := compatible(parsed[j], parsed[i]); err != nil {
				errs = append(errs, fmt.Errorf("v%d cannot read data written with v%d (%s): %w", newer.Version, older.Version, Compatibility, err))
			}
			if older.Version >= FullFrom {
				if err := compatible(parsed[i], parsed[j]); err != nil {
					errs = append(errs, fmt.Errorf("v%d cannot read data written with v%d (full from v%d): %w", older.Version, newer.Version, FullFrom, err))
				}
			}
		}
		if i > 0 {
			before := enums(parsed[i-1])
			for name, e := range enums(parsed[i]) {
				if prev, ok := before[name]; ok {
					for _, sym := range prev.Symbols() {
						if !slices.Contains(e.Symbols(), sym) {
							errs = append(errs, fmt.Errorf("v%d removes symbol %s of enum %s", older.Version, sym, name))
						}
					}
				}
			}
		}
		if older.Version >= FullFrom {
			for name, e := range enums(parsed[i]) {
				if e.Default() != UnknownSymbol {
					errs = append(errs, fmt.Errorf("v%d: enum %s has default %q, want %s", older.Version, name, e.Default(), UnknownSymbol))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// enums returns the enums of s by full name.
func enums(s avro.Schema) map[string]*avro.EnumSchema {
	out := map[string]*avro.EnumSchema{}
	seen := map[string]bool{}
	var walk func(avro.Schema)
	walk = func(s avro.Schema) {
		switch s := s.(type) {
		case *avro.EnumSchema:
			out[s.FullName()] = s
		case *avro.RecordSchema:
			if seen[s.FullName()] {
				return
			}
			seen[s.FullName()] = true
			for _, f := range s.Fields() {
				walk(f.Type())
			}
		case *avro.RefSchema:
			walk(s.Schema())
		case *avro.ArraySchema:
			walk(s.Items())
		case *avro.MapSchema:
			walk(s.Values())
		case *avro.UnionSchema:
			for _, t := range s.Types() {
				walk(t)
			}
		}
	}
	walk(s)
	return out
}
