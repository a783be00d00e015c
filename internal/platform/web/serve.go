package web

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Serve serves srv on ln until ctx ends, then shuts it down: the listener
// closes and requests in flight get up to timeout to finish. It returns nil
// after such a shutdown; an error if serving failed, or if requests were
// still running when timeout passed (they are then cut off).
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served: // Serve returns only on failure until Shutdown is called
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-served // http.ErrServerClosed, once Shutdown began
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("http shutdown after %s: %w", timeout, err)
	}
	return nil
}
