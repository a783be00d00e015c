// Package schemaregistry is an in-memory Confluent Schema Registry: the REST
// API that srclient, Confluent's serializers and Control Center call, for
// Avro schemas, with compatibility levels enforced. It backs the tests and the
// playground so the services run the same client code as against Confluent's
// registry. Data lives in memory; IDs are global and stable for the process.
//
// Its compatibility verdicts are Confluent's: the checker is a port of Avro
// Java's SchemaCompatibility (which Confluent's registry runs), proven
// against the reader/writer pairs of Avro's Java tests in testdata, and the
// levels pick the versions to check as Confluent does (the latest, or every
// version for the _TRANSITIVE levels). Verbose answers give Confluent's
// reasons: errorType, the path in the schema, and the version.
//
// Supported: POST/GET/DELETE on subjects and versions, schema lookup under a
// subject, GET /schemas/ids/{id} (and its versions), GET /schemas/types,
// global and per-subject /config, and POST /compatibility/subjects/{subject}/versions
// and .../versions/{version}, with ?verbose=true. Schema references and
// non-Avro schema types are refused with 422.
package schemaregistry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/hamba/avro/v2"
)

// The compatibility levels of the Confluent registry.
var levels = map[string]bool{
	"NONE": true, "BACKWARD": true, "BACKWARD_TRANSITIVE": true, "FORWARD": true,
	"FORWARD_TRANSITIVE": true, "FULL": true, "FULL_TRANSITIVE": true,
}

type schema struct {
	id        int
	canonical string // normalized full JSON (with defaults and docs): what makes two schemas the same
	text      string // as registered
	parsed    avro.Schema
}

type version struct {
	version int
	schema  *schema
}

// Registry is the registry's state and its http.Handler.
type Registry struct {
	mu       sync.Mutex
	byID     map[int]*schema
	byCanon  map[string]*schema
	subjects map[string][]version
	nextVer  map[string]int // versions are never reused after a delete
	global   string
	config   map[string]string
	handler  http.Handler
}

// New returns an empty registry with the global level BACKWARD, Confluent's default.
func New() *Registry {
	r := &Registry{
		byID: map[int]*schema{}, byCanon: map[string]*schema{}, subjects: map[string][]version{},
		nextVer: map[string]int{}, global: "BACKWARD", config: map[string]string{},
	}
	m := chi.NewRouter()
	m.NotFound(func(w http.ResponseWriter, _ *http.Request) { fail(w, 404, 404, "HTTP 404 Not Found") })
	m.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) { fail(w, 405, 405, "HTTP 405 Method Not Allowed") })
	m.Get("/", func(w http.ResponseWriter, _ *http.Request) { reply(w, map[string]any{}) })
	m.Get("/schemas/types", func(w http.ResponseWriter, _ *http.Request) { reply(w, []string{"AVRO"}) })
	m.Get("/schemas/ids/{id}", r.getSchemaByID)
	m.Get("/schemas/ids/{id}/schema", r.getRawSchemaByID)
	m.Get("/schemas/ids/{id}/versions", r.getVersionsByID)
	m.Get("/subjects", r.listSubjects)
	m.Post("/subjects/{subject}", r.lookup)
	m.Delete("/subjects/{subject}", r.deleteSubject)
	m.Get("/subjects/{subject}/versions", r.listVersions)
	m.Post("/subjects/{subject}/versions", r.register)
	m.Get("/subjects/{subject}/versions/{version}", r.getVersion)
	m.Get("/subjects/{subject}/versions/{version}/schema", r.getRawVersion)
	m.Get("/config", r.getGlobalConfig)
	m.Put("/config", r.putGlobalConfig)
	m.Get("/config/{subject}", r.getSubjectConfig)
	m.Put("/config/{subject}", r.putSubjectConfig)
	m.Delete("/config/{subject}", r.deleteSubjectConfig)
	m.Post("/compatibility/subjects/{subject}/versions", r.checkCompatibility)
	m.Post("/compatibility/subjects/{subject}/versions/{version}", r.checkCompatibility)
	r.handler = m
	return r
}

// ServeHTTP implements http.Handler.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.handler.ServeHTTP(w, req) }

const contentType = "application/vnd.schemaregistry.v1+json"

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", contentType)
	_ = json.NewEncoder(w).Encode(v)
}

// fail writes the registry's error body: {"error_code": 40403, "message": ...}.
func fail(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error_code": code, "message": msg})
}

