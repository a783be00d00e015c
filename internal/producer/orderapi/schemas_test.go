package orderapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/devstack"
	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/schematest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/producer/orderapi"
	"github.com/ordersonkafka/orders/schemas"
)

// readyz returns order-api's /readyz checks.
func readyz(t *testing.T, base string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Checks map[string]string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Checks
}

// With SCHEMA_AUTO_REGISTER=false and the schema not in the registry, the
// relay registers nothing: it keeps the order's outbox row and /readyz,
// once it has waited RELAY_STALL_AFTER, names the step and the command;
// once `schemas register` has run, the row is published.
func TestWithoutAutoRegistrationTheRelayWaitsForTheSchema(t *testing.T) {
	s := newStack(t)
	api := s.start(t, "SCHEMA_AUTO_REGISTER", "false", "RELAY_STALL_AFTER", "100ms")
	place(t, api.url)
	var relay string
	stacktest.WaitFor(t, "/readyz to say the schema is not registered", wait, func() bool {
		st, checks := readyz(t, api.url)
		relay = checks["outbox_relay"]
		return st == 200 && strings.Contains(relay, "not registered")
	})
	if !strings.HasPrefix(relay, "frame: ") || !strings.Contains(relay, "order-api schemas register") {
		t.Errorf("outbox_relay check %q: want the step and the command that fixes it", relay)
	}
	if n := s.count(t, "SELECT count(*) FROM outbox"); n != 1 {
		t.Fatalf("%d unpublished outbox rows, want the order's 1 kept", n)
	}
	resp, err := http.Get(s.registry.URL() + "/subjects")
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	_ = json.NewDecoder(resp.Body).Decode(&subjects)
	resp.Body.Close()
	if len(subjects) != 0 {
		t.Fatalf("the relay registered %v with SCHEMA_AUTO_REGISTER=false", subjects)
	}

	cfg, err := config.Load[orderapi.Config](stacktest.Env(map[string]string{"SCHEMA_REGISTRY_URL": s.registry.URL()}))
	if err != nil {
		t.Fatal(err)
	}
	if err := orderapi.SchemasRegister(context.Background(), cfg, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	stacktest.WaitFor(t, "the row to be published", wait, func() bool {
		return s.count(t, "SELECT count(*) FROM outbox") == 0
	})
	kafkatest.WaitForCount(t, s.kafka.Brokers()[0], "order-events", 1, wait)
}

// The schema gate against a registry over HTTP: a subject that does not
// exist, every version registered, a subject holding a schema the newest
// cannot follow (with the registry's reasons and an error), and a
// registry with basic auth, reached with the credentials and refused
// without them.
func TestTheSchemaGate(t *testing.T) {
	reg := stacktest.Registry(t)
	cfg, err := config.Load[orderapi.Config](stacktest.Env(map[string]string{"SCHEMA_REGISTRY_URL": reg.URL()}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(cfg orderapi.Config) (string, error) {
		var out bytes.Buffer
		err := orderapi.SchemasCheck(ctx, cfg, &out, false)
		return out.String(), err
	}
	latest := schemas.Latest().Version

	out, err := check(cfg)
	if err != nil || !strings.Contains(out, "the subject does not exist yet") || strings.Count(out, "missing") < latest {
		t.Fatalf("a missing subject: %v\n%s", err, out)
	}

	var reg1 bytes.Buffer
	if err := orderapi.SchemasRegister(ctx, cfg, &reg1); err != nil {
		t.Fatal(err)
	}
	out, err = check(cfg)
	if err != nil || strings.Contains(out, "missing") || !strings.Contains(out, "compatible with the subject under "+schemas.Compatibility) ||
		!strings.Contains(out, "compatibility: "+schemas.Compatibility+"\n") {
		t.Fatalf("every version registered: %v\n%s", err, out)
	}
	for v := 1; v <= latest; v++ {
		if !strings.Contains(out, "registered   id") {
			t.Fatalf("v%d not shown registered:\n%s", v, out)
		}
	}

	put := func(path, body string) {
		req, _ := http.NewRequest("PUT", reg.URL()+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("PUT %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	register := func(subject, schema string) {
		body, _ := json.Marshal(map[string]string{"schema": schema})
		resp, err := http.Post(reg.URL()+"/subjects/"+subject+"/versions", "application/json", bytes.NewReader(body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("register under %s: %v %v", subject, resp, err)
		}
		resp.Body.Close()
	}
	onTopic := func(topic string) orderapi.Config { c := cfg; c.Topic = topic; return c }

	// A subject at the policy's level whose history the newest cannot read.
	put("/config/legacy-events-value", `{"compatibility":"NONE"}`)
	register("legacy-events-value", `{"type":"record","name":"OrderEvent","namespace":"com.ordersonkafka.orders","fields":[{"name":"status","type":"int"}]}`)
	put("/config/legacy-events-value", `{"compatibility":"`+schemas.Compatibility+`"}`)
	out, err = check(onTopic("legacy-events"))
	if !errors.Is(err, eventcodec.ErrIncompatible) || !strings.Contains(out, "NOT compatible") || !strings.Contains(out, "  - ") {
		t.Fatalf("an incompatible subject: %v\n%s", err, out)
	}

	// The previous release's subject: FULL_TRANSITIVE with v1 and v2. Under
	// that level v3 is refused (their enums have no default), and the gate
	// says the level is not the policy's; once `schemas register` aligns it
	// (as a deploy would), v3 is registered and the gate passes.
	put("/config/upgraded-events-value", `{"compatibility":"FULL_TRANSITIVE"}`)
	for _, s := range schemas.All()[:2] {
		register("upgraded-events-value", s.Text)
	}
	out, err = check(onTopic("upgraded-events"))
	if !errors.Is(err, orderapi.ErrLevelMismatch) || !strings.Contains(out, "NOT compatible") || !strings.Contains(out, "not the policy's") {
		t.Fatalf("a subject left at FULL_TRANSITIVE: %v\n%s", err, out)
	}
	if err := orderapi.SchemasRegister(ctx, onTopic("upgraded-events"), &bytes.Buffer{}); err != nil {
		t.Fatalf("register on the upgraded subject: %v", err)
	}
	if out, err := check(onTopic("upgraded-events")); err != nil || strings.Contains(out, "missing") {
		t.Fatalf("after register: %v\n%s", err, out)
	}

	inURL := cfg
	inURL.SchemaRegistryURL = strings.Replace(reg.URL(), "http://", "http://gate:S3CRET-in-url@", 1)
	if out, err := check(inURL); err != nil || strings.Contains(out, "S3CRET") {
		t.Errorf("a password in SCHEMA_REGISTRY_URL: %v, and it shows:\n%s", err, out)
	}

	secured, err := devstack.StartRegistryWith(devstack.RegistryConfig{Addr: "127.0.0.1:0", BasicAuthUserInfo: "gate:S3CRET"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(secured.Close)
	withAuth := cfg
	withAuth.SchemaRegistryURL, withAuth.SchemaRegistryUserInfo = secured.URL(), "gate:S3CRET"
	if out, err := check(withAuth); err != nil || !strings.Contains(out, "does not exist yet") {
		t.Fatalf("with the credentials: %v\n%s", err, out)
	}
	withAuth.SchemaRegistryUserInfo = "gate:wrong"
	if _, err := check(withAuth); err == nil || !strings.Contains(err.Error(), "schema registry") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("with a wrong password: %v, want an error naming the registry and not the password", err)
	}
}

// A subject holding a version schemas/ does not have (a newer release
// registered it) is reported, each such version with its ID and whether it
// is newer; the gate still passes, but not with strict (-strict), which a
// CI gate uses to refuse deploying a release older than the subject's
// writers.
func TestTheSchemaGateReportsAVersionSchemasLacks(t *testing.T) {
	reg := stacktest.Registry(t)
	cfg, err := config.Load[orderapi.Config](stacktest.Env(map[string]string{"SCHEMA_REGISTRY_URL": reg.URL()}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(strict bool) (string, error) {
		var out bytes.Buffer
		err := orderapi.SchemasCheck(ctx, cfg, &out, strict)
		return out.String(), err
	}
	if err := orderapi.SchemasRegister(ctx, cfg, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if out, err := check(true); err != nil || strings.Contains(out, "NOT in schemas/") {
		t.Fatalf("every version of the subject in schemas/, strict: %v\n%s", err, out)
	}

	body, _ := json.Marshal(map[string]string{"schema": schematest.Future().Text})
	resp, err := http.Post(reg.URL()+"/subjects/"+eventcodec.Subject(cfg.Topic)+"/versions", "application/vnd.schemaregistry.v1+json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var newer struct{ ID int }
	_ = json.NewDecoder(resp.Body).Decode(&newer)
	resp.Body.Close()
	if resp.StatusCode != 200 || newer.ID == 0 {
		t.Fatalf("a newer writer registers its schema: %d", resp.StatusCode)
	}

	latest := len(schemas.All())
	line := fmt.Sprintf("subject version %d  id %d: NOT in schemas/ (newer than schemas/", latest+1, newer.ID)
	out, err := check(false)
	if err != nil || !strings.Contains(out, line) {
		t.Fatalf("a newer writer's version: %v, want it reported as %q\n%s", err, line, out)
	}
	if out, err := check(true); !errors.Is(err, orderapi.ErrForeignVersions) || !strings.Contains(out, line) {
		t.Fatalf("a newer writer's version, strict: %v, want ErrForeignVersions\n%s", err, out)
	}
}
