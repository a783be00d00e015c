package pgdb

import (
	"errors"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// DatabaseName returns the database dsn names, or "" when it names none.
// dsn is a postgres:// or postgresql:// URL (the database is its path or a
// dbname query parameter) or a keyword/value string (dbname=…); a database
// given by a service the dsn names (service=…) counts as named.
//
// A dsn that names no database is dangerous: libpq and pgx connect to
// PGDATABASE if the process has it, else to the database named like the user,
// usually "postgres", the server's maintenance database. So PGDATABASE does
// not count as naming one: DatabaseName looks at the dsn itself.
//
// The error, for a dsn that does not parse, never contains the dsn: an
// unparsable string cannot be reliably stripped of its password.
func DatabaseName(dsn string) (string, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", parseProblem(err)
	}
	var own string
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		own = urlDatabase(dsn)
	} else {
		// Keyword/value: the last dbname wins, so one put first is
		// overridden by any the dsn has, and survives only if it has none.
		const sentinel = "\x01pgdb: no database\x01"
		probe, err := pgconn.ParseConfig("dbname='" + sentinel + "' " + dsn)
		if err != nil {
			return "", parseProblem(err)
		}
		if probe.Database != sentinel {
			own = probe.Database
		}
	}
	if own != "" {
		return own, nil
	}
	// Neither the dsn nor PGDATABASE, yet a database: a service file's.
	if cfg.Database != "" && cfg.Database != os.Getenv("PGDATABASE") {
		return cfg.Database, nil
	}
	return "", nil
}

// urlDatabase returns the database a connection URL that pgconn parsed
// names: its path, overridden by a dbname (or database) query parameter, as
// pgconn's libpq-compatible parser reads them.
func urlDatabase(dsn string) string {
	p, ok := strings.CutPrefix(dsn, "postgresql://")
	if !ok {
		p, _ = strings.CutPrefix(dsn, "postgres://")
	}
	// User info ends at an '@' met before any '/'.
	if i := strings.IndexAny(p, "@/"); i >= 0 && p[i] == '@' {
		p = p[i+1:]
	}
	// Hosts and ports: up to the first '/' or '?' outside [IPv6] brackets.
	for start := true; p != "" && p[0] != '/' && p[0] != '?'; {
		if i := strings.IndexByte(p, ']'); start && p[0] == '[' && i >= 0 {
			p, start = p[i+1:], false
			continue
		}
		p, start = p[1:], p[0] == ','
	}
	var name string
	if rest, ok := strings.CutPrefix(p, "/"); ok {
		path, query, _ := strings.Cut(rest, "?")
		name = uriDecode(path)
		p = "?" + query
	}
	if query, ok := strings.CutPrefix(p, "?"); ok {
		for pair := range strings.SplitSeq(query, "&") {
			k, v, _ := strings.Cut(pair, "=")
			if k := uriDecode(k); k == "dbname" || k == "database" {
				name = uriDecode(v)
			}
		}
	}
	return name
}

// uriDecode percent-decodes a URI component that pgconn has accepted (so it
// is well formed), trimming spaces as libpq does; '+' stays a '+'.
func uriDecode(s string) string {
	s = strings.Trim(s, " ")
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}

// parseProblem is what pgconn says is wrong with a connection string, without
// the string: pgconn's own message quotes it with the password masked only
// on a best-effort basis, and its underlying errors may quote pieces of it.
// When the reason cannot be told apart from the string, it says only that
// the string does not parse.
func parseProblem(err error) error {
	const generic = "not a postgres:// URL or keyword/value connection string"
	var pce *pgconn.ParseConfigError
	if !errors.As(err, &pce) {
		return errors.New(generic)
	}
	bare := *pce
	bare.ConnString = ""
	msg, ok := strings.CutPrefix(bare.Error(), "cannot parse ``: ")
	if inner := bare.Unwrap(); ok && inner != nil {
		msg, ok = strings.CutSuffix(msg, " ("+inner.Error()+")")
	}
	if !ok || msg == "" {
		return errors.New(generic)
	}
	return errors.New(generic + ": " + msg)
}
