// Package openapitest holds an HTTP API to its OpenAPI 3.1 document in tests:
// it validates every request a test makes and every response it gets, through
// a wrapped http.Handler (for httptest servers) or http.RoundTripper (for a
// service started on a port), and fails the test on any mismatch.
//
// The rule, for each exchange:
//
//   - The request's route must be in the document. If it is not, the answer
//     must be what the document says of anything it does not list: its
//     components.responses NotFound (404, a path nothing serves) or
//     MethodNotAllowed (405, a method the path does not take), or BadRequest
//     (400) if the path or query is not text, which both APIs refuse before
//     routing; any other answer fails as a route missing from the document.
//   - The request is validated against its operation: parameters and
//     headers by kin-openapi's openapi3filter, the body against its media
//     type's schema. Tests send hostile requests on purpose, so an invalid
//     request does not fail the test by itself: its answer must then be a
//     documented 4xx.
//   - The response must be one the operation documents: its status; its
//     headers, each required one present, each present one of its schema,
//     and none the document does not declare (but for HTTP's own, such as
//     Content-Length and Date); and its body against the schema of its
//     content type, which must be documented. A status documented without
//     content must come without a body.
//
// Schemas are JSON Schema 2020-12, OpenAPI 3.1's dialect, with formats
// (uuid, date-time, uri-reference) asserted; each is compiled once from the
// document, so validating costs little per exchange.
//
// HEAD is validated as GET without the body, as the APIs answer it. The
// document's security is not enforced on requests: whether a token is
// needed depends on how the service was started (authentication is off
// without AUTH_JWKS_URL), so the server decides, and its 401 and 403 are
// validated like any response.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/go-chi/chi/v5"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/ordersonkafka/orders/internal/platform/web"
)

// Contract is an OpenAPI document ready to validate exchanges. It is safe
// for concurrent use.
type Contract struct {
	name   string
	doc    *openapi3.T
	router routers.Router
	// raw is the document as JSON values, in which responses are looked up
	// by JSON pointer and their schemas compiled, once each.
	raw      any
	compiler *jsonschema.Compiler // guarded by compile
	compile  sync.Mutex
	schemas  sync.Map // JSON pointer → *jsonschema.Schema
}

// unrouted names the components.responses that answer what the document
// does not list, by status.
var unrouted = map[int]string{
	http.StatusBadRequest:       "BadRequest",
	http.StatusNotFound:         "NotFound",
	http.StatusMethodNotAllowed: "MethodNotAllowed",
}

var (
	mu        sync.Mutex
	contracts = map[string]*Contract{} // by document, so each is parsed once per test binary
)

// Load returns the contract of document, failing tb if it cannot be loaded
// or is not a valid OpenAPI document with BadRequest, NotFound and
// MethodNotAllowed responses among its components.
func Load(tb testing.TB, document []byte) *Contract {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if c, ok := contracts[string(document)]; ok {
		return c
	}
	c, err := load(document)
	if err != nil {
		tb.Fatalf("openapitest: %v", err)
	}
	contracts[string(document)] = c
	return c
}

func load(document []byte) (*Contract, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(document)
	if err != nil {
		return nil, fmt.Errorf("load the document: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("the document is not valid: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the document: %w", err)
	}
	for _, name := range unrouted {
		if doc.Components == nil || doc.Components.Responses[name] == nil {
			return nil, fmt.Errorf("the document has no components.responses %s, which answers what it does not list", name)
		}
	}
	// The document as JSON, $refs kept: the JSON Schema compiler resolves
	// them within it.
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("the document as JSON: %w", err)
	}
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("the document as JSON: %w", err)
	}
	compiler := jsonschema.NewCompiler()
	compiler.DefaultDraft(jsonschema.Draft2020) // OpenAPI 3.1's dialect
	compiler.AssertFormat()                     // uuid, date-time, uri-reference… are checked, not annotations
	if err := compiler.AddResource(documentURL, raw); err != nil {
		return nil, fmt.Errorf("the document's schemas: %w", err)
	}
	name := "the document"
	if doc.Info != nil {
		name = doc.Info.Title
	}
	return &Contract{name: name, doc: doc, router: router, raw: raw, compiler: compiler}, nil
}

// documentURL is where the compiler finds the document.
const documentURL = "urn:openapitest:document"

// exchange is one request, its body, and the response it got.
type exchange struct {
	req     *http.Request
	reqBody []byte
	status  int
	header  http.Header
	body    []byte
}

