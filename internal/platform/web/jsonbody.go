package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/ordersonkafka/orders/internal/text"
)

// JSONBody is what a request's body must be for Decode to take it.
type JSONBody struct {
	// MaxBytes bounds the body; a longer one is 413. Required.
	MaxBytes int64
	// Optional takes an empty body (or only white space) as no body at
	// all, leaving the value as it is; without it such a body is 400.
	Optional bool
}

// Decode reads r's body into v, a pointer to the struct the body documents,
// strictly: at most MaxBytes (413), without a content coding (415),
// application/json in UTF-8 (415 for another media type or charset), valid
// UTF-8 bytes (400: encoding/json would silently turn them into U+FFFD), one
// JSON value whose objects repeat no key and whose keys are exactly the JSON
// names of the fields of the struct they decode into (400: encoding/json
// lets the last of two keys win and matches names case-insensitively). A
// refusal is answered here, as a problem whose detail speaks JSON, never Go,
// and quotes the client's input cut; Decode then returns false and the
// caller only returns.
func (b JSONBody) Decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, b.MaxBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		Problem(w, r, http.StatusRequestEntityTooLarge, TypeTooLarge, "Content Too Large",
			fmt.Sprintf("request body exceeds %d bytes", b.MaxBytes), nil)
		return false
	}
	if err != nil {
		Problem(w, r, http.StatusBadRequest, TypeMalformed, "Bad Request", "could not read the request body", nil)
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if !b.Optional {
			Problem(w, r, http.StatusBadRequest, TypeMalformed, "Bad Request", "a JSON request body is required", nil)
			return false
		}
		return true
	}
	if !identityEncoded(r.Header) {
		// RFC 9110 §15.5.16: 415 for a content coding we do not decode,
		// saying in Accept-Encoding which one we do.
		w.Header().Set("Accept-Encoding", "identity")
		Problem(w, r, http.StatusUnsupportedMediaType, TypeMediaType, "Unsupported Media Type",
			"request body must not be content-encoded (Content-Encoding: identity or none)", nil)
		return false
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		Problem(w, r, http.StatusUnsupportedMediaType, TypeMediaType, "Unsupported Media Type",
			"request body must be application/json", nil)
		return false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		Problem(w, r, http.StatusUnsupportedMediaType, TypeMediaType, "Unsupported Media Type",
			"request body must be application/json in UTF-8; charset "+text.Quote(cs, 32)+" is not supported", nil)
		return false
	}
	if !utf8.Valid(body) {
		Problem(w, r, http.StatusBadRequest, TypeMalformed, "Bad Request", "request body is not valid UTF-8", nil)
		return false
	}
	if err := strictJSON(body, reflect.TypeOf(v)); err != nil {
		Problem(w, r, http.StatusBadRequest, TypeMalformed, "Bad Request", describeJSONError(err), nil)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		Problem(w, r, http.StatusBadRequest, TypeMalformed, "Bad Request", describeJSONError(err), nil)
		return false
	}
	return true
}

// identityEncoded reports whether the body carries no content coding.
func identityEncoded(h http.Header) bool {
	for _, v := range h.Values("Content-Encoding") {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return false
			}
		}
	}
	return true
}

// maxJSONDepth bounds how deeply a body may nest: far deeper than any
// request of ours needs, and strictJSON recurses once per level.
const maxJSONDepth = 16

// jsonError is a refusal by strictJSON, worded for the client.
type jsonError struct{ msg string }

func (e *jsonError) Error() string { return e.msg }

// strictJSON checks that body is exactly one JSON value, that no object in it
// has the same key twice, and that each key of an object decoded into a
// struct of t is exactly one of that struct's JSON names. Where the body's
// shape differs from t (an array for an object), it only checks keys are not
// repeated, and leaves the type error to the decoder, which words it.
func strictJSON(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers are not parsed here: 1e999 is the decoder's to refuse
	if err := walkJSON(dec, t, "", 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return &jsonError{"unexpected data after the JSON value"}
	}
	return nil
}

func walkJSON(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth == maxJSONDepth {
		return &jsonError{fmt.Sprintf("JSON nested more than %d levels deep", maxJSONDepth)}
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch delim {
	case '{':
		var fields map[string]reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = jsonFields(t)
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := tok.(string)
			where := "the request body"
			if path != "" {
				where = path
			}
			if seen[key] {
				return &jsonError{fmt.Sprintf("key %s appears more than once in %s", text.Quote(key, 64), where)}
			}
			seen[key] = true
			var next reflect.Type
			if fields != nil {
				if next, ok = fields[key]; !ok {
					return &jsonError{fmt.Sprintf("unknown field %s in %s (names are case-sensitive)", text.Quote(key, 64), where)}
				}
			}
			if err := walkJSON(dec, next, joinPath(path, key), depth+1); err != nil {
				return err
			}
		}
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkJSON(dec, elem, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonFields maps the JSON names of struct t's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
	}
	return fields
}

// describeJSONError words a decoding error in JSON's terms: never a Go type.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var strict *jsonError
	switch {
	case errors.As(err, &strict):
		return strict.msg
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		what := "the request body"
		if typ.Field != "" {
			what = "field " + text.Quote(typ.Field, 64)
		}
		return fmt.Sprintf("%s must be %s, got %s", what, jsonType(typ.Type), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of input"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "malformed JSON"
}

// jsonType names what a value of Go type t is in JSON.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		bits := t.Bits()
		return fmt.Sprintf("an integer from %d to %d", int64(-1)<<(bits-1), int64(1)<<(bits-1)-1)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "another JSON type"
}
