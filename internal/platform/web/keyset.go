package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
)

// The refusals of KeySet.VerifySignature that say the token is bad; a
// *KeysUnavailableError says instead that it cannot be told yet.
var (
	// ErrMalformedToken: not a compact JWS signed with RS256 or ES256.
	ErrMalformedToken = errors.New("malformed")
	// ErrBadSignature: the key the token names (or, without a kid, every
	// key held) does not verify its signature.
	ErrBadSignature = errors.New("bad signature")
	// ErrUnknownKey: the JWKS, fetched again for the token, does not hold
	// the key it names.
	ErrUnknownKey = errors.New("unknown key")
)

// KeysUnavailableError is KeySet.VerifySignature's answer when the token
// names a key not held and the JWKS cannot be fetched for it now (a fetch
// failed or timed out, or the last one started less than RefreshInterval
// ago): the token may be good, so the client should retry it after
// RetryAfter rather than drop it.
type KeysUnavailableError struct {
	URL        string        // the JWKS, its user info redacted
	RetryAfter time.Duration // until a fetch is allowed again
	Err        error
}

func (e *KeysUnavailableError) Error() string {
	return fmt.Sprintf("signing keys from %s: %v", e.URL, e.Err)
}

func (e *KeysUnavailableError) Unwrap() error { return e.Err }

// signingAlgorithms are the algorithms tokens may be signed with.
var signingAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// maxJWKS bounds a JWKS response: a real one is a few kilobytes.
const maxJWKS = 1 << 20

// KeySetConfig configures a KeySet; a zero duration takes its default.
type KeySetConfig struct {
	// URL is the issuer's JWKS (AUTH_JWKS_URL).
	URL string
	// FetchTimeout bounds each fetch, from connecting to reading the body:
	// an endpoint that accepts the connection and never answers is down
	// once it passes. Default 5 s.
	FetchTimeout time.Duration
	// RefreshInterval is the least time between the starts of two fetches,
	// whatever asks for them: tokens naming keys not held, however many,
	// make the set fetch at most once per interval
	// (AUTH_JWKS_REFRESH_INTERVAL). Default 10 s.
	RefreshInterval time.Duration
	// RefreshPeriod is how often Run fetches the keys again after a
	// success; after a failure it tries every RefreshInterval. Default 10
	// min, and never less than RefreshInterval.
	RefreshPeriod time.Duration
	// Logger says when fetching starts failing and when it recovers; nil
	// discards.
	Logger *slog.Logger
}

// Validate refuses a URL that is not http or https and negative durations.
func (c KeySetConfig) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("JWKS URL %q is not an http:// or https:// URL", c.URL)
	}
	if c.FetchTimeout < 0 || c.RefreshInterval < 0 || c.RefreshPeriod < 0 {
		return errors.New("JWKS fetch timeout and refresh intervals must not be negative")
	}
	return nil
}

// KeySet is an issuer's JWKS, fetched over HTTP and held in memory: an
// oidc.KeySet that survives an identity provider that hangs, fails or is
// flooded with forged tokens. One fetch runs at a time, each ends within
// FetchTimeout, none starts within RefreshInterval of the last, and none is
// bound to a request: a request that gives up leaves the fetch to the
// others. The keys held keep verifying while the JWKS cannot be fetched.
// Run refreshes them in the background; without Run they are fetched when
// a token needs one not held.
type KeySet struct {
	cfg    KeySetConfig
	peer   string // cfg.URL, its user info redacted, for logs and errors
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	keys     []jose.JSONWebKey // the last set fetched; nil until one is
	fetched  time.Time         // when keys were
	started  time.Time         // when the last fetch started; zero before the first
	inflight *fetch            // the fetch under way, or nil
	err      error             // the last fetch's failure; nil after a success
}

var _ oidc.KeySet = (*KeySet)(nil)

// fetch is one fetch of the JWKS, which any number of callers wait for.
type fetch struct {
	done chan struct{} // closed when it ends
	err  error         // its failure, set before done is closed
}

// NewKeySet returns the KeySet of cfg.URL; it fetches nothing yet.
func NewKeySet(cfg KeySetConfig) (*KeySet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = 5 * time.Second
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = 10 * time.Second
	}
	if cfg.RefreshPeriod == 0 {
		cfg.RefreshPeriod = 10 * time.Minute
	}
	cfg.RefreshPeriod = max(cfg.RefreshPeriod, cfg.RefreshInterval)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u, _ := url.Parse(cfg.URL)
	return &KeySet{cfg: cfg, peer: u.Redacted(), client: &http.Client{Timeout: cfg.FetchTimeout}, log: log}, nil
}

// VerifySignature returns the payload of jwt, a compact JWS signed with
// RS256 or ES256 by a key of the set: the key its kid names, or any key
// held when it has none. A signature that a key held does not verify is
// ErrBadSignature at once, with no fetch. A key not held makes the set
// fetch the JWKS, or wait for the fetch under way (as long as ctx lets it):
// if the key is still not there, ErrUnknownKey; if no fetch is allowed yet
// or it failed, a *KeysUnavailableError. A malformed token is
// ErrMalformedToken.
func (k *KeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(jwt, signingAlgorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedToken, err)
	}
	kid := jws.Signatures[0].Header.KeyID // a compact JWS has exactly one
	k.mu.Lock()
	keys := k.lookup(kid)
	var f *fetch
	if keys == nil {
		f = k.startFetch()
	}
	k.mu.Unlock()
	if keys == nil {
		if f == nil {
			return nil, k.unavailable(fmt.Errorf("key %q not held, and the JWKS was fetched less than %s ago", kid, k.cfg.RefreshInterval))
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, k.unavailable(ctx.Err())
		}
		if f.err != nil {
			return nil, k.unavailable(f.err)
		}
		k.mu.Lock()
		keys = k.lookup(kid)
		k.mu.Unlock()
		if keys == nil {
			return nil, ErrUnknownKey
		}
	}
	for _, key := range keys {
		if payload, err := jws.Verify(&key); err == nil {
			return payload, nil
		}
	}
	return nil, ErrBadSignature
}