// report fails tb with what was exchanged and why it is not the document's.
func (c *Contract) report(tb testing.TB, x exchange, err error) {
	tb.Helper()
	tb.Errorf("%s: %s %s answered %d: %s", c.name, x.req.Method, cut(x.req.URL.RequestURI(), 120), x.status, cut(err.Error(), 2048))
}

// check returns why x does not follow the document, or nil.
func (c *Contract) check(x exchange) error {
	ctx := context.Background()
	// HEAD is GET without the body: route and validate it as GET.
	req := x.req.Clone(ctx)
	if req.Method == http.MethodHead {
		req.Method = http.MethodGet
	}
	req.Body, req.GetBody = io.NopCloser(bytes.NewReader(x.reqBody)), nil
	var response string // the JSON pointer of the response the document gives x
	route, params, err := c.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound), errors.Is(err, routers.ErrMethodNotAllowed):
		want := http.StatusNotFound
		if errors.Is(err, routers.ErrMethodNotAllowed) {
			want = http.StatusMethodNotAllowed
		}
		if !textual(req.URL) {
			want = http.StatusBadRequest
		}
		if x.status != want {
			return fmt.Errorf("route missing from the document (%v)", err)
		}
		response = "/components/responses/" + unrouted[want]
	case err != nil:
		return fmt.Errorf("find the route: %w", err)
	default:
		operation := "/paths/" + escape(route.Path) + "/" + strings.ToLower(req.Method)
		// kin-openapi validates the parameters (their styles are its
		// strength); the body is validated here, against a schema compiled
		// once rather than once a request.
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: &openapi3filter.Options{
			AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
			SkipSettingDefaults: true, // validate what was sent, never rewrite it
			ExcludeRequestBody:  true,
		}}
		err := openapi3filter.ValidateRequest(ctx, in)
		if err == nil {
			err = c.checkRequestBody(operation+"/requestBody", x)
		}
		if err != nil && (x.status < 400 || x.status >= 500) {
			return fmt.Errorf("the request does not follow the document, yet it was not answered with a 4xx: %w", err)
		}
		responses := operation + "/responses"
		status := strconv.Itoa(x.status)
		for _, key := range []string{status, status[:1] + "XX", "default"} {
			if p := responses + "/" + key; c.node(p) != nil {
				response = p
				break
			}
		}
		if response == "" {
			return fmt.Errorf("status %d is not documented for %s %s", x.status, req.Method, route.Path)
		}
	}
	return c.checkResponse(response, x)
}

// checkRequestBody validates x's request body against the request body
// object at pointer, if the operation has one.
func (c *Contract) checkRequestBody(pointer string, x exchange) error {
	pointer, body := c.resolve(pointer)
	if body == nil {
		return nil
	}
	if len(x.reqBody) == 0 {
		if body["required"] == true {
			return errors.New("the request body is required")
		}
		return nil
	}
	content, _ := body["content"].(map[string]any)
	ct := x.req.Header.Get("Content-Type")
	key := mediaType(content, ct)
	if key == "" {
		return fmt.Errorf("request Content-Type %q is not documented", ct)
	}
	return c.checkBody(pointer+"/content/"+escape(key), key, x.reqBody)
}

// checkBody validates body, of media type key, against the media type
// object at pointer.
func (c *Contract) checkBody(pointer, key string, body []byte) error {
	if mt, _ := c.node(pointer).(map[string]any); mt["schema"] == nil {
		return nil
	}
	var value any = string(body)
	if key == "application/json" || strings.HasSuffix(key, "+json") {
		var err error
		if value, err = jsonschema.UnmarshalJSON(bytes.NewReader(body)); err != nil {
			return fmt.Errorf("the %s body is not JSON: %w", key, err)
		}
	} else if !strings.HasPrefix(key, "text/") {
		return fmt.Errorf("openapitest cannot decode %s to validate it", key)
	}
	if err := c.validate(pointer+"/schema", value); err != nil {
		return fmt.Errorf("the body doesn't match the document: %w", err)
	}
	return nil
}

