package projectionapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/consumer/projectionapi"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
)

// The read API under hostile input and a failing database
// (docs/design.md, invariants 8 and 9).

// A query or path that is not text is 400 and never reaches PostgreSQL: the
// answers below come with the pool closed.
func TestReadParametersThatAreNotTextAreBadRequests(t *testing.T) {
	t.Parallel()
	s := newServer(t, projectionapi.Config{})
	path := "/orders/" + placedAndPaid(t, s).Order.ID.String()
	s.db.Pool.Close()
	for _, p := range []string{
		path + "?min_version=%ff",
		path + "?min_version=2&wait=%00",
		path + "?min_version=%c3&wait=1s",
		path + "?x=%e2%82",
		path + "?%ff",
		path + "?min_version=%zz",
		path + "%00",
		"/orders/%ff%ff",
	} {
		t.Run(p, func(t *testing.T) {
			wantProblem(t, s.do(t, http.MethodGet, p, nil), 400, "/problems/malformed-request", "not")
		})
	}
}

func wantRetryAfter(t *testing.T, r response) {
	t.Helper()
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want a number of seconds", r.header.Get("Retry-After"))
	}
}

// The projection database refusing connections (a restart, a failover) is
// 503 with Retry-After and its own type, waiting reads included; /readyz
// keeps naming the database; reads work once it is back.
func TestReadWhileTheDatabaseIsUnavailableIs503(t *testing.T) {
	t.Parallel()
	s := newServer(t, projectionapi.Config{})
	path := "/orders/" + placedAndPaid(t, s).Order.ID.String()

	restart := s.db.Stop(t)

	for i := range 6 { // more reads than the pool has (dead) connections
		q := ""
		if i%2 == 1 {
			q = "?min_version=3&wait=5s"
		}
		r := s.do(t, http.MethodGet, path+q, nil)
		wantProblem(t, r, 503, "/problems/unavailable", "retry")
		wantRetryAfter(t, r)
	}
	r := s.do(t, http.MethodGet, "/customers/c-7/summary", nil)
	wantProblem(t, r, 503, "/problems/unavailable", "retry")
	wantRetryAfter(t, r)
	if r := s.do(t, http.MethodGet, "/readyz", nil); r.status != 503 || !strings.Contains(string(r.body), "database") {
		t.Errorf("readyz during the outage: %d %s", r.status, r.body)
	}

	restart()
	stacktest.WaitFor(t, "the projection to be readable again", 15*time.Second, func() bool { return s.do(t, http.MethodGet, path, nil).status == 200 })
	if r := s.do(t, http.MethodGet, path+"?min_version=2&wait=1s", nil); r.status != 200 || r.header.Get("ETag") != `"2"` {
		t.Errorf("after the outage: %d %s", r.status, r.body)
	}
	if r := s.do(t, http.MethodGet, "/readyz", nil); r.status != 200 {
		t.Errorf("readyz after the outage: %d %s", r.status, r.body)
	}
	if r := s.do(t, http.MethodGet, "/customers/c-7/summary", nil); r.status != 200 {
		t.Errorf("a customer's summary after the outage: %d %s", r.status, r.body)
	}
}

