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
	Timeout       time.Duration // per registry call; default DefaultRegistryTimeout
	Compatibility string        // set on the subject before registering; default schemas.Compatibility
	// LookupOnly, when set (SCHEMA_AUTO_REGISTER=false), never registers a
	// schema nor sets the subject's level: a version the registry does not
	// hold is an error naming it (`order-api schemas register` adds it),
	// as Confluent's serializers do with auto.register.schemas=false.
	LookupOnly bool
}

// Framer turns Avro bodies into Confluent-framed values, registering their
// schema on first use (or, with LookupOnly, looking it up). It is safe for
// concurrent use.
type Framer struct {
	reg        *srclient.SchemaRegistryClient
	compat     string
	lookupOnly bool

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
	return &Framer{reg: reg, compat: cfg.Compatibility, lookupOnly: cfg.LookupOnly, ids: map[frameKey]uint32{}}, nil
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
	if _, ok := schemas.ByVersion(k.version); !ok {
		return 0, fmt.Errorf("frame: no schema version %d in schemas/", k.version)
	}
	if f.lookupOnly {
		id, err := lookup(f.reg, k.subject, k.version)
		if err != nil {
			return 0, err
		}
		f.remember(k, id)
		return id, nil
	}
	// Register every version up to k, oldest first (each is a no-op if the
	// registry has it): under BACKWARD_TRANSITIVE an older version cannot
	// follow a newer one, and the relay may meet an old row after a new one.
	ids, err := register(f.reg, k.subject, f.compat, k.version)
	if err != nil {
		return 0, err
	}
	for v, id := range ids {
		f.remember(frameKey{k.subject, v}, id)
	}
	return ids[k.version], nil
}

func (f *Framer) remember(k frameKey, id uint32) {
	f.mu.Lock()
	f.ids[k] = id
	f.mu.Unlock()
}

// register sets subject's level to compat, then registers versions 1 to
// upTo of schemas/ in order and returns their IDs. srclient's calls take no
// context: each is bounded by the client's timeout.
func register(reg *srclient.SchemaRegistryClient, subject, compat string, upTo int) (map[int]uint32, error) {
	if _, err := reg.ChangeSubjectCompatibilityLevel(subject, srclient.CompatibilityLevel(compat)); err != nil {
		return nil, fmt.Errorf("schema registry: set compatibility of %s: %w", subject, err)
	}
	ids := map[int]uint32{}
	for _, s := range schemas.All() {
		if s.Version > upTo {
			break
		}
		got, err := reg.CreateSchema(subject, s.Text, srclient.Avro)
		if err != nil {
			return nil, fmt.Errorf("schema registry: register schema v%d under %s: %w", s.Version, subject, err)
		}
		ids[s.Version] = uint32(got.ID())
	}
	return ids, nil
}

// lookup returns the ID of version v of schemas/ under subject, without
// registering it.
func lookup(reg *srclient.SchemaRegistryClient, subject string, v int) (uint32, error) {
	s, _ := schemas.ByVersion(v)
	got, err := reg.LookupSchema(subject, s.Text, srclient.Avro)
	if c := registryCode(err); c == 40401 || c == 40403 {
		return 0, fmt.Errorf("schema registry: schema v%d is not registered under %s and SCHEMA_AUTO_REGISTER=false: register it with `order-api schemas register`", v, subject)
	}
	if err != nil {
		return 0, fmt.Errorf("schema registry: look up schema v%d under %s: %w", v, subject, err)
	}
	return uint32(got.ID()), nil
}
