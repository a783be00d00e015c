package web_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/ordersonkafka/orders/internal/platform/web"
)

// If-Match is "*" or a list of entity-tags, spread over any number of field
// lines, and compares strongly: only a strong tag spelled exactly as the
// representation's matches it.
func TestIfMatchIsAStrongComparisonAgainstAList(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		lines   []string
		ok, any bool
		matches []int64 // of versions 1 to 3, those whose ETag meets it
	}{
		{"no field", nil, true, true, []int64{1, 2, 3}},
		{"an empty field", []string{" "}, true, true, []int64{1, 2, 3}},
		{"any", []string{`*`}, true, true, []int64{1, 2, 3}},
		{"one tag", []string{`"1"`}, true, false, []int64{1}},
		{"a list", []string{`"1", "3"`}, true, false, []int64{1, 3}},
		{"a list without spaces", []string{`"3","2"`}, true, false, []int64{2, 3}},
		{"a list with empty elements", []string{` , "2" ,, `}, true, false, []int64{2}},
		{"two field lines", []string{`"7"`, `"1"`}, true, false, []int64{1}},
		{"a weak tag and a strong one", []string{`W/"1", "2"`}, true, false, []int64{2}},
		{"a weak tag", []string{`W/"1"`}, true, false, nil},
		{"a leading zero", []string{`"01"`}, true, false, nil},
		{"a plus sign", []string{`"+1"`}, true, false, nil},
		{"an empty tag", []string{`""`}, true, false, nil},
		{"an opaque tag", []string{`"abc"`}, true, false, nil},
		{"obs-text in a tag", []string{"\"\xe9\""}, true, false, nil},
		{"a space inside", []string{`"1 "`}, false, false, nil},
		{"unquoted", []string{`1`}, false, false, nil},
		{"unterminated", []string{`"1`}, false, false, nil},
		{"a list without commas", []string{`"1" "2"`}, false, false, nil},
		{"* in a list", []string{`*, "1"`}, false, false, nil},
		{"weak unquoted", []string{`W/1`}, false, false, nil},
		{"only commas", []string{`,`}, false, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, l := range tc.lines {
				h.Add("If-Match", l)
			}
			m, ok := web.ParseIfMatch(h)
			if ok != tc.ok || m.Any() != tc.any {
				t.Fatalf("ok %v any %v, want ok %v any %v", ok, m.Any(), tc.ok, tc.any)
			}
			var matches []int64
			for v := int64(1); v <= 3; v++ {
				if m.Matches(web.ETag(v)) {
					matches = append(matches, v)
				}
			}
			if ok && !slices.Equal(matches, tc.matches) {
				t.Errorf("matches the versions %v, want %v", matches, tc.matches)
			}
		})
	}
}

func TestAMalformedIfMatchIsABadRequest(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodPost, "/orders/1/pay", nil)
	r.Header.Set("If-Match", `"1" "2"`)
	w := httptest.NewRecorder()
	if _, ok := web.ReadIfMatch(w, r); ok {
		t.Fatal("a malformed If-Match was read")
	}
	var p web.Details
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Code != 400 || p.Type != web.TypeMalformed ||
		p.Detail != `If-Match must be * or a list of entity-tags, such as "3" or "3", "4"` {
		t.Errorf("%d %s (%v)", w.Code, w.Body, err)
	}
	ok := httptest.NewRequest(http.MethodPost, "/orders/1/pay", nil)
	ok.Header.Set("If-Match", `"1"`)
	w = httptest.NewRecorder()
	if m, read := web.ReadIfMatch(w, ok); !read || !m.Matches(`"1"`) || w.Body.Len() != 0 {
		t.Errorf("a good If-Match: %v %s", read, w.Body)
	}
}
