package pgdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ConnectTimeout bounds a connection attempt, TCP and the start-up
// exchange, when the URL sets no connect_timeout (libpq's default is none):
// a server that accepts connections and never answers would otherwise hold
// the caller for as long as its context, for ever at start-up. A healthy
// connection takes milliseconds; five seconds ride out a slow TLS handshake
// or a busy authentication.
const ConnectTimeout = 5 * time.Second

// IdleInTransactionTimeout is every pooled session's
// idle_in_transaction_session_timeout, unless the URL sets one: a client
// that vanishes inside a transaction (killed, or cut off by the network)
// leaves its locks held until the server notices, which with TCP's
// defaults takes hours; past this the server ends the session and frees
// them. No transaction of ours is idle for more than a round trip's worth
// of Go work, so a minute never ends a live one.
const IdleInTransactionTimeout = time.Minute

// PingTimeout bounds the liveness ping pgxpool makes of a connection idle
// for over a second before handing it out: a connection the network lost
// (its server never answers on it) is then dropped for another in a
// second, rather than taking the whole of the caller's bound. A ping is
// one round trip of a few bytes.
const PingTimeout = time.Second

// bound sets what a connection's configuration leaves unbounded.
func bound(cfg *pgconn.Config) {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = ConnectTimeout
	}
}

// ParseConfig parses dsn as pgx.ParseConfig does, with ConnectTimeout when
// dsn sets no connect_timeout: for the connections made outside a pool (the
// relay's lock connection, migrations).
func ParseConfig(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	bound(&cfg.Config)
	return cfg, nil
}

// Server names the server cfg connects to, for errors and log lines:
// "postgres 127.0.0.1:5432/orders". It never holds a password.
func Server(cfg *pgconn.Config) string {
	return "postgres " + net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))) + "/" + cfg.Database
}

// Ping reports whether pool's server answers within ctx, for readiness
// checks: its error names the server, and says when it did not answer in
// time.
func Ping(ctx context.Context, pool *pgxpool.Pool) error {
	var within time.Duration
	if dl, ok := ctx.Deadline(); ok {
		within = time.Until(dl).Round(100 * time.Millisecond)
	}
	err := pool.Ping(ctx)
	if err == nil {
		return nil
	}
	server := Server(&pool.Config().ConnConfig.Config)
	if within > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: no answer within %s: %w", server, within, err)
	}
	return fmt.Errorf("%s: %w", server, err)
}

// Calls bounds the calls made for requests, and for the parts that run
// beside them (purges, notifications), on one pool: each waits for the
// server at most Timeout, getting a connection included, and a failure to
// reach or use it is told naming the server.
type Calls struct {
	Timeout time.Duration
	Server  string
}

// CallsTo is Calls on pool, each bounded by timeout (CallTimeout if not
// positive: DATABASE_TIMEOUT's default).
func CallsTo(pool *pgxpool.Pool, timeout time.Duration) Calls {
	if timeout <= 0 {
		timeout = CallTimeout
	}
	return Calls{Timeout: timeout, Server: Server(&pool.Config().ConnConfig.Config)}
}

// Bound returns ctx bounded by Timeout.
func (c Calls) Bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.Timeout)
}

// Explain returns err, which Unavailable judged a failure to reach or use
// the server, naming the server and, if a deadline ran out, the bound:
// "postgres 127.0.0.1:5432/orders: no answer within 5s: …".
func (c Calls) Explain(err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%s: no answer within %s: %w", c.Server, c.Timeout, err)
	}
	return fmt.Errorf("%s: %w", c.Server, err)
}
