package web_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/platform/web"
)

// TestShutdownLetsRequestsFinish: a request in flight when the context ends
// is answered, then Serve returns nil; one that outlives the timeout makes
// Serve report it.
func TestShutdownLetsRequestsFinish(t *testing.T) {
	for _, tc := range []struct {
		name    string
		work    time.Duration
		timeout time.Duration
		wantErr bool
	}{
		{"a request within the timeout finishes", 300 * time.Millisecond, 5 * time.Second, false},
		{"a request past the timeout is reported", 3 * time.Second, 200 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started := make(chan struct{})
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				select {
				case <-time.After(tc.work):
					_, _ = io.WriteString(w, "done")
				case <-r.Context().Done():
				}
			})}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			result := make(chan error, 1)
			go func() { result <- web.Serve(ctx, srv, ln, tc.timeout) }()
			body := make(chan string, 1)
			go func() {
				resp, err := http.Get("http://" + ln.Addr().String())
				if err != nil {
					body <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				body <- string(b)
			}()
			<-started
			cancel()
			err = <-result
			if (err != nil) != tc.wantErr {
				t.Fatalf("Serve: %v, want error %v", err, tc.wantErr)
			}
			if got := <-body; !tc.wantErr && got != "done" {
				t.Errorf("the request in flight got %q", got)
			}
		})
	}
}

func TestServeReportsAFailedListener(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ln.Close()
	if err := web.Serve(context.Background(), &http.Server{}, ln, time.Second); err == nil {
		t.Fatal("Serve on a closed listener returned nil")
	}
}
