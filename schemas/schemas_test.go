package schemas_test

import (
	"fmt"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/ordersonkafka/orders/schemas"
)

func parse(t *testing.T, s schemas.Schema) avro.Schema {
	t.Helper()
	// A cache per schema: every version shares the record's full name.
	parsed, err := avro.ParseWithCache(s.Text, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatalf("order_event.v%d.avsc does not parse: %v", s.Version, err)
	}
	return parsed
}

func TestVersionsAreContiguousFromOne(t *testing.T) {
	for i, s := range schemas.All() {
		if s.Version != i+1 {
			t.Fatalf("versions %v: want 1..n without gaps", versions())
		}
		parse(t, s)
	}
	if got := schemas.Latest().Version; got != len(schemas.All()) {
		t.Fatalf("Latest() = v%d, want v%d", got, len(schemas.All()))
	}
}

func versions() []int {
	var v []int
	for _, s := range schemas.All() {
		v = append(v, s.Version)
	}
	return v
}

// TestEveryVersionPairSatisfiesThePolicy checks the subject's policy,
// FULL_TRANSITIVE, on everything kept in schemas/: each version reads every
// other's data and the other way round. A new schema that breaks the policy
// fails here, before the registry would refuse it in production.
func TestEveryVersionPairSatisfiesThePolicy(t *testing.T) {
	if schemas.Compatibility != "FULL_TRANSITIVE" {
		t.Fatalf("policy changed to %s: update this test and the README", schemas.Compatibility)
	}
	all := schemas.All()
	compat := avro.NewSchemaCompatibility()
	for _, a := range all {
		for _, b := range all {
			if a.Version == b.Version {
				continue
			}
			t.Run(fmt.Sprintf("v%d reads v%d", a.Version, b.Version), func(t *testing.T) {
				if err := compat.Compatible(parse(t, a), parse(t, b)); err != nil {
					t.Fatalf("v%d cannot read data written with v%d: %v", a.Version, b.Version, err)
				}
			})
		}
	}
}

// TestCheckerRejectsABreakingChange guards the test above: the checker must
// notice a new required field, or the policy test proves nothing.
func TestCheckerRejectsABreakingChange(t *testing.T) {
	old := avro.MustParse(`{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}`)
	breaking := avro.MustParse(`{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"long"}]}`)
	if err := avro.NewSchemaCompatibility().Compatible(breaking, old); err == nil {
		t.Fatal("a reader requiring a field the writer lacks was called compatible")
	}
}
