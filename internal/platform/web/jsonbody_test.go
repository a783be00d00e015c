package web_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/platform/web"
)

// The documented shape of a body: a struct, nested, with pointer, slice
// and plain fields.
type line struct {
	Name  *string `json:"name"`
	Count *int32  `json:"count"`
}

type note struct {
	Title *string `json:"title"`
	Lines []line  `json:"lines"`
	Tag   string  `json:"tag"`
	skip  string  // unexported: never a JSON name
}

// Every refusal of Decode, with its status, type and exact detail: a client
// reads what was wrong in JSON's terms, never Go's, and nothing is decoded.
func TestDecodeRefusesPreciselyAndSpeaksJSON(t *testing.T) {
	t.Parallel()
	body := web.JSONBody{MaxBytes: 64}
	const js = "application/json"
	cases := []struct {
		name, body, contentType, encoding string
		status                            int
		typ, detail                       string
	}{
		{"too large", `{"tag":"` + strings.Repeat("x", 64) + `"}`, js, "", 413, web.TypeTooLarge, "request body exceeds 64 bytes"},
		{"empty", ``, js, "", 400, web.TypeMalformed, "a JSON request body is required"},
		{"only white space", " \n\t", js, "", 400, web.TypeMalformed, "a JSON request body is required"},
		{"gzip", `{}`, js, "gzip", 415, web.TypeMediaType, "request body must not be content-encoded (Content-Encoding: identity or none)"},
		{"identity then br", `{}`, js, "identity, br", 415, web.TypeMediaType, "request body must not be content-encoded (Content-Encoding: identity or none)"},
		{"text/plain", `{}`, "text/plain", "", 415, web.TypeMediaType, "request body must be application/json"},
		{"no content type", `{}`, "", "", 415, web.TypeMediaType, "request body must be application/json"},
		{"latin1", `{}`, js + "; charset=latin1", "", 415, web.TypeMediaType, `request body must be application/json in UTF-8; charset "latin1" is not supported`},
		{"invalid UTF-8", "{\"tag\":\"\xff\"}", js, "", 400, web.TypeMalformed, "request body is not valid UTF-8"},
		{"a key twice", `{"tag":"a","tag":"b"}`, js, "", 400, web.TypeMalformed, `key "tag" appears more than once in the request body`},
		{"a key twice, once escaped", `{"tag":"a","t\u0061g":"b"}`, js, "", 400, web.TypeMalformed, `key "tag" appears more than once in the request body`},
		{"a key twice in a nested object", `{"lines":[{},{"name":"a","name":"b"}]}`, js, "", 400, web.TypeMalformed, `key "name" appears more than once in lines[1]`},
		{"a name in another case", `{"Tag":"a"}`, js, "", 400, web.TypeMalformed, `unknown field "Tag" in the request body (names are case-sensitive)`},
		{"an unknown nested name", `{"lines":[{"nme":"a"}]}`, js, "", 400, web.TypeMalformed, `unknown field "nme" in lines[0] (names are case-sensitive)`},
		{"an unexported field's name", `{"skip":"a"}`, js, "", 400, web.TypeMalformed, `unknown field "skip" in the request body (names are case-sensitive)`},
		{"trailing data", `{}{}`, js, "", 400, web.TypeMalformed, "unexpected data after the JSON value"},
		{"nested too deep", strings.Repeat("[", 17) + strings.Repeat("]", 17), js, "", 400, web.TypeMalformed, "JSON nested more than 16 levels deep"},
		{"malformed", `{"tag":}`, js, "", 400, web.TypeMalformed, "malformed JSON at byte 7: invalid character '}' looking for beginning of value"},
		{"cut short inside a string", `{"tag":"a`, js, "", 400, web.TypeMalformed, "malformed JSON: unexpected end of input"},
		{"cut short between tokens", `{"tag":"a"`, js, "", 400, web.TypeMalformed, "malformed JSON"},
		{"an array for the body", `[]`, js, "", 400, web.TypeMalformed, "the request body must be an object, got array"},
		{"a number for a string", `{"tag":1}`, js, "", 400, web.TypeMalformed, `field "tag" must be a string, got number`},
		{"a string for an array", `{"lines":"a"}`, js, "", 400, web.TypeMalformed, `field "lines" must be an array, got string`},
		{"a count beyond 32 bits", `{"lines":[{"count":4294967296}]}`, js, "", 400, web.TypeMalformed, `field "lines.count" must be an integer from -2147483648 to 2147483647, got number 4294967296`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/notes", strings.NewReader(tc.body))
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			if tc.encoding != "" {
				r.Header.Set("Content-Encoding", tc.encoding)
			}
			w := httptest.NewRecorder()
			var v note
			if body.Decode(w, r, &v) {
				t.Fatalf("decoded %+v, want %d", v, tc.status)
			}
			var p web.Details
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatalf("%d %s: %v", w.Code, w.Body, err)
			}
			if w.Code != tc.status || p.Status != tc.status || p.Type != tc.typ || p.Detail != tc.detail ||
				w.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("%d %s %q, want %d %s %q", w.Code, p.Type, p.Detail, tc.status, tc.typ, tc.detail)
			}
			if tc.status == 415 && tc.encoding != "" && w.Header().Get("Accept-Encoding") != "identity" {
				t.Errorf("Accept-Encoding %q, want identity", w.Header().Get("Accept-Encoding"))
			}
		})
	}
}

func TestDecodeTakesTheDocumentedBody(t *testing.T) {
	t.Parallel()
	decode := func(b web.JSONBody, contentType, body string, v *note) (bool, *httptest.ResponseRecorder) {
		r := httptest.NewRequest(http.MethodPost, "/notes", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		r.Header.Set("Content-Encoding", "identity")
		w := httptest.NewRecorder()
		return b.Decode(w, r, v), w
	}
	var v note
	ok, w := decode(web.JSONBody{MaxBytes: 1 << 10}, `application/json; charset="UTF-8"`,
		` {"title":"café","lines":[{"name":"a","count":2}],"tag":"t"} `+"\n", &v)
	if !ok || *v.Title != "café" || len(v.Lines) != 1 || *v.Lines[0].Name != "a" || *v.Lines[0].Count != 2 || v.Tag != "t" {
		t.Fatalf("decoded %v %+v: %d %s", ok, v, w.Code, w.Body)
	}
	kept := note{Tag: "kept"}
	if ok, w := decode(web.JSONBody{MaxBytes: 1 << 10, Optional: true}, "", "", &kept); !ok || kept.Tag != "kept" || w.Body.Len() != 0 {
		t.Errorf("an optional body left out: %v %+v %s", ok, kept, w.Body)
	}
	if ok, w := decode(web.JSONBody{MaxBytes: 1 << 10, Optional: true}, "application/json", "{}", &kept); !ok || kept.Tag != "kept" {
		t.Errorf("an optional body, empty object: %v %+v %s", ok, kept, w.Body)
	}
}