type schemaRequest struct {
	Schema     string            `json:"schema"`
	SchemaType string            `json:"schemaType"`
	References []json.RawMessage `json:"references"`
}

// readRequest decodes a request's body, or answers 400.
func readRequest(w http.ResponseWriter, req *http.Request) (*schemaRequest, bool) {
	var sr schemaRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 8<<20)).Decode(&sr); err != nil {
		fail(w, 400, 400, "malformed request body: "+err.Error())
		return nil, false
	}
	return &sr, true
}

// parse parses the requested schema; the error is the 42201 message.
func (sr *schemaRequest) parse() (avro.Schema, error) {
	if sr.SchemaType != "" && sr.SchemaType != "AVRO" {
		return nil, fmt.Errorf("schema type %s is not supported by this registry (AVRO only)", sr.SchemaType)
	}
	if len(sr.References) > 0 {
		return nil, errors.New("schema references are not supported by this registry")
	}
	parsed, err := avro.ParseWithCache(sr.Schema, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("Invalid schema: %w", err)
	}
	return parsed, nil
}

// readSchema decodes and parses the requested schema, or answers 400 or 422.
func readSchema(w http.ResponseWriter, req *http.Request) (*schemaRequest, avro.Schema, bool) {
	sr, ok := readRequest(w, req)
	if !ok {
		return nil, nil, false
	}
	parsed, err := sr.parse()
	if err != nil {
		fail(w, 422, 42201, err.Error())
		return nil, nil, false
	}
	return sr, parsed, true
}

func (r *Registry) register(w http.ResponseWriter, req *http.Request) {
	subject := chi.URLParam(req, "subject")
	sr, parsed, ok := readSchema(w, req)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	canon := identity(parsed)
	for _, v := range r.subjects[subject] {
		if v.schema.canonical == canon {
			reply(w, map[string]int{"id": v.schema.id})
			return
		}
	}
	if msgs := incompatible(r.level(subject), parsed, r.subjects[subject]); len(msgs) > 0 {
		fail(w, 409, 409, fmt.Sprintf("Schema being registered is incompatible with an earlier schema for subject \"%s\", details: [%s]",
			subject, strings.Join(msgs, ", ")))
		return
	}
	s := r.byCanon[canon]
	if s == nil {
		s = &schema{id: len(r.byID) + 1, canonical: canon, text: sr.Schema, parsed: parsed}
		r.byID[s.id] = s
		r.byCanon[canon] = s
	}
	r.nextVer[subject]++
	r.subjects[subject] = append(r.subjects[subject], version{version: r.nextVer[subject], schema: s})
	reply(w, map[string]int{"id": s.id})
}

// level returns the subject's level, else the global one. Caller holds mu.
func (r *Registry) level(subject string) string {
	if l, ok := r.config[subject]; ok {
		return l
	}
	return r.global
}

// transitive reports whether level checks every earlier version, not only the latest.
func transitive(level string) bool { return strings.HasSuffix(level, "_TRANSITIVE") }

// incompatible checks candidate against previous (oldest first) under level,
// as Confluent's registry does: NONE checks nothing, a _TRANSITIVE level
// checks every version newest first and stops at the first that fails, the
// others check the latest only. BACKWARD asks whether candidate reads the old
// version's data, FORWARD whether the old version reads candidate's, FULL
// both. It returns Confluent's verbose messages, nil when compatible.
func incompatible(level string, candidate avro.Schema, previous []version) []string {
	if level == "NONE" || len(previous) == 0 {
		return nil
	}
	against := previous[len(previous)-1:]
	if transitive(level) {
		against = make([]version, len(previous))
		for i, v := range previous {
			against[len(previous)-1-i] = v
		}
	}
	backward := strings.HasPrefix(level, "BACKWARD") || strings.HasPrefix(level, "FULL")
	forward := strings.HasPrefix(level, "FORWARD") || strings.HasPrefix(level, "FULL")
	for _, old := range against {
		var msgs []string
		if forward { // first, as Confluent does; under FULL the version is named once, after the backward half
			found := checkReaderWriter(old.schema.parsed, candidate)
			for _, in := range found {
				msgs = append(msgs, describe(in, "old", "new"))
			}
			if len(found) > 0 && !backward {
				msgs = append(msgs, oldSchemaInfo(old)...)
			}
		}
		if backward {
			found := checkReaderWriter(candidate, old.schema.parsed)
			for _, in := range found {
				msgs = append(msgs, describe(in, "new", "old"))
			}
			if len(found) > 0 {
				msgs = append(msgs, oldSchemaInfo(old)...)
			}
		}
		if len(msgs) > 0 {
			return append(msgs, fmt.Sprintf("{validateFields: 'false', compatibility: '%s'}", level))
		}
	}
	return nil
}

