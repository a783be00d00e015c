package schemaregistry_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/schemaregistry"
)

// avroVector is a reader/writer pair from Apache Avro's Java compatibility
// tests with the verdict they assert: compatible iff the reader can read
// every datum written with the writer.
type avroVector struct {
	Name       string          `json:"name"`
	Reader     json.RawMessage `json:"reader"`
	Writer     json.RawMessage `json:"writer"`
	Compatible bool            `json:"compatible"`
	Source     string          `json:"source"`
	// Incompatibilities are those the Java test asserts, in order; Partial
	// when it asserts only the first ones.
	Incompatibilities []reason `json:"incompatibilities"`
	Partial           bool     `json:"partial"`

	reader, writer string // compact JSON
}

type reason struct {
	Type     string `json:"type"`
	Message  string `json:"message"`
	Location string `json:"location"`
}

func loadVectors(t *testing.T) []avroVector {
	t.Helper()
	b, err := os.ReadFile("testdata/avro_compatibility_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []avroVector `json:"vectors"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	for i := range file.Vectors {
		v := &file.Vectors[i]
		v.reader, v.writer = compact(t, v.Reader), compact(t, v.Writer)
	}
	if len(file.Vectors) < 150 {
		t.Fatalf("only %d vectors", len(file.Vectors))
	}
	return file.Vectors
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// verdicts holds every pair's verdict, so that a level that needs the other
// direction (FULL) or another version (the _TRANSITIVE levels) finds it.
type verdicts map[[2]string]bool

func (vs verdicts) canRead(reader, writer string) (compatible, known bool) {
	compatible, known = vs[[2]string{reader, writer}]
	return compatible, known
}

func verdictsOf(t *testing.T, vectors []avroVector) verdicts {
	t.Helper()
	vs := verdicts{}
	for _, v := range vectors {
		key := [2]string{v.reader, v.writer}
		if prev, ok := vs[key]; ok && prev != v.Compatible {
			t.Fatalf("%s: the vectors disagree on this pair", v.Name)
		}
		vs[key] = v.Compatible
	}
	return vs
}

// TestAvroVectorsAtEveryLevel gives a subject one version and asks the
// registry over HTTP about a second under every level, for every vector:
// POST /compatibility/subjects/{s}/versions?verbose=true (the check
// registering makes) and, for each history, .../versions/latest, with the
// reasons; then POST /subjects/{s}/versions under a level expected to refuse
// (409) and then one expected to accept (200).
//
// The old version is the writer and the candidate the reader for BACKWARD
// (the candidate reads the old data), FULL and NONE; the other way round for
// FORWARD (the old version reads the candidate's data). FULL needs the other
// direction's verdict too: it is run when a vector holds it or the pair's
// own verdict already refuses. NONE accepts everything; with one earlier
// version each _TRANSITIVE level answers as its plain level.
func TestAvroVectorsAtEveryLevel(t *testing.T) {
	vectors := loadVectors(t)
	vs := verdictsOf(t, vectors)
	srv := httptest.NewServer(schemaregistry.New())
	t.Cleanup(srv.Close)
	var subtests []subtest
	withoutFull := 0
	for i, v := range vectors {
		type check struct {
			level  string
			accept bool
		}
		backward := []check{{"NONE", true}, {"BACKWARD", v.Compatible}, {"BACKWARD_TRANSITIVE", v.Compatible}}
		if full, ok := vs.canRead(v.writer, v.reader); ok || !v.Compatible {
			backward = append(backward, check{"FULL", v.Compatible && full}, check{"FULL_TRANSITIVE", v.Compatible && full})
		} else {
			withoutFull++
		}
		forward := []check{{"FORWARD", v.Compatible}, {"FORWARD_TRANSITIVE", v.Compatible}}
		for _, h := range []struct {
			label, old, candidate string
			checks                []check
		}{{"the reader follows the writer", v.writer, v.reader, backward}, {"the writer follows the reader", v.reader, v.writer, forward}} {
			subtests = append(subtests, subtest{h.label + "/" + v.Name, func(t *testing.T) {
				c := client{t: t, url: srv.URL, subject: fmt.Sprintf("vector-%d-%s", i, h.checks[0].level)}
				c.mustRegister(h.old)
				for j, ch := range h.checks {
					why := ch.level + ": " + v.Source
					c.setLevel(ch.level)
					paths := []string{"/versions"}
					if j == len(h.checks)-1 {
						paths = append(paths, "/versions/latest")
					}
					for _, path := range paths {
						msgs := c.compatible(path, h.candidate, ch.accept, why)
						// The Java test's reasons are those of the pair alone: new
						// reads old (BACKWARD), old reads new (FORWARD).
						if !ch.accept && (strings.HasPrefix(ch.level, "BACKWARD") || strings.HasPrefix(ch.level, "FORWARD")) {
							assertReasons(t, v, msgs)
						}
					}
				}
				// Registering runs the check /versions ran: once refused (it
				// changes nothing), then once accepted.
				for _, accept := range []bool{false, true} {
					for _, ch := range h.checks {
						if ch.accept == accept {
							c.setLevel(ch.level)
							c.register(h.candidate, accept, ch.level+": "+v.Source)
							break
						}
					}
				}
			}})
		}
	}
	runConcurrently(t, subtests)
	t.Logf("%d vectors; FULL not derivable (the other direction is in no vector) for %d", len(vectors), withoutFull)
}

// TestAvroVectorsTransitive runs three vectors' schemas as a subject's
// history: versions A and B (registered under NONE), then a candidate C under
// a level and its _TRANSITIVE form. The plain level checks C against the
// latest (B) only, the transitive one against A and B, so where C may follow
// B but not A the plain level accepts C and the transitive one refuses it.
// Every such triple the vectors' verdicts allow is run, and for each level
// one triple of each other combination (both versions accept C, only A
// does, neither does).
func TestAvroVectorsTransitive(t *testing.T) {
	vectors := loadVectors(t)
	vs := verdictsOf(t, vectors)
	var schemas []string
	seen := map[string]bool{}
	for _, v := range vectors {
		for _, s := range []string{v.writer, v.reader} {
			if !seen[s] {
				seen[s] = true
				schemas = append(schemas, s)
			}
		}
	}
	// follows[kind][old][candidate]: 1 may follow, 0 may not, -1 unknown.
	follows := map[string][][]int8{}
	for _, kind := range []string{"BACKWARD", "FORWARD", "FULL"} {
		m := make([][]int8, len(schemas))
		for o, old := range schemas {
			m[o] = make([]int8, len(schemas))
			for c, candidate := range schemas {
				m[o][c] = -1
				if ok, known := verdictFor(vs, kind, old, candidate); known {
					m[o][c] = map[bool]int8{false: 0, true: 1}[ok]
				}
			}
		}
		follows[kind] = m
	}
	srv := httptest.NewServer(schemaregistry.New())
	t.Cleanup(srv.Close)
	var subtests []subtest
	refusedOnlyTransitively := 0
	for _, kind := range []string{"BACKWARD", "FORWARD", "FULL"} {
		m := follows[kind]
		tried := map[[2]int8]bool{}
		for c := range schemas {
			for a := range schemas {
				for b := range schemas {
					if a == b || a == c || b == c || m[a][c] < 0 || m[b][c] < 0 {
						continue
					}
					combo := [2]int8{m[a][c], m[b][c]}
					if combo == [2]int8{0, 1} {
						refusedOnlyTransitively++
					} else if tried[combo] {
						continue
					}
					tried[combo] = true
					name := fmt.Sprintf("%s/%d", kind, len(subtests))
					subtests = append(subtests, subtest{name, chain(srv.URL, kind, strings.ReplaceAll(name, "/", "-"),
						schemas[a], schemas[b], schemas[c], combo[0] == 1, combo[1] == 1)})
				}
			}
		}
	}
	if refusedOnlyTransitively == 0 {
		t.Fatal("no chain where the latest version accepts the candidate and an older one does not")
	}
	runConcurrently(t, subtests)
	t.Logf("%d chains where only the transitive level refuses the candidate", refusedOnlyTransitively)
}

// chain registers a and b under subject, then checks candidate c under kind
// (whose verdict against b, the latest, is latestOK, and against a is
// firstOK) and under kind_TRANSITIVE.
func chain(url, kind, subject, a, b, c string, firstOK, latestOK bool) func(*testing.T) {
	why := fmt.Sprintf("%s\nversion 1: %s\nversion 2: %s\ncandidate: %s", kind, a, b, c)
	return func(t *testing.T) {
		cl := client{t: t, url: url, subject: subject}
		cl.setLevel("NONE")
		cl.mustRegister(a)
		cl.mustRegister(b)
		if got := cl.versions(); got != "[1,2]" {
			t.Fatalf("history %s, want [1,2]", got)
		}
		for _, level := range []string{kind, kind + "_TRANSITIVE"} {
			cl.setLevel(level)
			levelOK := latestOK
			if level != kind {
				levelOK = firstOK && latestOK
			}
			cl.compatible("/versions/1", c, firstOK, level+": "+why)
			cl.compatible("/versions/latest", c, latestOK, level+": "+why)
			cl.compatible("/versions", c, levelOK, level+": "+why)
		}
		// Refused under the transitive level (which changes nothing), then
		// under the plain one as expected.
		if !(firstOK && latestOK) {
			cl.register(c, false, kind+"_TRANSITIVE: "+why)
			cl.setLevel(kind)
		}
		cl.register(c, latestOK, why)
	}
}

type subtest struct {
	name string
	f    func(*testing.T)
}

// runConcurrently runs the subtests eight at a time whatever -parallel says:
// each spends most of its time waiting on the registry over loopback.
func runConcurrently(t *testing.T, subtests []subtest) {
	work := make(chan subtest)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for st := range work {
				t.Run(st.name, st.f)
			}
		})
	}
	for _, st := range subtests {
		work <- st
	}
	close(work)
	wg.Wait()
}

