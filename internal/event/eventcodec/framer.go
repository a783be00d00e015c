package eventcodec

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/riferrei/srclient"

	"github.com/ordersonkafka/orders/schemas"
)

// Subject is the value subject of topic under TopicNameStrategy, the one
// Control Center and every Confluent client assume.
func Subject(topic string) string { return topic + "-value" }

// FramerConfig configures a Framer.
type FramerConfig struct {
	URL           string        // Schema Registry base URL, e.g. http://localhost:8081
	Auth          RegistryAuth  // credentials and CAs; zero: none
	HTTPClient    *http.Client  // optional: its transport is used
	Timeout       time.Duration // per registry call; default 5s
	Compatibility string        // set on the subject before registering; default schemas.Compatibility
}

// Framer turns Avro bodies into Confluent-framed values, registering their
// schema on first use. It is safe for concurrent use.
type Framer struct {
	reg    *srclient.SchemaRegistryClient
	compat string

	mu  sync.RWMutex
	ids map[frameKey]uint32
}

type frameKey struct {
	subject string
	version int
}

// NewFramer returns a Framer; it does not contact the registry until Frame.
func NewFramer(cfg FramerConfig) (*Framer, error) {
	reg, err := newRegistry(cfg.URL, cfg.Auth, cfg.HTTPClient, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	if cfg.Compatibility == "" {
		cfg.Compatibility = schemas.Compatibility
	}
	return &Framer{reg: reg, compat: cfg.Compatibility, ids: map[frameKey]uint32{}}, nil
}

// Frame returns magic byte 0, the registry ID of schemas/ version
// schemaVersion under topic's value subject, and payload. It fails, without
// blocking past ctx or the configured timeout, when the registry cannot be
// reached or refuses the schema; nothing is cached then, so a retry tries again.
func (f *Framer) Frame(ctx context.Context, topic string, schemaVersion int, payload []byte) ([]byte, error) {
	id, err := f.schemaID(ctx, frameKey{Subject(topic), schemaVersion})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 5+len(payload))
	binary.BigEndian.PutUint32(out[1:5], id)
	copy(out[5:], payload)
	return out, nil
}

func (f *Framer) schemaID(ctx context.Context, k frameKey) (uint32, error) {
	f.mu.RLock()
	id, ok := f.ids[k]
	f.mu.RUnlock()
	if ok {
		return id, nil
	}
	s, ok := schemas.ByVersion(k.version)
	if !ok {
		return 0, fmt.Errorf("frame: no schema version %d in schemas/", k.version)
	}
	// srclient's calls take no context: each is bounded by the timeout.
	if _, err := f.reg.ChangeSubjectCompatibilityLevel(k.subject, srclient.CompatibilityLevel(f.compat)); err != nil {
		return 0, fmt.Errorf("schema registry: set compatibility of %s: %w", k.subject, err)
	}
	reg, err := f.reg.CreateSchema(k.subject, s.Text, srclient.Avro)
	if err != nil {
		return 0, fmt.Errorf("schema registry: register schema v%d under %s: %w", k.version, k.subject, err)
	}
	id = uint32(reg.ID())
	f.mu.Lock()
	f.ids[k] = id
	f.mu.Unlock()
	return id, nil
}