// lookup returns the keys held that kid names: all of them for no kid,
// nil if none. k.mu is held.
func (k *KeySet) lookup(kid string) []jose.JSONWebKey {
	if kid == "" {
		return k.keys
	}
	var named []jose.JSONWebKey
	for _, key := range k.keys {
		if key.KeyID == kid {
			named = append(named, key)
		}
	}
	return named
}

// unavailable is err as a *KeysUnavailableError, retryable once the next
// fetch is allowed.
func (k *KeySet) unavailable(err error) error {
	k.mu.Lock()
	next := k.started.Add(k.cfg.RefreshInterval)
	k.mu.Unlock()
	return &KeysUnavailableError{URL: k.peer, RetryAfter: max(time.Until(next), time.Second), Err: err}
}

// startFetch returns the fetch under way, or starts one if none started
// within RefreshInterval; nil if neither. k.mu is held.
func (k *KeySet) startFetch() *fetch {
	if k.inflight != nil {
		return k.inflight
	}
	now := time.Now()
	if !k.started.IsZero() && now.Sub(k.started) < k.cfg.RefreshInterval {
		return nil
	}
	f := &fetch{done: make(chan struct{})}
	k.inflight, k.started = f, now
	go k.complete(f)
	return f
}

// complete runs f and records what it got: new keys replace the held ones;
// a failure keeps them. It logs when fetching starts failing and when it
// recovers, not each failure.
func (k *KeySet) complete(f *fetch) {
	keys, err := k.get()
	k.mu.Lock()
	wasFailing := k.err != nil
	if err == nil {
		k.keys, k.fetched = keys, time.Now()
	}
	k.err, f.err, k.inflight = err, err, nil
	held := len(k.keys)
	close(f.done)
	k.mu.Unlock()
	switch {
	case err != nil && !wasFailing:
		k.log.Warn("cannot fetch the signing keys of bearer tokens: tokens naming a key not held are answered 503", "peer", k.peer, "keys_held", held, "error", err)
	case err == nil && wasFailing:
		k.log.Info("the signing keys of bearer tokens are fetched again", "peer", k.peer, "keys", held)
	}
}

// get fetches the JWKS and returns its signing keys for RS256 and ES256;
// a set without any is an error, so that it never replaces keys held.
func (k *KeySet) get() ([]jose.JSONWebKey, error) {
	req, err := http.NewRequest(http.MethodGet, k.cfg.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch the JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch the JWKS: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKS+1))
	if err != nil {
		return nil, fmt.Errorf("read the JWKS: %w", err)
	}
	if len(body) > maxJWKS {
		return nil, fmt.Errorf("the JWKS is over %d bytes", maxJWKS)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode the JWKS: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		// A key of a type or use we do not verify with is skipped, as RFC
		// 7517 §5 asks, not a reason to refuse the whole set.
		var key jose.JSONWebKey
		if json.Unmarshal(raw, &key) != nil || key.Use == "enc" ||
			(key.Algorithm != "" && !slices.Contains(signingAlgorithms, jose.SignatureAlgorithm(key.Algorithm))) {
			continue
		}
		if pub := key.Public(); pub.Valid() { // a symmetric key has no public part
			keys = append(keys, pub)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("the JWKS holds no RS256 or ES256 signing key")
	}
	return keys, nil
}

// Run fetches the keys at once, then every RefreshPeriod, or every
// RefreshInterval while fetching fails, until ctx ends; it returns nil
// then. A fetch under way ends by itself within FetchTimeout.
func (k *KeySet) Run(ctx context.Context) error {
	for {
		k.mu.Lock()
		f := k.startFetch()
		k.mu.Unlock()
		if f != nil {
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil
			}
		}
		k.mu.Lock()
		next := k.started.Add(k.cfg.RefreshPeriod)
		if k.err != nil {
			next = k.started.Add(k.cfg.RefreshInterval)
		}
		k.mu.Unlock()
		t := time.NewTimer(time.Until(next))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

// Ready fails while no key was ever fetched: until then no token can be
// verified.
func (k *KeySet) Ready(context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.keys != nil:
		return nil
	case k.err != nil:
		return fmt.Errorf("no signing key fetched yet from %s: %v", k.peer, k.err)
	default:
		return fmt.Errorf("no signing key fetched yet from %s", k.peer)
	}
}

// Fresh fails while the last fetch failed after keys were fetched once:
// they still verify tokens, but a key rotated in is not seen.
func (k *KeySet) Fresh(context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil || k.err == nil {
		return nil
	}
	return fmt.Errorf("the last fetch of %s failed, serving the %d keys fetched at %s: %v",
		k.peer, len(k.keys), k.fetched.UTC().Format(time.RFC3339), k.err)
}
