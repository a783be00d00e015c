package projectionapi_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/consumer/projectionapi"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/order"
)

// answerWithin is how long a test gives a request to answer once what it
// waits for has happened: far more than it takes on a busy machine, far
// less than its wait parameter, so only what the test is about answers it
// in time.
const answerWithin = 10 * time.Second

// waiting sends GET path (a read that waits) on a goroutine of its own and
// returns where its answer will come, once the API has read the order
// twice: once before it began to wait, once after registering its wait
// with Versions ("register before reading again"). From then on only an
// Applied, its re-read or its deadline can answer it.
func waiting(t *testing.T, s server, path string) <-chan response {
	t.Helper()
	before := s.reads.Load()
	got := make(chan response, 1)
	go func() {
		r, err := s.try(http.MethodGet, path, nil)
		if err != nil {
			t.Errorf("GET %s: %v", path, err)
			r = response{}
		}
		got <- r
	}()
	stacktest.WaitFor(t, "the read to register its wait and read again", answerWithin, func() bool {
		return s.reads.Load() >= before+2
	})
	select {
	case r := <-got:
		t.Fatalf("GET %s answered at once, before anything it waits for happened: %d %s", path, r.status, r.body)
	default:
	}
	return got
}

// answer returns the answer got brings, failing t with why if none comes
// within answerWithin.
func answer(t *testing.T, got <-chan response, why string) response {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-time.After(answerWithin):
		t.Fatalf("no answer within %s: %s", answerWithin, why)
		return response{}
	}
}

// TestGetWaitsForAVersion: GET /orders/{id}?min_version=N&wait=D answers as
// soon as the projection reaches N — woken by Versions.Applied, or by its
// own re-read when nobody tells it — and with the current state at the
// deadline.
func TestGetWaitsForAVersion(t *testing.T) {
	t.Parallel()
	versions := projectionapi.NewVersions()
	s := newServer(t, projectionapi.Config{Versions: versions})

	paid := placedAndPaid(t, s) // version 2
	id := paid.Order.ID
	path := "/orders/" + id.String()
	refunded, err := order.Standard.Apply(&paid.Order, order.Change{Action: order.ActionRefund}, t0.Add(2*time.Minute), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a version already there answers at once", func(t *testing.T) {
		r := s.do(t, http.MethodGet, path+"?min_version=2&wait=10s", nil)
		if r.status != 200 || r.header.Get("ETag") != `"2"` {
			t.Fatalf("status %d ETag %s", r.status, r.header.Get("ETag"))
		}
	})
	t.Run("past the deadline it answers with what it has", func(t *testing.T) {
		start := time.Now()
		r := s.do(t, http.MethodGet, path+"?min_version=3&wait=300ms", nil)
		if r.status != 200 || r.header.Get("ETag") != `"2"` || time.Since(start) < 300*time.Millisecond {
			t.Fatalf("status %d ETag %s after %s", r.status, r.header.Get("ETag"), time.Since(start))
		}
	})
	// Applied is what ends a wait early. The re-read cannot stand in for it
	// here: the projection stays at version 2, so every re-read finds the
	// order short of version 3 and waits on, to the 30 s deadline. Only the
	// notification answers within answerWithin — with what the projection
	// holds, as a woken read always does.
	t.Run("Applied wakes a waiting read at once", func(t *testing.T) {
		got := waiting(t, s, fmt.Sprintf("%s?min_version=3&wait=%s", path, projectionapi.MaxWait))
		versions.Applied(id, 3)
		r := answer(t, got, "Applied(3) did not wake a read waiting for version 3")
		if r.status != 200 || r.header.Get("ETag") != `"2"` {
			t.Fatalf("woken read: status %d ETag %s, want what the projection holds: 200, version 2", r.status, r.header.Get("ETag"))
		}
	})
	t.Run("an Applied below the wanted version does not wake it", func(t *testing.T) {
		start := time.Now() // before the request: its 1 s deadline ends later
		got := waiting(t, s, path+"?min_version=3&wait=1s")
		versions.Applied(id, 2)
		r := <-got
		if waited := time.Since(start); r.status != 200 || r.header.Get("ETag") != `"2"` || waited < time.Second {
			t.Fatalf("answered %d ETag %s after %s, before its deadline: woken by an Applied of an older version", r.status, r.header.Get("ETag"), waited)
		}
	})
	t.Run("a waiting request gets the version once it is applied", func(t *testing.T) {
		got := waiting(t, s, fmt.Sprintf("%s?min_version=3&wait=%s", path, projectionapi.MaxWait))
		if _, err := s.store.Apply(context.Background(), []order.Event{refunded}); err != nil {
			t.Fatal(err)
		}
		versions.Applied(id, 3)
		if r := answer(t, got, "version 3 was applied"); r.status != 200 || r.header.Get("ETag") != `"3"` {
			t.Fatalf("status %d ETag %s", r.status, r.header.Get("ETag"))
		}
	})
	t.Run("bad parameters are 400", func(t *testing.T) {
		for _, q := range []string{"?min_version=0", "?min_version=x", "?min_version=%2B2", "?min_version=02", "?min_version=2&wait=1h", "?min_version=2&wait=-1s", "?wait=1s"} {
			if r := s.do(t, http.MethodGet, path+q, nil); r.status != 400 {
				t.Errorf("%s: status %d, want 400: %s", q, r.status, r.body)
			}
		}
	})
}

// TestGetWaitRereadsWithoutNotification: with no Versions wired (another
// instance applies the order's partition), a waiting request still sees the
// new version by re-reading.
func TestGetWaitRereadsWithoutNotification(t *testing.T) {
	t.Parallel()
	s := newServer(t, projectionapi.Config{})
	paid := placedAndPaid(t, s)
	refunded, err := order.Standard.Apply(&paid.Order, order.Change{Action: order.ActionRefund}, t0.Add(2*time.Minute), order.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	got := waiting(t, s, "/orders/"+paid.Order.ID.String()+"?min_version=3&wait=20s")
	if _, err := s.store.Apply(context.Background(), []order.Event{refunded}); err != nil {
		t.Fatal(err)
	}
	if r := answer(t, got, "version 3 was applied, and the read re-reads"); r.status != 200 || r.header.Get("ETag") != `"3"` {
		t.Fatalf("status %d ETag %s", r.status, r.header.Get("ETag"))
	}
}