func oldSchemaInfo(old version) []string {
	return []string{fmt.Sprintf("{oldSchemaVersion: %d}", old.version), fmt.Sprintf("{oldSchema: '%s'}", old.schema.canonical)}
}

func (r *Registry) lookup(w http.ResponseWriter, req *http.Request) {
	subject := chi.URLParam(req, "subject")
	_, parsed, ok := readSchema(w, req)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	versions, found := r.subjects[subject]
	if !found {
		fail(w, 404, 40401, fmt.Sprintf("Subject '%s' not found.", subject))
		return
	}
	for _, v := range versions {
		if v.schema.canonical == identity(parsed) {
			reply(w, versionBody(subject, v))
			return
		}
	}
	fail(w, 404, 40403, "Schema not found")
}

// identity is what makes two registrations the same schema: its full JSON,
// normalized. Not the Parsing Canonical Form, which drops defaults: a field
// with and without a default would look alike, yet differ in compatibility.
func identity(s avro.Schema) string {
	b, err := json.Marshal(s)
	if err != nil {
		return s.String()
	}
	return string(b)
}

func versionBody(subject string, v version) map[string]any {
	return map[string]any{"subject": subject, "version": v.version, "id": v.schema.id, "schema": v.schema.text}
}

func (r *Registry) schemaByID(w http.ResponseWriter, req *http.Request) *schema {
	id, err := strconv.Atoi(chi.URLParam(req, "id"))
	r.mu.Lock()
	s := r.byID[id]
	r.mu.Unlock()
	if err != nil || s == nil {
		fail(w, 404, 40403, "Schema "+chi.URLParam(req, "id")+" not found")
		return nil
	}
	return s
}

func (r *Registry) getSchemaByID(w http.ResponseWriter, req *http.Request) {
	if s := r.schemaByID(w, req); s != nil {
		reply(w, map[string]string{"schema": s.text})
	}
}

func (r *Registry) getRawSchemaByID(w http.ResponseWriter, req *http.Request) {
	if s := r.schemaByID(w, req); s != nil {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write([]byte(s.text))
	}
}

func (r *Registry) getVersionsByID(w http.ResponseWriter, req *http.Request) {
	s := r.schemaByID(w, req)
	if s == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []map[string]any{}
	for _, subject := range r.sortedSubjects() {
		for _, v := range r.subjects[subject] {
			if v.schema == s {
				out = append(out, map[string]any{"subject": subject, "version": v.version})
			}
		}
	}
	reply(w, out)
}

