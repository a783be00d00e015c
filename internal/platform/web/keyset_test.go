package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/devkit/tokentest"
	"github.com/ordersonkafka/orders/internal/platform/web"
)

// idp is an identity provider's JWKS endpoint under the test's control: it
// serves the keys published on its Issuer; while down it answers 500;
// while hung it accepts each connection and never answers it. Fetches
// counts the requests it answered and the connections it held.
type idp struct {
	*tokentest.Issuer
	URL        string
	fetches    atomic.Int64
	down, hung atomic.Bool
	delay      atomic.Int64 // how long each answer takes, in nanoseconds
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	p := &idp{Issuer: tokentest.New(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl := &holdingListener{Listener: ln, p: p}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	srv.SetKeepAlivesEnabled(false) // each fetch connects anew, so hanging takes effect at once
	go func() { _ = srv.Serve(hl) }()
	t.Cleanup(func() { _ = srv.Close(); hl.release() })
	p.URL = "http://" + ln.Addr().String() + "/.well-known/jwks.json"
	return p
}

func (p *idp) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	p.fetches.Add(1)
	time.Sleep(time.Duration(p.delay.Load()))
	if p.down.Load() {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	resp, err := http.Get(p.Issuer.URL)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = io.Copy(w, resp.Body)
}

// holdingListener is a raw listener that, while its idp is hung, accepts
// connections and holds them, never read, never answered, never closed
// (until the test ends).
type holdingListener struct {
	net.Listener
	p    *idp
	mu   sync.Mutex
	held []net.Conn
}

func (l *holdingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.p.hung.Load() {
			return c, err
		}
		l.p.fetches.Add(1)
		l.mu.Lock()
		l.held = append(l.held, c)
		l.mu.Unlock()
	}
}

func (l *holdingListener) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.held {
		_ = c.Close()
	}
}

// runKeys runs auth's key refresh until the test ends.
func runKeys(t *testing.T, auth *web.Auth) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = auth.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// do sends GET url with the bearer token tok, from any goroutine.
func do(url, tok string) (answer, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	var p struct{ Detail string }
	_ = json.NewDecoder(resp.Body).Decode(&p)
	return answer{resp.StatusCode, resp.Header.Get("Retry-After"), p.Detail}, nil
}

// until sends tok to url until it is answered status, failing the test if
// any other answer is not a 503 with Retry-After (the key set waiting for
// its next fetch) or if it takes over 10 s.
func until(t *testing.T, url, tok string, status int) {
	t.Helper()
	stacktest.WaitFor(t, fmt.Sprintf("a %d", status), 10*time.Second, func() bool {
		a := get(t, url, tok)
		if a.status != status && (a.status != 503 || a.retryAfter == "") {
			t.Fatalf("%+v while waiting for %d; want only 503s with Retry-After before it", a, status)
		}
		return a.status == status
	})
}

// mostFetches is how many fetches may start in elapsed, one per interval:
// the first at once, then one each interval.
func mostFetches(elapsed, interval time.Duration) int64 { return int64(elapsed/interval) + 1 }

