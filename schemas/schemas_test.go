package schemas_test

import (
	"fmt"
	"strings"
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

// TestEveryVersionPairSatisfiesThePolicy checks the policy on everything
// kept in schemas/: each version reads the data of every version before it
// (the registry's BACKWARD_TRANSITIVE), and from FullFrom on each also
// reads every later version's data. A new schema that breaks either fails
// here, before the registry (or an old consumer) would meet it.
func TestEveryVersionPairSatisfiesThePolicy(t *testing.T) {
	if schemas.Compatibility != "BACKWARD_TRANSITIVE" {
		t.Fatalf("policy changed to %s: update this test and docs/events.md", schemas.Compatibility)
	}
	if err := schemas.CheckPolicy(schemas.All()); err != nil {
		t.Fatal(err)
	}
}

// Each rule of the policy refuses what it must: a reader that needs a field
// older data lacks, and, from FullFrom on, a symbol removed (an old reader
// of the version before would still be fine, a newer one not) or a
// version whose enums lose their default.
func TestThePolicyRefusesBreakingVersions(t *testing.T) {
	latest := schemas.Latest()
	for _, tc := range []struct {
		name, want string
		edit       func(string) string
	}{
		{"a field without a default", "reader field x is missing in writer schema", func(s string) string {
			return strings.Replace(s, `"fields": [`, `"fields": [{"name": "x", "type": "long"},`, 1)
		}},
		{"an enum symbol removed", "removes symbol REFUNDED", func(s string) string { return strings.Replace(s, `"REFUNDED",`, "", 2) }},
		{"an enum without its default, and a new symbol", `has default "", want UNKNOWN`, func(s string) string {
			return strings.Replace(strings.Replace(s, `"default": "UNKNOWN",`, "", 1), `"UNKNOWN"`, `"UNKNOWN", "SHIPPED"`, 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := schemas.Schema{Version: latest.Version + 1, Text: tc.edit(latest.Text)}
			if next.Text == latest.Text {
				t.Fatal("the edit changed nothing: the test is stale")
			}
			err := schemas.CheckPolicy(append(schemas.All(), next))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("v%d: %v, want an error saying %q", next.Version, err, tc.want)
			}
		})
	}
}

// Two later versions that differ only in a default are judged each on its
// own: v(n+2) needs a field the versions before v(n+1) lack, whatever
// v(n+1) says of it.
func TestThePolicyJudgesVersionsThatDifferOnlyInADefault(t *testing.T) {
	latest := schemas.Latest()
	withDefault := schemas.Schema{Version: latest.Version + 1,
		Text: strings.Replace(latest.Text, `"fields": [`, `"fields": [{"name": "x", "type": "long", "default": 0},`, 1)}
	without := schemas.Schema{Version: latest.Version + 2,
		Text: strings.Replace(latest.Text, `"fields": [`, `"fields": [{"name": "x", "type": "long"},`, 1)}
	if err := schemas.CheckPolicy(append(schemas.All(), withDefault)); err != nil {
		t.Fatalf("a field with a default was refused: %v", err)
	}
	err := schemas.CheckPolicy(append(schemas.All(), withDefault, without))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("v%d cannot read data written with v1", without.Version)) {
		t.Fatalf("%v, want v%d refused for the versions without x", err, without.Version)
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
