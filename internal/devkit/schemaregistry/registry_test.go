package schemaregistry_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/riferrei/srclient"

	"github.com/ordersonkafka/orders/internal/devkit/schemaregistry"
)

const (
	v1          = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}`
	withDefault = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"long","default":0}]}`
	noDefault   = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"long"}]}`
	dropA       = `{"type":"record","name":"R","fields":[]}`
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(schemaregistry.New())
	t.Cleanup(s.Close)
	return s
}

// rest sends a request and returns the status and the decoded JSON body.
func rest(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func schemaBody(s string) string {
	b, _ := json.Marshal(map[string]string{"schema": s})
	return string(b)
}

func TestSrclientRegistersAndReadsBack(t *testing.T) {
	srv := newServer(t)
	c := srclient.CreateSchemaRegistryClient(srv.URL)
	s, err := c.CreateSchema("orders-value", v1, srclient.Avro)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.CreateSchema("orders-value", v1, srclient.Avro)
	if err != nil || again.ID() != s.ID() {
		t.Fatalf("re-registering gave %v, %v; want id %d", again, err, s.ID())
	}
	other, err := c.CreateSchema("other-value", v1, srclient.Avro)
	if err != nil || other.ID() != s.ID() {
		t.Fatalf("same schema under another subject: id %v (%v), want the global id %d", other, err, s.ID())
	}
	got, err := c.GetSchema(s.ID())
	if err != nil || got.Schema() != v1 {
		t.Fatalf("GetSchema: %v %v", got, err)
	}
	if _, err := c.CreateSchema("orders-value", withDefault, srclient.Avro); err != nil {
		t.Fatal(err)
	}
	latest, err := c.GetLatestSchema("orders-value")
	if err != nil || latest.Version() != 2 || latest.Schema() != withDefault {
		t.Fatalf("latest: %+v %v", latest, err)
	}
	versions, err := c.GetSchemaVersions("orders-value")
	if err != nil || len(versions) != 2 {
		t.Fatalf("versions %v %v", versions, err)
	}
	subjects, err := c.GetSubjects()
	if err != nil || strings.Join(subjects, ",") != "orders-value,other-value" {
		t.Fatalf("subjects %v %v", subjects, err)
	}
	level, err := c.ChangeSubjectCompatibilityLevel("orders-value", srclient.FullTransitive)
	if err != nil || *level != srclient.FullTransitive {
		t.Fatalf("set level: %v %v", level, err)
	}
	// Checking against one version ignores the others, as in Confluent's
	// registry: noDefault reads and is read by version 2 (which has b), not
	// version 1 (which lacks it).
	ok, err := c.IsSchemaCompatible("orders-value", noDefault, "latest", srclient.Avro)
	if err != nil || !ok {
		t.Fatalf("a required field against a version that has it: compatible=%v err=%v", ok, err)
	}
	ok, err = c.IsSchemaCompatible("orders-value", noDefault, "1", srclient.Avro)
	if err != nil || ok {
		t.Fatalf("a required new field against a version without it: compatible=%v err=%v", ok, err)
	}
	if _, err := c.CreateSchema("orders-value", noDefault, srclient.Avro); err == nil || !strings.Contains(err.Error(), "READER_FIELD_MISSING_DEFAULT_VALUE") {
		t.Fatalf("a required new field under FULL_TRANSITIVE was not refused with its reason: %v", err)
	}
}

func TestCompatibilityLevelsAreEnforced(t *testing.T) {
	cases := []struct {
		level, next string
		accepted    bool
	}{
		{"BACKWARD", withDefault, true},
		{"BACKWARD", noDefault, false}, // the new reader cannot fill b from old data
		{"BACKWARD", dropA, true},      // readers may ignore a field
		{"FORWARD", noDefault, true},   // old readers ignore b
		{"FORWARD", dropA, false},      // old readers need a
		{"FULL", withDefault, true},
		{"FULL", noDefault, false},
		{"NONE", `{"type":"string"}`, true},
	}
	for _, tc := range cases {
		t.Run(tc.level+" "+map[bool]string{true: "accepts", false: "refuses"}[tc.accepted], func(t *testing.T) {
			srv := newServer(t)
			if st, _ := rest(t, "PUT", srv.URL+"/config/s", `{"compatibility":"`+tc.level+`"}`); st != 200 {
				t.Fatalf("set level: %d", st)
			}
			if st, _ := rest(t, "POST", srv.URL+"/subjects/s/versions", schemaBody(v1)); st != 200 {
				t.Fatalf("register v1: %d", st)
			}
			st, body := rest(t, "POST", srv.URL+"/subjects/s/versions", schemaBody(tc.next))
			if tc.accepted && st != 200 {
				t.Fatalf("refused with %d %v", st, body)
			}
			if !tc.accepted && (st != 409 || body["error_code"] != 409.0) {
				t.Fatalf("accepted or wrong error: %d %v", st, body)
			}
		})
	}
}

func TestTransitiveChecksEveryVersion(t *testing.T) {
	srv := newServer(t)
	rest(t, "PUT", srv.URL+"/config/s", `{"compatibility":"BACKWARD"}`)
	rest(t, "POST", srv.URL+"/subjects/s/versions", schemaBody(v1))
	rest(t, "POST", srv.URL+"/subjects/s/versions", schemaBody(withDefault))
	// Dropping b's default is BACKWARD-compatible with v2 (which has b) but
	// not with v1 (which lacks it): only the transitive level sees that.
	if st, _ := rest(t, "POST", srv.URL+"/compatibility/subjects/s/versions/latest", schemaBody(noDefault)); st != 200 {
		t.Fatal(st)
	}
	_, res := rest(t, "POST", srv.URL+"/compatibility/subjects/s/versions/latest", schemaBody(noDefault))
	if res["is_compatible"] != true {
		t.Fatalf("BACKWARD against latest: %v", res)
	}
	rest(t, "PUT", srv.URL+"/config/s", `{"compatibility":"BACKWARD_TRANSITIVE"}`)
	if st, _ := rest(t, "POST", srv.URL+"/subjects/s/versions", schemaBody(noDefault)); st != 409 {
		t.Fatalf("BACKWARD_TRANSITIVE accepted a schema that cannot read v1: %d", st)
	}
}

func TestErrorCodes(t *testing.T) {
	srv := newServer(t)
	rest(t, "POST", srv.URL+"/subjects/s/versions", schemaBody(v1))
	cases := []struct {
		name, method, path, body string
		status, code             int
	}{
		{"unknown schema id", "GET", "/schemas/ids/99", "", 404, 40403},
		{"unknown subject", "GET", "/subjects/nope/versions/latest", "", 404, 40401},
		{"unknown version", "GET", "/subjects/s/versions/7", "", 404, 40402},
		{"invalid version", "GET", "/subjects/s/versions/x", "", 422, 42202},
		{"lookup of a schema not under the subject", "POST", "/subjects/s", schemaBody(noDefault), 404, 40403},
		{"invalid Avro", "POST", "/subjects/s/versions", schemaBody(`{"type":"recrd"}`), 422, 42201},
		{"protobuf", "POST", "/subjects/s/versions", `{"schema":"syntax = \"proto3\";","schemaType":"PROTOBUF"}`, 422, 42201},
		{"invalid level", "PUT", "/config/s", `{"compatibility":"SIDEWAYS"}`, 422, 42203},
		{"subject level not set", "GET", "/config/s", "", 404, 40408},
		{"compatibility with a version of an unknown subject", "POST", "/compatibility/subjects/nope/versions/1", schemaBody(v1), 404, 40401},
		{"compatibility with an unknown version", "POST", "/compatibility/subjects/s/versions/7", schemaBody(v1), 404, 40402},
		{"compatibility with an invalid version", "POST", "/compatibility/subjects/s/versions/x", schemaBody(v1), 422, 42202},
		{"compatibility of invalid Avro with a version", "POST", "/compatibility/subjects/s/versions/latest", schemaBody(`{"type":"recrd"}`), 422, 42201},
		{"compatibility of invalid Avro with the subject", "POST", "/compatibility/subjects/s/versions", schemaBody(`{"type":"recrd"}`), 422, 42201},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, body := rest(t, tc.method, srv.URL+tc.path, tc.body)
			if st != tc.status || body["error_code"] != float64(tc.code) || body["message"] == "" {
				t.Fatalf("got %d %v, want %d error_code %d", st, body, tc.status, tc.code)
			}
		})
	}
	if st, body := rest(t, "GET", srv.URL+"/config", ""); st != 200 || body["compatibilityLevel"] != "BACKWARD" {
		t.Errorf("global default: %d %v", st, body)
	}
	if st, body := rest(t, "GET", srv.URL+"/config/s?defaultToGlobal=true", ""); st != 200 || body["compatibilityLevel"] != "BACKWARD" {
		t.Errorf("defaultToGlobal: %d %v", st, body)
	}
	if st, body := rest(t, "POST", srv.URL+"/subjects/s", schemaBody(v1)); st != 200 || body["version"] != 1.0 || body["id"] != 1.0 {
		t.Errorf("lookup: %d %v", st, body)
	}
}

// TestListAndDeleteVersions: GET /subjects/{s}/versions lists the version
// numbers, DELETE /subjects/{s} answers the same list and removes the
// subject, after which both answer 40401.
func TestListAndDeleteVersions(t *testing.T) {
	srv := newServer(t)
	rest(t, "POST", srv.URL+"/subjects/s/versions", schemaBody(v1))
	rest(t, "POST", srv.URL+"/subjects/s/versions", schemaBody(withDefault))
	list := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	for _, c := range []struct{ method, path string }{{"GET", "/subjects/s/versions"}, {"DELETE", "/subjects/s"}} {
		if st, body := list(c.method, c.path); st != 200 || body != "[1,2]" {
			t.Errorf("%s %s: %d %s, want 200 [1,2]", c.method, c.path, st, body)
		}
	}
	for _, c := range []struct{ method, path string }{{"GET", "/subjects/s/versions"}, {"DELETE", "/subjects/s"}} {
		if st, body := rest(t, c.method, srv.URL+c.path, ""); st != 404 || body["error_code"] != float64(40401) {
			t.Errorf("%s %s after delete: %d %v", c.method, c.path, st, body)
		}
	}
}

// TestCompatibilityAnswers: what POST /compatibility/... answers besides the
// verdict, as Confluent's registry does: the reasons with ?verbose=true
// (errorType, path, the version checked, the level), none without; an
// unknown subject is compatible unless a version number is named; an invalid
// schema is an incompatible verbose answer.
func TestCompatibilityAnswers(t *testing.T) {
	srv := newServer(t)
	messages := func(path, schema string) (bool, []string) {
		t.Helper()
		st, body := rest(t, "POST", srv.URL+path, schemaBody(schema))
		if st != 200 {
			t.Fatalf("POST %s: %d %v", path, st, body)
		}
		var msgs []string // nil when the answer has no messages
		if m, ok := body["messages"].([]any); ok {
			msgs = make([]string, 0, len(m))
			for _, x := range m {
				msgs = append(msgs, x.(string))
			}
		}
		return body["is_compatible"] == true, msgs
	}
	for _, path := range []string{"/compatibility/subjects/new/versions", "/compatibility/subjects/new/versions/latest"} {
		if ok, _ := messages(path, v1); !ok {
			t.Errorf("%s of a subject without versions: incompatible", path)
		}
	}
	rest(t, "POST", srv.URL+"/subjects/s/versions", schemaBody(v1))
	ok, msgs := messages("/compatibility/subjects/s/versions/1?verbose=true", noDefault)
	want := []string{
		"{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'b' at path '/fields/1' in the new schema has no default value and is missing in the old schema', additionalInfo:'b'}",
		"{oldSchemaVersion: 1}",
	}
	if ok || len(msgs) != 4 || msgs[0] != want[0] || msgs[1] != want[1] || !strings.HasPrefix(msgs[2], "{oldSchema: '") ||
		msgs[3] != "{validateFields: 'false', compatibility: 'BACKWARD'}" {
		t.Errorf("verbose answer: compatible=%v %q", ok, msgs)
	}
	if ok, msgs := messages("/compatibility/subjects/s/versions/latest", noDefault); ok || msgs != nil {
		t.Errorf("answer without verbose: compatible=%v messages %q", ok, msgs)
	}
	if ok, msgs := messages("/compatibility/subjects/s/versions?verbose=true", withDefault); !ok || msgs == nil || len(msgs) != 0 {
		t.Errorf("compatible verbose answer: compatible=%v messages %q, want []", ok, msgs)
	}
	if ok, msgs := messages("/compatibility/subjects/s/versions?verbose=true", `{"type":"recrd"}`); ok || len(msgs) != 1 || !strings.HasPrefix(msgs[0], "Invalid schema") {
		t.Errorf("verbose answer on invalid Avro: compatible=%v %q", ok, msgs)
	}
	st, body := rest(t, "POST", srv.URL+"/subjects/s/versions", schemaBody(noDefault))
	if msg, _ := body["message"].(string); st != 409 || !strings.Contains(msg, want[0]) || !strings.Contains(msg, `for subject "s", details: [`) {
		t.Errorf("refused registration: %d %v", st, body)
	}
}
