package pgdb

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// CallTimeout bounds how long one store call made for a request waits for
// the database, getting a connection included. A healthy call takes
// milliseconds; a pool that cannot connect (a server restarting, a
// failover, a full connection table) would otherwise hold the request until
// the client or the HTTP server gives up, and every request behind it too.
// Past it the call fails and Unavailable reports it, so the API answers 503
// with Retry-After in seconds, not minutes.
const CallTimeout = 5 * time.Second

// Unavailable reports whether err means that the database could not be
// reached or used, so the same request may succeed later, as opposed to a
// refusal of the data (SQLSTATE class 22, 23), a bug, or the caller giving
// up. (As with any lost reply, a connection cut while a commit was on its
// way leaves that commit unknown; Idempotency-Key makes the retry safe.)
//
// ctx is the caller's own context, before any bound the adapter added
// (CallTimeout): a deadline that passed while ctx is still alive is the
// database not answering in time (a pool that cannot get a connection, a
// server that does not reply); one that passed because ctx itself ended is
// the caller going away, which is not the database's fault.
//
// Unavailable: a failure to connect (pgconn.ConnectError, which also carries
// a server refusing connections to the database or too many clients),
// network errors, a connection cut mid-conversation (unexpected EOF,
// reset, broken pipe, pgconn's "conn closed"), SQLSTATE class 08
// (connection exception), 57P01 admin_shutdown, 57P02 crash_shutdown,
// 57P03 cannot_connect_now and 53300 too_many_connections.
func Unavailable(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if ctx.Err() != nil {
		// The caller went away or ran out of its own time: whatever the
		// driver says, that is why the call failed.
		return false
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		// Whatever the server said while refusing us (55000 database not
		// accepting connections, 53300, 57P03), no statement ran.
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// A server error that is not about the connection is about the
		// statement or the data: retrying it verbatim fails the same way.
		return unavailableCode(pgErr.Code)
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), // ctx is alive: a bound of ours, or the driver's, ran out
		errors.As(err, &netErr),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, pgconn.ErrConnClosed):
		return true
	}
	return false
}

func unavailableCode(code string) bool {
	if len(code) == 5 && code[:2] == "08" { // connection_exception and its subclasses
		return true
	}
	switch code {
	case "57P01", // admin_shutdown: the backend was terminated or the server is stopping
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now: the server is starting or in recovery
		"53300": // too_many_connections
		return true
	}
	return false
}