// A JWKS endpoint that accepts the connection and never answers: requests
// needing its keys are 503 with Retry-After as soon as the fetch times out,
// never hanging, with one fetch for all of them; fetching failing is
// logged once, naming the endpoint; once it answers again, requests pass
// without a restart, and the recovery is logged once.
func TestAHungJWKSIsUnavailableWithinTheFetchDeadlineThenHealsByItself(t *testing.T) {
	p := newIDP(t)
	key := tokentest.NewKey(t, "k", jose.ES256)
	p.Publish(key)
	p.hung.Store(true)
	log := stacktest.NewLog(t)
	const fetchTimeout, interval = 200 * time.Millisecond, 500 * time.Millisecond
	auth := newAuth(t, p.URL, web.KeySetConfig{FetchTimeout: fetchTimeout, RefreshInterval: interval, Logger: log.Logger})
	api := serveAPI(t, auth) + "/orders/1"
	tok := token(t, key, nil)

	start := time.Now()
	answers, errs := make([]answer, 8), make([]error, 8)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { answers[i], errs[i] = do(api, tok) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i, a := range answers {
		if errs[i] != nil || a.status != 503 || a.retryAfter == "" {
			t.Errorf("request %d while the JWKS hangs: %+v %v; want 503 with Retry-After", i, a, errs[i])
		}
	}
	if n, most := p.fetches.Load(), mostFetches(elapsed, interval); n > most {
		t.Errorf("%d concurrent requests made %d fetches in %s, want at most %d", len(answers), n, elapsed, most)
	}

	runKeys(t, auth) // as the services do: retries every interval while failing
	stacktest.WaitFor(t, "three failed fetches", 10*time.Second, func() bool { return p.fetches.Load() >= 3 })
	if n := strings.Count(log.String(), "cannot fetch the signing keys"); n != 1 || !strings.Contains(log.String(), "peer="+p.URL) {
		t.Errorf("%d warnings that fetching fails, want one naming peer=%s:\n%s", n, p.URL, log.String())
	}

	p.hung.Store(false)
	until(t, api, tok, 204)
	// The line may follow the keys it announces by a moment.
	stacktest.WaitFor(t, "the line saying fetching recovered", 10*time.Second, func() bool {
		return strings.Contains(log.String(), "fetched again")
	})
	if n := strings.Count(log.String(), "fetched again"); n != 1 {
		t.Errorf("%d lines saying fetching recovered, want one:\n%s", n, log.String())
	}
}

// Forged tokens, however many, make the key set fetch the JWKS at most once
// per refresh interval: a bad signature on a key held is 401 at once, an
// unknown kid 401 once a fetch did not find it, else 503.
func TestForgedTokensFetchTheJWKSAtMostOncePerInterval(t *testing.T) {
	p := newIDP(t)
	good := tokentest.NewKey(t, "good", jose.ES256)
	p.Publish(good)
	const interval = 200 * time.Millisecond
	api := serveAPI(t, newAuth(t, p.URL, web.KeySetConfig{RefreshInterval: interval})) + "/orders/1"
	start := time.Now()
	if a := get(t, api, token(t, good, nil)); a.status != 204 {
		t.Fatalf("a good token: %+v", a)
	}
	badSignature := []string{
		token(t, tokentest.NewKey(t, "good", jose.ES256), nil), // the kid of a key held, another key
		token(t, tokentest.NewKey(t, "", jose.RS256), nil),     // no kid, no key held verifies it
	}
	var unknownKid []string
	for i := range 4 {
		unknownKid = append(unknownKid, token(t, tokentest.NewKey(t, fmt.Sprintf("forged-%d", i), jose.ES256), nil))
	}

	const requests, concurrency = 2000, 32
	var (
		next                      atomic.Int64
		mu                        sync.Mutex
		unauthorized, unavailable int
		wrong                     []string
		wg                        sync.WaitGroup
	)
	for range concurrency {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= requests; i = int(next.Add(1)) {
				forged, sigOnly := unknownKid[i%len(unknownKid)], i%2 == 0
				if sigOnly {
					forged = badSignature[i%4/2]
				}
				a, err := do(api, forged)
				mu.Lock()
				switch {
				case err != nil:
					wrong = append(wrong, err.Error())
				case sigOnly && a.status == 401 && a.detail == "the bearer token is not valid: bad signature",
					!sigOnly && a.status == 401 && a.detail == "the bearer token is not valid: unknown key":
					unauthorized++
				case !sigOnly && a.status == 503 && a.retryAfter != "":
					unavailable++
				default:
					wrong = append(wrong, fmt.Sprintf("%+v (bad signature on a held key: %t)", a, sigOnly))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	n, most := p.fetches.Load(), mostFetches(elapsed, interval)
	t.Logf("%d forged requests, %d at a time, in %s: %d JWKS fetches (at most %d allowed: one per %s); %d answered 401, %d 503",
		requests, concurrency, elapsed.Round(time.Millisecond), n, most, interval, unauthorized, unavailable)
	if n > most {
		t.Errorf("%d fetches, want at most %d", n, most)
	}
	if len(wrong) > 0 {
		t.Errorf("%d wrong answers, the first: %s", len(wrong), wrong[0])
	}
}

// A token whose signature a key held does not verify is 401 at once: no
// fetch, even with every fetch allowed.
func TestABadSignatureOnAHeldKeyIsRefusedWithoutAFetch(t *testing.T) {
	p := newIDP(t)
	good := tokentest.NewKey(t, "good", jose.RS256)
	p.Publish(good)
	api := serveAPI(t, newAuth(t, p.URL, web.KeySetConfig{RefreshInterval: time.Nanosecond})) + "/orders/1"
	if a := get(t, api, token(t, good, nil)); a.status != 204 {
		t.Fatalf("a good token: %+v", a)
	}
	before := p.fetches.Load()
	for name, k := range map[string]tokentest.Key{
		"the kid of a key held": tokentest.NewKey(t, "good", jose.RS256),
		"no kid":                tokentest.NewKey(t, "", jose.RS256),
	} {
		for range 20 {
			if a := get(t, api, token(t, k, nil)); a.status != 401 || a.detail != "the bearer token is not valid: bad signature" {
				t.Fatalf("a bad signature, %s: %+v; want 401, bad signature", name, a)
			}
		}
	}
	if n := p.fetches.Load() - before; n != 0 {
		t.Errorf("40 bad signatures on keys held made %d fetches, want none", n)
	}
}

// A key rotated into the JWKS is 503 with Retry-After until the key set
// may fetch again, then taken; a kid still unknown after that fetch is 401.
func TestARotatedKeyIsUnavailableUntilTheNextFetchThenTaken(t *testing.T) {
	p := newIDP(t)
	old := tokentest.NewKey(t, "old", jose.ES256)
	p.Publish(old)
	const interval = 2 * time.Second
	api := serveAPI(t, newAuth(t, p.URL, web.KeySetConfig{RefreshInterval: interval})) + "/orders/1"
	if a := get(t, api, token(t, old, nil)); a.status != 204 {
		t.Fatalf("a token of the key held: %+v", a)
	}
	rotated := tokentest.NewKey(t, "new", jose.RS256)
	p.Publish(rotated)
	if a := get(t, api, token(t, rotated, nil)); a.status != 503 || (a.retryAfter != "1" && a.retryAfter != "2") {
		t.Fatalf("a token of a key rotated in just after a fetch: %+v; want 503, Retry-After 1 or 2", a)
	}
	until(t, api, token(t, rotated, nil), 204)
	if n := p.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2: the first, the rotation's", n)
	}
	stranger := token(t, tokentest.NewKey(t, "nobody", jose.ES256), nil)
	until(t, api, stranger, 401)
	if a := get(t, api, stranger); a.status != 401 && a.status != 503 {
		t.Errorf("a kid the JWKS does not hold, again: %+v", a)
	}
	if a := get(t, api, token(t, old, nil)); a.status != 204 {
		t.Errorf("a token of the first key, still published: %+v", a)
	}
}

// A request that gives up while a fetch runs leaves it to the others: they
// get its keys, and it was the only fetch.
func TestARequestThatGivesUpLeavesTheFetchToTheOthers(t *testing.T) {
	p := newIDP(t)
	key := tokentest.NewKey(t, "k", jose.ES256)
	p.Publish(key)
	p.delay.Store(int64(500 * time.Millisecond))
	api := serveAPI(t, newAuth(t, p.URL, web.KeySetConfig{})) + "/orders/1"
	tok := token(t, key, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	gaveUp := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		gaveUp <- err
	}()
	stacktest.WaitFor(t, "the first request's fetch", 5*time.Second, func() bool { return p.fetches.Load() == 1 })
	answers, errs := make([]answer, 10), make([]error, 10)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { answers[i], errs[i] = do(api, tok) })
	}
	wg.Wait()
	if err := <-gaveUp; err == nil {
		t.Error("the first request did not give up")
	}
	for i, a := range answers {
		if errs[i] != nil || a.status != 204 {
			t.Errorf("request %d: %+v %v, want 204", i, a, errs[i])
		}
	}
	if n := p.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}

// readiness is what /readyz answered.
type readiness struct {
	status int
	Failed map[string]string
	Checks map[string]string
}

func ready(t *testing.T, base string) readiness {
	t.Helper()
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := readiness{status: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

// /readyz fails, naming auth_keys and the JWKS, only while no key was ever
// fetched; once keys were, a failing JWKS shows as the optional
// auth_keys_refresh, naming the JWKS, and the keys held keep serving.
func TestReadinessFailsOnlyWhileNoKeyWasEverFetched(t *testing.T) {
	p := newIDP(t)
	p.down.Store(true)
	log := stacktest.NewLog(t)
	auth := newAuth(t, p.URL, web.KeySetConfig{RefreshInterval: 100 * time.Millisecond, RefreshPeriod: 200 * time.Millisecond, Logger: log.Logger})
	base := serveAPI(t, auth)
	runKeys(t, auth)

	stacktest.WaitFor(t, "a failed fetch", 10*time.Second, func() bool { return p.fetches.Load() >= 1 })
	r := ready(t, base)
	if r.status != 503 || !strings.Contains(r.Failed["auth_keys"], p.URL) {
		t.Fatalf("no key ever fetched: %+v; want 503 naming auth_keys and %s", r, p.URL)
	}

	key := tokentest.NewKey(t, "k", jose.ES256)
	p.Publish(key)
	p.down.Store(false)
	stacktest.WaitFor(t, "readiness", 10*time.Second, func() bool { return ready(t, base).status == 200 })
	if r := ready(t, base); r.Checks["auth_keys"] != "ok" || r.Checks["auth_keys_refresh"] != "ok" {
		t.Errorf("keys fetched: %+v", r)
	}

	p.down.Store(true)
	stacktest.WaitFor(t, "the failing refresh in /readyz", 10*time.Second, func() bool {
		r := ready(t, base)
		if r.status != 200 {
			t.Fatalf("a failing refresh, keys held: %+v; want 200", r)
		}
		return r.Checks["auth_keys_refresh"] != "ok"
	})
	if r := ready(t, base); !strings.Contains(r.Checks["auth_keys_refresh"], p.URL) || r.Checks["auth_keys"] != "ok" {
		t.Errorf("a failing refresh, keys held: %+v; want auth_keys_refresh naming %s", r, p.URL)
	}
	if a := get(t, base+"/orders/1", token(t, key, nil)); a.status != 204 {
		t.Errorf("a token of a key held while the JWKS is down: %+v", a)
	}
	p.down.Store(false)
	stacktest.WaitFor(t, "the refresh to recover", 10*time.Second, func() bool { return ready(t, base).Checks["auth_keys_refresh"] == "ok" })
	if warn, info := strings.Count(log.String(), "cannot fetch the signing keys"), strings.Count(log.String(), "fetched again"); warn != 2 || info != 2 {
		t.Errorf("%d warnings and %d recoveries logged for two outages, want 2 and 2:\n%s", warn, info, log.String())
	}
}

// Keys the API cannot verify with (a symmetric key, an encryption key, an
// unknown type) are skipped, not a reason to refuse the JWKS; a JWKS
// without any signing key is a failed fetch, which keeps the keys held.
func TestAJWKSIsReadForItsSigningKeysOnly(t *testing.T) {
	iss := tokentest.New(t)
	key := tokentest.NewKey(t, "k", jose.ES256)
	iss.Publish(key)
	resp, err := http.Get(iss.URL)
	if err != nil {
		t.Fatal(err)
	}
	var published struct{ Keys []json.RawMessage }
	err = json.NewDecoder(resp.Body).Decode(&published)
	resp.Body.Close()
	if err != nil || len(published.Keys) != 1 {
		t.Fatalf("the issuer's JWKS: %v %v", published, err)
	}
	others := `{"kty":"oct","kid":"k","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQ"},{"kty":"OKP","crv":"X448","kid":"k","x":"AAAA"},` +
		`{"kty":"EC","use":"enc","kid":"k","crv":"P-256","x":"AAAA","y":"AAAA"}`
	var body atomic.Value
	body.Store(`{"keys":[` + others + `,` + string(published.Keys[0]) + `]}`)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body.Load().(string)) }))
	defer jwks.Close()
	auth := newAuth(t, jwks.URL, web.KeySetConfig{RefreshInterval: 50 * time.Millisecond, RefreshPeriod: 50 * time.Millisecond})
	base := serveAPI(t, auth)
	if a := get(t, base+"/orders/1", token(t, key, nil)); a.status != 204 {
		t.Fatalf("a token of the signing key among others: %+v", a)
	}
	body.Store(`{"keys":[` + others + `]}`)
	runKeys(t, auth)
	stacktest.WaitFor(t, "the fetch without a signing key to fail", 10*time.Second, func() bool {
		return strings.Contains(ready(t, base).Checks["auth_keys_refresh"], "no RS256 or ES256 signing key")
	})
	if a := get(t, base+"/orders/1", token(t, key, nil)); a.status != 204 {
		t.Errorf("a token of the key held after a JWKS without signing keys: %+v", a)
	}
}
