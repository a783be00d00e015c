package openapitest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/openapitest"
)

// document is a small API: GET /things/{id} (an integer) answers a thing with
// an ETag, POST /things takes a name.
const document = `
openapi: 3.1.0
info: {title: things, version: 1.0.0}
paths:
  /things/{id}:
    get:
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
      responses:
        '200':
          description: the thing
          headers:
            ETag: {required: true, schema: {type: string, pattern: '^"[0-9]+"$'}}
          content:
            application/json:
              schema: {type: object, additionalProperties: false, required: [id], properties: {id: {type: integer}}}
        '304':
          description: not modified
          headers:
            ETag: {required: true, schema: {type: string}}
        '400': {$ref: '#/components/responses/BadRequest'}
  /things:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [name], properties: {name: {type: string}}}
      responses:
        '201': {description: created}
        '400': {$ref: '#/components/responses/BadRequest'}
components:
  responses:
    BadRequest:
      description: refused
      content:
        application/problem+json:
          schema: {type: object, required: [status], properties: {status: {type: integer}}}
    NotFound:
      description: no such path
      content:
        application/problem+json:
          schema: {type: object, required: [status], properties: {status: {const: 404}}}
    MethodNotAllowed:
      description: not this method
      headers:
        Allow: {required: true, schema: {type: string}}
      content:
        application/problem+json:
          schema: {type: object, required: [status], properties: {status: {const: 405}}}
`

// failures is a testing.TB that records the failures it is told of.
type failures struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (f *failures) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func (f *failures) all() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.errs, "\n")
}

// answer writes status, headers (name, value, …) and body.
func answer(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

const js, problem = "application/json", "application/problem+json"

// Each case is one exchange, through the Handler and through the Transport:
// what follows the document passes, and each way of departing from it fails
// with its reason.
func TestExchangesAreHeldToTheDocument(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, method, path, body string
		handler                  http.HandlerFunc
		fails                    string // "" if the exchange follows the document
	}{
		{"a documented answer", "GET", "/things/1", "", answer(200, `{"id":1}`, "Content-Type", js, "ETag", `"1"`), ""},
		{"HEAD as GET", "HEAD", "/things/1", "", answer(200, "", "Content-Type", js, "ETag", `"1"`), ""},
		{"a 304 with its header", "GET", "/things/1", "", answer(304, "", "ETag", `"1"`), ""},
		{"an undocumented status", "GET", "/things/1", "", answer(500, `{"status":500}`, "Content-Type", problem), "status 500 is not documented"},
		{"a required header missing", "GET", "/things/1", "", answer(200, `{"id":1}`, "Content-Type", js), `"ETag" missing`},
		{"a required header missing on HEAD", "HEAD", "/things/1", "", answer(200, "", "Content-Type", js), `"ETag" missing`},
		{"a required header missing on a 304", "GET", "/things/1", "", answer(304, ""), `"ETag" missing`},
		{"a header of the wrong form", "GET", "/things/1", "", answer(200, `{"id":1}`, "Content-Type", js, "ETag", `W/"1"`), `"ETag" doesn't match the document`},
		{"a header not in the document", "GET", "/things/1", "", answer(200, `{"id":1}`, "Content-Type", js, "ETag", `"1"`, "X-Secret", "1"), `"X-Secret" is not in the document`},
		{"a body not of the schema", "GET", "/things/1", "", answer(200, `{"id":1,"extra":2}`, "Content-Type", js, "ETag", `"1"`), "additional properties 'extra' not allowed"},
		{"another content type", "GET", "/things/1", "", answer(200, `{"id":1}`, "Content-Type", "text/plain", "ETag", `"1"`), `Content-Type "text/plain" is not documented`},
		{"a body where the document has none", "POST", "/things", `{"name":"a"}`, answer(201, `{"id":1}`, "Content-Type", js), "documented without content"},
		{"an invalid request refused", "POST", "/things", `{}`, answer(400, `{"status":400}`, "Content-Type", problem), ""},
		{"an invalid request accepted", "POST", "/things", `{}`, answer(201, ""), "not answered with a 4xx"},
		{"an invalid path parameter accepted", "GET", "/things/x", "", answer(200, `{"id":1}`, "Content-Type", js, "ETag", `"1"`), "not answered with a 4xx"},
		{"an unknown path refused as the document says", "GET", "/nowhere", "", answer(404, `{"status":404}`, "Content-Type", problem), ""},
		{"a route missing from the document", "GET", "/nowhere", "", answer(200, "", "Content-Type", js), "route missing from the document"},
		{"an unknown path that is not text refused", "GET", "/nowhere?q=%ff", "", answer(400, `{"status":400}`, "Content-Type", problem), ""},
		{"an unknown path that is text refused as malformed", "GET", "/nowhere?q=a", "", answer(400, `{"status":400}`, "Content-Type", problem), "route missing from the document"},
		{"a method the path does not take, refused", "DELETE", "/things/1", "", answer(405, `{"status":405}`, "Content-Type", problem, "Allow", "GET, HEAD"), ""},
		{"a method the path does not take, refused without Allow", "DELETE", "/things/1", "", answer(405, `{"status":405}`, "Content-Type", problem), `"Allow" missing`},
		{"a method missing from the document", "DELETE", "/things/1", "", answer(204, ""), "route missing from the document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, via := range []string{"Handler", "Transport"} {
				f := &failures{TB: t}
				contract := openapitest.Load(t, []byte(document))
				// Each server's own client: the subtests run in parallel, and
				// another's srv.Close closes http.DefaultTransport's idle
				// connections, which broke a request sent on one once.
				var srv *httptest.Server
				var client *http.Client
				if via == "Handler" {
					srv = httptest.NewServer(contract.Handler(f, tc.handler))
					client = srv.Client()
				} else {
					srv = httptest.NewServer(tc.handler)
					client = &http.Client{Transport: contract.Transport(f, srv.Client().Transport)}
				}
				req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				if tc.body != "" {
					req.Header.Set("Content-Type", js)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				srv.Close() // the Handler's check has run once this returns
				got := f.all()
				switch {
				case tc.fails == "" && got != "":
					t.Errorf("via the %s: failed, want no failure:\n%s", via, got)
				case tc.fails != "" && !strings.Contains(got, tc.fails):
					t.Errorf("via the %s: failures %q, want one saying %q", via, got, tc.fails)
				}
			}
		})
	}
}
