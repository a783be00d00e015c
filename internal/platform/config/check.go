package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ordersonkafka/orders/internal/platform/pgdb"
)

// The checks of the services' Validate methods: each returns nil or an error
// starting with the variable's name and the value given (never a password),
// so a misconfigured service says at start-up what to fix.

// Positive refuses a zero or negative duration. None of these settings has a
// meaning for them: the components would read 0 as their own default, and a
// negative wait makes a loop spin against PostgreSQL or Kafka.
func Positive(name string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s=%s must be positive", name, d)
	}
	return nil
}

// NotNegative refuses a negative duration; 0 is allowed (and means
// something the variable's documentation says).
func NotNegative(name string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%s=%s must not be negative", name, d)
	}
	return nil
}

// AtLeast refuses v below lowest; note explains lowest if it needs to.
func AtLeast(name string, v, lowest int, note string) error {
	if v < lowest {
		return fmt.Errorf("%s=%d must be at least %d%s", name, v, lowest, note)
	}
	return nil
}

// Backoff wants 0 < minimum <= maximum.
func Backoff(minName string, minimum time.Duration, maxName string, maximum time.Duration) error {
	errs := []error{Positive(minName, minimum), Positive(maxName, maximum)}
	if minimum > 0 && maximum > 0 && maximum < minimum {
		errs = append(errs, fmt.Errorf("%s=%s must be at least %s=%s", maxName, maximum, minName, minimum))
	}
	return errors.Join(errs...)
}

// DatabaseURL wants a connection string that parses and names its
// database: without one PostgreSQL connects to the database named like the
// user, usually the maintenance database "postgres", and the service would
// migrate and use that. pgdb.Redact shows the value without its password; a
// value that does not parse is not shown at all, as its password cannot be
// told apart reliably.
func DatabaseURL(name, dsn string) error {
	if dsn == "" {
		return fmt.Errorf("%s is empty: give a PostgreSQL URL naming the database, e.g. postgres://user@host:5432/orders", name)
	}
	db, err := pgdb.DatabaseName(dsn)
	if err != nil {
		return fmt.Errorf("%s (value not shown: it may hold a password) is %w", name, err)
	}
	if db == "" {
		return fmt.Errorf("%s=%q names no database: add one (postgres://user@host:5432/orders or dbname=orders); without one PostgreSQL picks the database named like the user, often the maintenance database postgres", name, pgdb.Redact(dsn))
	}
	return nil
}

// ListenAddr wants a listen address, host:port with a numeric port; port 0
// asks the system for a free one.
func ListenAddr(name, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s=%q is not host:port (e.g. \":8080\"): %s", name, addr, addrReason(err))
	}
	if host != "" && !validHost(host) {
		return fmt.Errorf("%s=%q: %q is not a host name or IP address", name, addr, host)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%s=%q: port %q is not a number from 0 to 65535", name, addr, port)
	}
	return nil
}

// Brokers wants a non-empty list of host:port with ports 1 to 65535.
// Entries are passed to Kafka as written, so spaces around one would make it
// an unknown host: they are refused, not trimmed.
func Brokers(name string, brokers []string) error {
	var problems []string
	for _, b := range brokers {
		host, port, err := net.SplitHostPort(b)
		switch {
		case strings.TrimSpace(b) == "":
			problems = append(problems, fmt.Sprintf("empty entry %q", b))
		case strings.TrimSpace(b) != b:
			problems = append(problems, fmt.Sprintf("entry %q has spaces around it", b))
		case err != nil:
			problems = append(problems, fmt.Sprintf("entry %q is not host:port: %s", b, addrReason(err)))
		case host == "":
			problems = append(problems, fmt.Sprintf("entry %q has no host", b))
		case !validHost(host):
			problems = append(problems, fmt.Sprintf("entry %q: %q is not a host name or IP address", b, host))
		case !validPort(port):
			problems = append(problems, fmt.Sprintf("entry %q: port %q is not a number from 1 to 65535", b, port))
		}
	}
	if len(brokers) == 0 {
		problems = append(problems, "no broker")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s=%q must be host:port[,host:port...]: %s", name, strings.Join(brokers, ","), strings.Join(problems, "; "))
	}
	return nil
}

// HTTPURL wants an absolute http or https URL with a host and no
// query or fragment: the client appends its paths (/subjects/…) to it. User
// info (basic auth) is allowed and shown masked.
func HTTPURL(name, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(raw, "@") { // it may hold user info
			return fmt.Errorf("%s (value not shown: it may hold a password) is not a URL", name)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s=%q is not a URL: %v", name, raw, err)
	}
	shown := u.Redacted()
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%s=%q must be an http:// or https:// URL", name, shown)
	case u.Host == "" || !validHost(u.Hostname()):
		return fmt.Errorf("%s=%q has no valid host", name, shown)
	case u.Port() != "" && !validPort(u.Port()):
		return fmt.Errorf("%s=%q: port %q is not a number from 1 to 65535", name, shown, u.Port())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("%s=%q must have no query or fragment: the client appends its paths to it", name, shown)
	}
	return nil
}

// KafkaName applies Kafka's rule for topic names: 1 to 249 characters
// of a-z, A-Z, 0-9, '.', '_' and '-', and not "." or "..".
func KafkaName(name, kind, v string) error {
	ok := len(v) >= 1 && len(v) <= 249 && v != "." && v != ".."
	for _, r := range v {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}
	if !ok {
		return fmt.Errorf("%s=%q is not a valid Kafka %s name: 1 to 249 characters of a-z, A-Z, 0-9, '.', '_' and '-', not \".\" or \"..\"", name, v, kind)
	}
	return nil
}

// validHost accepts an IP address or a DNS name (letters, digits, '-' and
// '_', in dot-separated labels of at most 63).
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// validPort accepts 1 to 65535, in decimal.
func validPort(p string) bool {
	n, err := strconv.ParseUint(p, 10, 16)
	return err == nil && n >= 1
}

// addrReason is what net.SplitHostPort found wrong, without the address
// (which the message has already quoted).
func addrReason(err error) string {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return ae.Err
	}
	return err.Error()
}

// AtMost refuses v above highest.
func AtMost(name string, v, highest int) error {
	if v > highest {
		return fmt.Errorf("%s=%d must be at most %d", name, v, highest)
	}
	return nil
}

// OneOf refuses v unless it is one of values.
func OneOf(name, v string, values ...string) error {
	if slices.Contains(values, v) {
		return nil
	}
	return fmt.Errorf("%s=%q must be one of %s", name, v, strings.Join(values, ", "))
}
