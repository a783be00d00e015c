// Package healthcheck is the client side of the services' /readyz: the
// `health` subcommand both binaries have, which the container image uses as
// its health check because the distroless image has no shell or curl.
package healthcheck

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Timeout bounds one check.
const Timeout = 3 * time.Second

// Ready asks the service listening on addr (its HTTP_ADDR, e.g. ":8080")
// whether it is ready: nil only if GET http://127.0.0.1:<port>/readyz
// answers 200 within Timeout. It prints the status line and body to out.
func Ready(ctx context.Context, addr string, out io.Writer) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR=%q: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort("127.0.0.1", port)+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	fmt.Fprintf(out, "%s %s\n%s", resp.Proto, resp.Status, body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s", resp.Status)
	}
	return nil
}