// sortedSubjects lists subjects with at least one version. Caller holds mu.
func (r *Registry) sortedSubjects() []string {
	out := []string{}
	for s, vs := range r.subjects {
		if len(vs) > 0 {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func (r *Registry) listSubjects(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reply(w, r.sortedSubjects())
}

func (r *Registry) listVersions(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if out, ok := r.versionNumbers(w, chi.URLParam(req, "subject")); ok {
		reply(w, out)
	}
}

// versionNumbers lists subject's versions, or answers 40401. Caller holds mu.
func (r *Registry) versionNumbers(w http.ResponseWriter, subject string) ([]int, bool) {
	vs, ok := r.subjects[subject]
	if !ok || len(vs) == 0 {
		fail(w, 404, 40401, fmt.Sprintf("Subject '%s' not found.", subject))
		return nil, false
	}
	out := make([]int, len(vs))
	for i, v := range vs {
		out[i] = v.version
	}
	return out, true
}

var errNoVersion = errors.New("version not found")

// findVersion resolves "latest", "-1" or a number. Caller holds mu.
func (r *Registry) findVersion(w http.ResponseWriter, subject, ref string) (version, bool) {
	vs, ok := r.subjects[subject]
	if !ok || len(vs) == 0 {
		fail(w, 404, 40401, fmt.Sprintf("Subject '%s' not found.", subject))
		return version{}, false
	}
	if ref == "latest" || ref == "-1" {
		return vs[len(vs)-1], true
	}
	n, err := strconv.Atoi(ref)
	if err != nil || n < 1 {
		fail(w, 422, 42202, "The specified version '"+ref+"' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")
		return version{}, false
	}
	for _, v := range vs {
		if v.version == n {
			return v, true
		}
	}
	fail(w, 404, 40402, errNoVersion.Error()+": "+ref)
	return version{}, false
}

func (r *Registry) getVersion(w http.ResponseWriter, req *http.Request) {
	subject := chi.URLParam(req, "subject")
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.findVersion(w, subject, chi.URLParam(req, "version")); ok {
		reply(w, versionBody(subject, v))
	}
}

func (r *Registry) getRawVersion(w http.ResponseWriter, req *http.Request) {
	subject := chi.URLParam(req, "subject")
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.findVersion(w, subject, chi.URLParam(req, "version")); ok {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write([]byte(v.schema.text))
	}
}

func (r *Registry) deleteSubject(w http.ResponseWriter, req *http.Request) {
	subject := chi.URLParam(req, "subject")
	r.mu.Lock()
	defer r.mu.Unlock()
	if out, ok := r.versionNumbers(w, subject); ok {
		delete(r.subjects, subject)
		reply(w, out)
	}
}

type configRequest struct {
	Compatibility string `json:"compatibility"`
}

func readLevel(w http.ResponseWriter, req *http.Request) (string, bool) {
	var c configRequest
	if err := json.NewDecoder(req.Body).Decode(&c); err != nil || !levels[c.Compatibility] {
		fail(w, 422, 42203, "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")
		return "", false
	}
	return c.Compatibility, true
}

func (r *Registry) getGlobalConfig(w http.ResponseWriter, _ *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reply(w, map[string]string{"compatibilityLevel": r.global})
}

func (r *Registry) putGlobalConfig(w http.ResponseWriter, req *http.Request) {
	if l, ok := readLevel(w, req); ok {
		r.mu.Lock()
		r.global = l
		r.mu.Unlock()
		reply(w, map[string]string{"compatibility": l})
	}
}

func (r *Registry) getSubjectConfig(w http.ResponseWriter, req *http.Request) {
	subject := chi.URLParam(req, "subject")
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.config[subject]
	if !ok {
		if req.URL.Query().Get("defaultToGlobal") != "true" {
			fail(w, 404, 40408, fmt.Sprintf("Subject '%s' does not have subject-level compatibility configured", subject))
			return
		}
		l = r.global
	}
	reply(w, map[string]string{"compatibilityLevel": l})
}

func (r *Registry) putSubjectConfig(w http.ResponseWriter, req *http.Request) {
	if l, ok := readLevel(w, req); ok {
		r.mu.Lock()
		r.config[chi.URLParam(req, "subject")] = l
		r.mu.Unlock()
		reply(w, map[string]string{"compatibility": l})
	}
}

func (r *Registry) deleteSubjectConfig(w http.ResponseWriter, req *http.Request) {
	subject := chi.URLParam(req, "subject")
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.config[subject]
	if !ok {
		fail(w, 404, 40408, fmt.Sprintf("Subject '%s' does not have subject-level compatibility configured", subject))
		return
	}
	delete(r.config, subject)
	reply(w, map[string]string{"compatibilityLevel": l})
}

// checkCompatibility answers POST /compatibility/subjects/{subject}/versions
// (against the versions the subject's level names, as registering would) and
// POST /compatibility/subjects/{subject}/versions/{version} (against that
// version only, whatever the level; "latest" of an unknown subject is
// compatible). With ?verbose=true the answer lists the reasons, and an
// invalid schema is an incompatible answer rather than a 422, as in
// Confluent's registry.
func (r *Registry) checkCompatibility(w http.ResponseWriter, req *http.Request) {
	subject := chi.URLParam(req, "subject")
	ref := chi.URLParam(req, "version")
	verbose := req.URL.Query().Get("verbose") == "true"
	sr, ok := readRequest(w, req)
	if !ok {
		return
	}
	parsed, invalid := sr.parse()
	r.mu.Lock()
	defer r.mu.Unlock()
	against := r.subjects[subject]
	if ref != "" && (len(against) > 0 || (ref != "latest" && ref != "-1")) {
		v, ok := r.findVersion(w, subject, ref) // before the schema's errors, as in Confluent
		if !ok {
			return
		}
		against = []version{v}
	}
	var msgs []string
	switch {
	case invalid != nil && !verbose:
		fail(w, 422, 42201, invalid.Error())
		return
	case invalid != nil:
		msgs = []string{invalid.Error()}
	default:
		msgs = incompatible(r.level(subject), parsed, against)
	}
	body := map[string]any{"is_compatible": len(msgs) == 0}
	if verbose {
		if msgs == nil {
			msgs = []string{}
		}
		body["messages"] = msgs
	}
	reply(w, body)
}
