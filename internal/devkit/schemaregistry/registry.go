// Package schemaregistry is an in-memory Confluent Schema Registry: the REST
// API that srclient, Confluent's serializers and Control Center call, for
// Avro schemas, with compatibility levels enforced. It backs the tests and the
// playground so the services run the same client code as against Confluent's
// registry. Data lives in memory; IDs are global and stable for the process.
//
// Supported: POST/GET/DELETE on subjects and versions, schema lookup under a
// subject, GET /schemas/ids/{id} (and its versions), GET /schemas/types,
// global and per-subject /config, and POST /compatibility/... . Schema
// references and non-Avro schema types are refused with 422.
package schemaregistry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
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

func readSchema(w http.ResponseWriter, req *http.Request) (*schemaRequest, avro.Schema, bool) {
	var sr schemaRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, req.Body, 8<<20)).Decode(&sr); err != nil {
		fail(w, 400, 400, "malformed request body: "+err.Error())
		return nil, nil, false
	}
	if sr.SchemaType != "" && sr.SchemaType != "AVRO" {
		fail(w, 422, 42201, fmt.Sprintf("schema type %s is not supported by this registry (AVRO only)", sr.SchemaType))
		return nil, nil, false
	}
	if len(sr.References) > 0 {
		fail(w, 422, 42201, "schema references are not supported by this registry")
		return nil, nil, false
	}
	parsed, err := avro.ParseWithCache(sr.Schema, "", &avro.SchemaCache{})
	if err != nil {
		fail(w, 422, 42201, "Invalid schema: "+err.Error())
		return nil, nil, false
	}
	return &sr, parsed, true
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
	if msgs := r.incompatible(subject, parsed, r.subjects[subject]); len(msgs) > 0 {
		fail(w, 409, 409, fmt.Sprintf("Schema being registered is incompatible with an earlier schema for subject %q: %v", subject, msgs))
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

// incompatible checks candidate against existing versions under the
// subject's level and returns why it is refused (nil when it is not).
// Caller holds mu.
func (r *Registry) incompatible(subject string, candidate avro.Schema, existing []version) []string {
	level := r.level(subject)
	if level == "NONE" || len(existing) == 0 {
		return nil
	}
	against := existing[len(existing)-1:]
	if len(level) > len("_TRANSITIVE") && level[len(level)-len("_TRANSITIVE"):] == "_TRANSITIVE" {
		against = existing
	}
	backward := level == "BACKWARD" || level == "BACKWARD_TRANSITIVE" || level == "FULL" || level == "FULL_TRANSITIVE"
	forward := level == "FORWARD" || level == "FORWARD_TRANSITIVE" || level == "FULL" || level == "FULL_TRANSITIVE"
	c := avro.NewSchemaCompatibility()
	var msgs []string
	for _, v := range against {
		if backward {
			if err := c.Compatible(candidate, v.schema.parsed); err != nil {
				msgs = append(msgs, fmt.Sprintf("version %d: the new schema cannot read its data (%s): %v", v.version, level, err))
			}
		}
		if forward {
			if err := c.Compatible(v.schema.parsed, candidate); err != nil {
				msgs = append(msgs, fmt.Sprintf("version %d cannot read the new schema's data (%s): %v", v.version, level, err))
			}
		}
	}
	return msgs
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

func (r *Registry) checkCompatibility(w http.ResponseWriter, req *http.Request) {
	subject := chi.URLParam(req, "subject")
	_, parsed, ok := readSchema(w, req)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ref := chi.URLParam(req, "version")
	var against []version
	if _, exists := r.subjects[subject]; exists || (ref != "latest" && ref != "-1") {
		v, ok := r.findVersion(w, subject, ref)
		if !ok {
			return
		}
		against = r.subjects[subject]
		if ref != "latest" && ref != "-1" {
			against = []version{v}
		}
	}
	msgs := r.incompatible(subject, parsed, against)
	body := map[string]any{"is_compatible": len(msgs) == 0}
	if req.URL.Query().Get("verbose") == "true" {
		if msgs == nil {
			msgs = []string{}
		}
		body["messages"] = msgs
	}
	reply(w, body)
}