// At most MaxWaiting reads wait for a version at once; one more
// is 503 with Retry-After at once, reads that need not wait are served, and
// the slots come back when the waiting reads are answered.
func TestWaitingReadsAreCapped(t *testing.T) {
	t.Parallel()
	versions := projectionapi.NewVersions()
	s := newServer(t, projectionapi.Config{Versions: versions, MaxWaiting: 2})
	paid := placedAndPaid(t, s)
	id := paid.Order.ID
	path := "/orders/" + id.String()

	var wg sync.WaitGroup
	answers := make(chan response, 2)
	for range 2 {
		wg.Go(func() {
			for { // as a client honouring the 503 would, if a probe below held a slot
				r, err := s.try(http.MethodGet, path+"?min_version=3&wait=20s", nil)
				if err != nil {
					t.Error(err)
					return
				}
				if r.status != 503 {
					answers <- r
					return
				}
			}
		})
	}
	// Once both hold their slot, a third waiting read is refused at once.
	var refused response
	stacktest.WaitFor(t, "a waiting read to be refused", 15*time.Second, func() bool {
		refused = s.do(t, http.MethodGet, path+"?min_version=3&wait=1ms", nil)
		return refused.status != 200
	})
	wantProblem(t, refused, 503, "/problems/too-many-waiting-reads", "waiting")
	wantRetryAfter(t, refused)
	// Reads that do not wait, or whose version is there, are still served.
	for _, q := range []string{"", "?min_version=2&wait=10s"} {
		if r := s.do(t, http.MethodGet, path+q, nil); r.status != 200 || r.header.Get("ETag") != `"2"` {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
	// Version 3 answers the two waiting reads, and frees their slots.
	refunded, err := order.Standard.Apply(&paid.Order, order.Change{Action: order.ActionRefund}, t0.Add(2*time.Minute), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.Apply(context.Background(), []order.Event{refunded}); err != nil {
		t.Fatal(err)
	}
	versions.Applied(id, 3)
	wg.Wait()
	close(answers)
	for r := range answers {
		if r.status != 200 || r.header.Get("ETag") != `"3"` {
			t.Errorf("a waiting read: %d %s", r.status, r.body)
		}
	}
	for range 3 { // one after the other: each takes a slot and gives it back
		if r := s.do(t, http.MethodGet, path+"?min_version=4&wait=10ms", nil); r.status != 200 || r.header.Get("ETag") != `"3"` {
			t.Errorf("a waiting read after the others: %d %s", r.status, r.body)
		}
	}
}

// HEAD is GET without a body, a 405 says Allow, made-up
// methods are one metric series, and a long path is echoed once, cut.
func TestReadAPIMethodsAndEchoes(t *testing.T) {
	t.Parallel()
	reg := telemetry.NewRegistry()
	s := newServer(t, projectionapi.Config{
		Middleware: []func(http.Handler) http.Handler{telemetry.NewHTTPMetrics(reg).Middleware},
		Metrics:    telemetry.MetricsHandler(reg),
	})
	path := "/orders/" + placedAndPaid(t, s).Order.ID.String()

	t.Run("HEAD is GET without the body", func(t *testing.T) {
		for _, p := range []string{path, path + "?min_version=1&wait=1s", "/healthz", "/readyz", "/metrics"} {
			get, head := s.do(t, http.MethodGet, p, nil), s.do(t, http.MethodHead, p, nil)
			if head.status != 200 || len(head.body) != 0 || head.header.Get("ETag") != get.header.Get("ETag") ||
				head.header.Get("Content-Type") != get.header.Get("Content-Type") {
				t.Errorf("HEAD %s: %d %v (%d bytes); GET %d %v", p, head.status, head.header, len(head.body), get.status, get.header)
			}
		}
		if r := s.do(t, http.MethodHead, "/orders/"+uuid.NewString(), nil); r.status != 404 {
			t.Errorf("HEAD of an unknown order: %d", r.status)
		}
	})
	t.Run("405 says Allow", func(t *testing.T) {
		for _, m := range []string{http.MethodPost, http.MethodDelete, "FOO"} {
			r := s.do(t, m, path, nil)
			wantProblem(t, r, 405, "/problems/method-not-allowed", "not allowed")
			if r.header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s: Allow %q", m, r.header.Get("Allow"))
			}
		}
	})
	t.Run("made-up methods are one series", func(t *testing.T) {
		for range 50 {
			var b [6]byte
			_, _ = rand.Read(b[:])
			s.do(t, "M"+strings.ToUpper(hex.EncodeToString(b[:])), path, nil)
		}
		metrics := string(s.do(t, http.MethodGet, "/metrics", nil).body)
		methods := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^http_request_duration_seconds_count\{method="([^"]*)"`).FindAllStringSubmatch(metrics, -1) {
			methods[m[1]] = true
		}
		for m := range methods {
			if telemetry.Method(m) != m {
				t.Errorf("method label %q", m)
			}
		}
		if !methods["_OTHER"] {
			t.Errorf("no _OTHER series:\n%s", metrics)
		}
	})
	t.Run("a long path is echoed once, cut", func(t *testing.T) {
		long := strings.Repeat("a", 100<<10)
		for _, p := range []string{"/orders/" + long, "/" + long, path + "?min_version=" + long, path + "?min_version=2&wait=" + long} {
			r := s.do(t, http.MethodGet, p, nil)
			if r.status != 400 && r.status != 404 || len(r.body) > 2048 {
				t.Errorf("%.40s…: %d, %d bytes", p, r.status, len(r.body))
			}
			run := strings.Repeat("a", 40)
			if n := strings.Count(string(r.body), `"`+run) + strings.Count(string(r.body), "/"+run); n > 1 {
				t.Errorf("%.40s…: the input is echoed %d times: %s", p, n, r.body)
			}
		}
	})
}
