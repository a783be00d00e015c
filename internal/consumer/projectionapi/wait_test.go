package projectionapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/consumer/projectionapi"
	"github.com/ordersonkafka/orders/internal/consumer/projectionstore"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/migrations"
)

// TestGetWaitsForAVersion: GET /orders/{id}?min_version=N&wait=D answers as
// soon as the projection reaches N — woken by Versions.Applied, or by its
// own re-read when nobody tells it — and with the current state at the
// deadline.
func TestGetWaitsForAVersion(t *testing.T) {
	t.Parallel()
	db := pgtest.MustDB(t, migrations.Projection())
	store := projectionstore.New(db.Pool)
	versions := projectionapi.NewVersions()
	srv := httptest.NewServer(projectionapi.New(projectionapi.Config{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Versions: versions}, store))
	t.Cleanup(srv.Close)
	s := server{Server: srv, db: db, store: store}

	paid := placedAndPaid(t, s) // version 2
	id := paid.Order.ID
	path := "/orders/" + id.String()
	refunded, err := paid.Order.Apply(order.Change{Action: order.ActionRefund}, t0.Add(2*time.Minute), order.Meta{})
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
	t.Run("a waiting request gets the version once it is applied", func(t *testing.T) {
		got := make(chan response, 1)
		go func() { got <- s.do(t, http.MethodGet, path+"?min_version=3&wait=20s", nil) }()
		time.Sleep(150 * time.Millisecond) // let it read version 2 and wait
		select {
		case r := <-got:
			t.Fatalf("answered before version 3 existed: %d %s", r.status, r.header.Get("ETag"))
		default:
		}
		if _, err := store.Apply(context.Background(), []order.Event{refunded}); err != nil {
			t.Fatal(err)
		}
		versions.Applied(id, 3)
		select {
		case r := <-got:
			if r.status != 200 || r.header.Get("ETag") != `"3"` {
				t.Fatalf("status %d ETag %s", r.status, r.header.Get("ETag"))
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the waiting request was not answered after version 3 was applied")
		}
	})
	t.Run("bad parameters are 400", func(t *testing.T) {
		for _, q := range []string{"?min_version=0", "?min_version=x", "?min_version=2&wait=1h", "?min_version=2&wait=-1s", "?wait=1s"} {
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
	s := newServer(t)
	paid := placedAndPaid(t, s)
	refunded, _ := paid.Order.Apply(order.Change{Action: order.ActionRefund}, t0.Add(2*time.Minute), order.Meta{})
	got := make(chan response, 1)
	go func() {
		got <- s.do(t, http.MethodGet, "/orders/"+paid.Order.ID.String()+"?min_version=3&wait=20s", nil)
	}()
	time.Sleep(150 * time.Millisecond)
	if _, err := s.store.Apply(context.Background(), []order.Event{refunded}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.status != 200 || r.header.Get("ETag") != `"3"` {
			t.Fatalf("status %d ETag %s", r.status, r.header.Get("ETag"))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not answered within 5s of version 3 being applied")
	}
}
