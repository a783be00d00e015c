package schemaregistry

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/hamba/avro/v2"
)

// snapshot is a registry's whole state as JSON: every schema with its ID,
// every subject's versions, the versions' counters and the levels. Restoring
// it gives the same IDs and versions, so events framed before a restart still
// name their schema after it (the playground keeps one beside its broker's
// data, as Confluent's registry keeps its state in the _schemas topic).
type snapshot struct {
	Schemas     []snapshotSchema             `json:"schemas"`
	Subjects    map[string][]snapshotVersion `json:"subjects"`
	NextVersion map[string]int               `json:"next_version"`
	Global      string                       `json:"global"`
	Config      map[string]string            `json:"config"`
}

type snapshotSchema struct {
	ID     int    `json:"id"`
	Schema string `json:"schema"`
}

type snapshotVersion struct {
	Version int `json:"version"`
	ID      int `json:"id"`
}

// MarshalJSON returns the registry's state, which Restore reads back.
func (r *Registry) MarshalJSON() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := snapshot{Subjects: map[string][]snapshotVersion{}, NextVersion: r.nextVer, Global: r.global, Config: r.config}
	for _, sc := range r.byID {
		s.Schemas = append(s.Schemas, snapshotSchema{ID: sc.id, Schema: sc.text})
	}
	sort.Slice(s.Schemas, func(i, j int) bool { return s.Schemas[i].ID < s.Schemas[j].ID })
	for subject, vs := range r.subjects {
		out := make([]snapshotVersion, len(vs))
		for i, v := range vs {
			out[i] = snapshotVersion{Version: v.version, ID: v.schema.id}
		}
		s.Subjects[subject] = out
	}
	return json.Marshal(s)
}

// Restore returns a registry holding the state MarshalJSON wrote. A state
// it cannot read whole (a schema that does not parse, a version naming an
// unknown ID, IDs with gaps) is an error: half a registry would hand out an
// ID already taken.
func Restore(data []byte) (*Registry, error) {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("schema registry state: %w", err)
	}
	r := New()
	for i, sc := range s.Schemas {
		if sc.ID != i+1 {
			return nil, fmt.Errorf("schema registry state: schema IDs are not 1..%d (found %d at %d)", len(s.Schemas), sc.ID, i+1)
		}
		parsed, err := avro.ParseWithCache(sc.Schema, "", &avro.SchemaCache{})
		if err != nil {
			return nil, fmt.Errorf("schema registry state: schema %d: %w", sc.ID, err)
		}
		x := &schema{id: sc.ID, canonical: identity(parsed), text: sc.Schema, parsed: parsed}
		r.byID[x.id] = x
		r.byCanon[x.canonical] = x
	}
	for subject, vs := range s.Subjects {
		for _, v := range vs {
			x := r.byID[v.ID]
			if x == nil {
				return nil, fmt.Errorf("schema registry state: %s version %d names schema %d, which it does not hold", subject, v.Version, v.ID)
			}
			r.subjects[subject] = append(r.subjects[subject], version{version: v.Version, schema: x})
		}
	}
	for subject, n := range s.NextVersion {
		r.nextVer[subject] = n
	}
	if s.Global != "" {
		if !levels[s.Global] {
			return nil, fmt.Errorf("schema registry state: unknown level %q", s.Global)
		}
		r.global = s.Global
	}
	for subject, l := range s.Config {
		if !levels[l] {
			return nil, fmt.Errorf("schema registry state: %s: unknown level %q", subject, l)
		}
		r.config[subject] = l
	}
	return r, nil
}