// verdictFor is whether candidate may follow old under kind (BACKWARD:
// candidate reads old's data; FORWARD: old reads candidate's; FULL: both).
func verdictFor(vs verdicts, kind, old, candidate string) (compatible, known bool) {
	backward, okB := vs.canRead(candidate, old)
	forward, okF := vs.canRead(old, candidate)
	switch kind {
	case "BACKWARD":
		return backward, okB
	case "FORWARD":
		return forward, okF
	}
	if (okB && !backward) || (okF && !forward) {
		return false, true
	}
	return backward && forward, okB && okF
}

var (
	difference = regexp.MustCompile(`^\{errorType:'([A-Z_]+)', description:'.*', additionalInfo:'(.*)'\}$`)
	atPath     = regexp.MustCompile(`path '([^']*)'`)
)

// assertReasons checks the registry's verbose messages against the
// incompatibilities the Java test asserts: type, message and location, in
// order.
func assertReasons(t *testing.T, v avroVector, msgs []string) {
	t.Helper()
	var got []reason
	for _, m := range msgs {
		d := difference.FindStringSubmatch(m)
		if d == nil {
			continue
		}
		p := atPath.FindStringSubmatch(m)
		if p == nil {
			t.Errorf("no path in %q", m)
			continue
		}
		got = append(got, reason{Type: d[1], Message: d[2], Location: p[1]})
	}
	if len(v.Incompatibilities) == 0 {
		if len(got) == 0 && !strings.Contains(strings.Join(msgs, " "), "Unexpected exception") {
			t.Errorf("%s: no reason in %q", v.Source, msgs)
		}
		return
	}
	if len(got) < len(v.Incompatibilities) || (!v.Partial && len(got) != len(v.Incompatibilities)) {
		t.Fatalf("%s: reasons %+v, want %+v", v.Source, got, v.Incompatibilities)
	}
	for i, want := range v.Incompatibilities {
		g := got[i]
		if (want.Type != "" && g.Type != want.Type) || (want.Message != "" && g.Message != want.Message) || g.Location != want.Location {
			t.Errorf("%s: reason %d is %+v, want %+v", v.Source, i, g, want)
		}
	}
}

