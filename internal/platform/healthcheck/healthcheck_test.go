package healthcheck_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/platform/healthcheck"
)

// TestReady: nil only when the service on the HTTP_ADDR port answers 200 on
// /readyz; its status line and body are printed either way.
func TestReady(t *testing.T) {
	for _, tc := range []struct {
		status int
		ok     bool
	}{{http.StatusOK, true}, {http.StatusServiceUnavailable, false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(`{"status":"x"}`))
		}))
		u, _ := url.Parse(srv.URL)
		var out bytes.Buffer
		err := healthcheck.Ready(context.Background(), ":"+u.Port(), &out)
		srv.Close()
		if (err == nil) != tc.ok {
			t.Errorf("readyz %d: error %v", tc.status, err)
		}
		if !strings.Contains(out.String(), http.StatusText(tc.status)) || !strings.Contains(out.String(), `{"status":"x"}`) {
			t.Errorf("readyz %d: output %q lacks the status or the body", tc.status, out.String())
		}
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	u, _ := url.Parse(srv.URL)
	srv.Close()
	if err := healthcheck.Ready(context.Background(), "127.0.0.1:"+u.Port(), &bytes.Buffer{}); err == nil {
		t.Error("ready with nothing listening")
	}
	if err := healthcheck.Ready(context.Background(), "no-port", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "HTTP_ADDR") {
		t.Errorf("bad HTTP_ADDR: %v", err)
	}
}