// checkResponse validates x's response against the response object at
// pointer: its headers, and its body unless there is none to have (HEAD,
// 304).
func (c *Contract) checkResponse(pointer string, x exchange) error {
	pointer, resp := c.resolve(pointer)
	headers, _ := resp["headers"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(x.header)) {
		declared := slices.Contains(transportHeaders, name)
		for d := range headers {
			declared = declared || http.CanonicalHeaderKey(d) == name
		}
		if !declared {
			return fmt.Errorf("response header %q is not in the document", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(headers)) {
		at, h := c.resolve(pointer + "/headers/" + escape(name))
		v, ok := x.header[http.CanonicalHeaderKey(name)]
		switch {
		case !ok && h["required"] == true:
			return fmt.Errorf("response header %q missing", name)
		case !ok || h["schema"] == nil:
			continue
		}
		var value any = v[0]
		if schema, _ := h["schema"].(map[string]any); schema["type"] == "integer" {
			if _, err := strconv.ParseInt(v[0], 10, 64); err != nil {
				return fmt.Errorf("response header %q: %q is not an integer", name, v[0])
			}
			value = json.Number(v[0])
		}
		if err := c.validate(at+"/schema", value); err != nil {
			return fmt.Errorf("response header %q doesn't match the document: %w", name, err)
		}
	}
	content, _ := resp["content"].(map[string]any)
	switch {
	case len(content) == 0 && len(x.body) > 0:
		return fmt.Errorf("status %d is documented without content, yet it came with %d bytes", x.status, len(x.body))
	case len(content) == 0, x.req.Method == http.MethodHead, x.status == http.StatusNotModified:
		return nil
	}
	ct := x.header.Get("Content-Type")
	key := mediaType(content, ct)
	if key == "" {
		return fmt.Errorf("Content-Type %q is not documented for status %d", ct, x.status)
	}
	return c.checkBody(pointer+"/content/"+escape(key), key, x.body)
}

// mediaType returns the key of content that a response of Content-Type ct
// is documented under: ct itself, without its parameters, its type's
// wildcard, or */*; "" if none.
func mediaType(content map[string]any, ct string) string {
	full := strings.ToLower(strings.TrimSpace(ct))
	base, _, _ := strings.Cut(full, ";")
	base = strings.TrimSpace(base)
	typ, _, _ := strings.Cut(base, "/")
	for _, want := range []string{full, base, typ + "/*", "*/*"} {
		for key := range content {
			if strings.ToLower(key) == want {
				return key
			}
		}
	}
	return ""
}

// validate validates value against the schema at pointer in the document,
// compiling it the first time.
func (c *Contract) validate(pointer string, value any) error {
	s, ok := c.schemas.Load(pointer)
	if !ok {
		c.compile.Lock()
		compiled, err := c.compiler.Compile(documentURL + "#" + pointer)
		c.compile.Unlock()
		if err != nil {
			return fmt.Errorf("compile %s: %w", pointer, err)
		}
		s, _ = c.schemas.LoadOrStore(pointer, compiled)
	}
	return s.(*jsonschema.Schema).Validate(value)
}

// resolve returns the object at pointer in the document, following $refs,
// and where it was found.
func (c *Contract) resolve(pointer string) (string, map[string]any) {
	for range 8 { // a chain of references, not a loop
		obj, _ := c.node(pointer).(map[string]any)
		ref, ok := obj["$ref"].(string)
		if !ok || !strings.HasPrefix(ref, "#/") {
			return pointer, obj
		}
		pointer = ref[1:]
	}
	return pointer, nil
}

// node returns the value at pointer in the document, or nil.
func (c *Contract) node(pointer string) any {
	v := c.raw
	for _, token := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = obj[unescaper.Replace(token)]
	}
	return v
}

// escaper makes a string one token of a JSON pointer (RFC 6901), and
// unescaper makes it the string again.
var escaper, unescaper = strings.NewReplacer("~", "~0", "/", "~1"), strings.NewReplacer("~1", "/", "~0", "~")

func escape(s string) string { return escaper.Replace(s) }

// textual reports whether u's path and query are text as the APIs require
// of every request before routing it: each percent-decoded, valid UTF-8
// without NUL, and the query properly percent-encoded.
func textual(u *url.URL) bool {
	text := func(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil || !text(u.Path) {
		return false
	}
	for name, values := range q {
		if !text(name) {
			return false
		}
		for _, v := range values {
			if !text(v) {
				return false
			}
		}
	}
	return true
}

// transportHeaders are the response headers a document does not declare:
// Content-Type is its content's (OpenAPI ignores a header of that name), the
// others belong to HTTP's framing rather than to the API.
var transportHeaders = []string{"Connection", "Content-Encoding", "Content-Length", "Content-Type", "Date", "Keep-Alive", "Trailer", "Transfer-Encoding", "Vary"}

// Handler returns h with every request it serves and every response it
// gives validated against c; a mismatch fails tb. It reads each request body
// before h does (the bodies of these APIs are small) and copies each
// response body as h writes it, so streaming and flushing work as without
// it.
func (c *Contract) Handler(tb testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			tb.Errorf("%s: %s %s: read the request body: %v", c.name, r.Method, cut(r.URL.RequestURI(), 120), err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		rec.snapshot(http.StatusOK) // a handler that wrote nothing answered 200
		x := exchange{req: r, reqBody: body, status: rec.status, header: rec.header, body: rec.body.Bytes()}
		if err := c.check(x); err != nil {
			c.report(tb, x, err)
		}
	})
}

// recorder copies what a handler answers on its way to the client.
type recorder struct {
	http.ResponseWriter
	status int
	header http.Header
	body   bytes.Buffer
}

// snapshot records status and the headers as they are when it is sent, once.
func (r *recorder) snapshot(status int) {
	if r.status == 0 {
		r.status, r.header = status, r.ResponseWriter.Header().Clone()
	}
}

func (r *recorder) WriteHeader(status int) {
	if status >= 200 { // 1xx are informational; the response is still to come
		r.snapshot(status)
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.snapshot(http.StatusOK)
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// Flush and Unwrap keep http.Flusher and http.ResponseController working.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Transport returns base (http.DefaultTransport if nil) with every request
// it sends and every response it receives validated against c; a mismatch
// fails tb. It reads each response body in full before returning it (the
// bodies of these APIs are small), so the caller reads it from memory.
func (c *Contract) Transport(tb testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{c: c, tb: tb, base: base}
}

// Client is an http.Client whose requests and responses are validated
// against c (Transport).
func (c *Contract) Client(tb testing.TB) *http.Client {
	return &http.Client{Transport: c.Transport(tb, nil)}
}

type transport struct {
	c    *Contract
	tb   testing.TB
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	out := req.Clone(req.Context()) // a RoundTripper must not change the caller's request
	out.Body = http.NoBody
	if req.Body != nil && req.Body != http.NoBody {
		out.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		return nil, err // no answer to check
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	x := exchange{req: req, reqBody: body, status: resp.StatusCode, header: resp.Header, body: b}
	if err := t.c.check(x); err != nil {
		t.c.report(t.tb, x, err)
	}
	return resp, nil
}

// Routes fails tb unless the routes r registers (chi.Walk) are exactly the
// document's operations, by method and path: a route the document lacks, or
// an operation nothing serves. HEAD counts as GET, which is how both are
// registered and documented.
func (c *Contract) Routes(tb testing.TB, r chi.Routes) {
	tb.Helper()
	registered := map[string]bool{}
	if err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		registered[method+" "+route] = true
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	for _, route := range slices.Sorted(maps.Keys(registered)) {
		if !documented[route] {
			tb.Errorf("%s: the router serves %s, which the document does not have", c.name, route)
		}
	}
	for _, op := range slices.Sorted(maps.Keys(documented)) {
		if !registered[op] {
			tb.Errorf("%s: the document has %s, which the router does not serve", c.name, op)
		}
	}
}

// cut shortens s for a failure message.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// HoldsAPI checks what every API of ours owes its document: its router,
// as build makes it with authentication off (nil) and on, serves exactly
// the document's operations; and GET /openapi.yaml answers, without a
// token, the document itself, byte for byte, as application/yaml.
func HoldsAPI(t *testing.T, document []byte, build func(auth *web.Auth) http.Handler) {
	t.Helper()
	c := Load(t, document)
	on, err := web.NewAuth(web.AuthConfig{Issuer: "https://issuer.example", Audience: "orders", Keys: web.KeySetConfig{URL: "http://127.0.0.1:1/jwks"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, auth := range map[string]*web.Auth{"authentication off": nil, "authentication on": on} {
		t.Run(name, func(t *testing.T) {
			h := build(auth)
			c.Routes(t, h.(chi.Routes))
			srv := httptest.NewServer(c.Handler(t, h))
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/openapi.yaml")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/yaml" {
				t.Fatalf("GET /openapi.yaml: %d %q, want 200 application/yaml", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if !bytes.Equal(body, document) {
				t.Errorf("GET /openapi.yaml served %d bytes that are not the document (%d bytes)", len(body), len(document))
			}
		})
	}
}