// client speaks the registry's REST API for one subject.
type client struct {
	t       *testing.T
	url     string
	subject string
}

func (c client) do(method, path, body string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, b.Bytes()
}

func (c client) setLevel(level string) {
	c.t.Helper()
	if st, body := c.do("PUT", "/config/"+c.subject, `{"compatibility":"`+level+`"}`); st != 200 {
		c.t.Fatalf("PUT /config/%s %s: %d %s", c.subject, level, st, body)
	}
}

func (c client) versions() string {
	c.t.Helper()
	_, body := c.do("GET", "/subjects/"+c.subject+"/versions", "")
	return strings.TrimSpace(string(body))
}

func (c client) mustRegister(schema string) {
	c.t.Helper()
	if st, body := c.do("POST", "/subjects/"+c.subject+"/versions", schemaBody(schema)); st != 200 {
		c.t.Fatalf("registering %s: %d %s", schema, st, body)
	}
}

// register registers schema and checks it is accepted (200) or refused
// (409, error_code 409) as expected.
func (c client) register(schema string, accepted bool, why string) {
	c.t.Helper()
	st, body := c.do("POST", "/subjects/"+c.subject+"/versions", schemaBody(schema))
	var e struct {
		ErrorCode int `json:"error_code"`
	}
	_ = json.Unmarshal(body, &e)
	switch {
	case accepted && st != 200:
		c.t.Errorf("%s\nregistering %s was refused: %d %s", why, schema, st, body)
	case !accepted && (st != 409 || e.ErrorCode != 409):
		c.t.Errorf("%s\nregistering %s: %d %s, want 409", why, schema, st, body)
	}
}

// compatible asks POST /compatibility/subjects/{subject}{path}?verbose=true
// about schema, checks the verdict, and returns the messages (never empty
// when incompatible).
func (c client) compatible(path, schema string, want bool, why string) []string {
	c.t.Helper()
	st, body := c.do("POST", "/compatibility/subjects/"+c.subject+path+"?verbose=true", schemaBody(schema))
	var res struct {
		IsCompatible *bool    `json:"is_compatible"`
		Messages     []string `json:"messages"`
	}
	if err := json.Unmarshal(body, &res); err != nil || st != 200 || res.IsCompatible == nil {
		c.t.Fatalf("%s\nPOST compatibility%s: %d %s", why, path, st, body)
	}
	if *res.IsCompatible != want {
		c.t.Errorf("%s\n%s against %s: is_compatible %v, want %v; messages %q", why, schema, path, *res.IsCompatible, want, res.Messages)
	}
	if !*res.IsCompatible && len(res.Messages) == 0 {
		c.t.Errorf("%s\nincompatible without a reason: %s", why, body)
	}
	return res.Messages
}
