// Package tokentest is a JWT issuer for tests: a JWKS served over HTTP,
// RS256 and ES256 keys that can be published later (key rotation), and
// tokens signed with them.
package tokentest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// Issuer serves its JWKS at URL until the test ends.
type Issuer struct {
	URL  string // the JWKS
	mu   sync.Mutex
	keys []jose.JSONWebKey
}

// New starts an Issuer with no key published.
func New(tb testing.TB) *Issuer {
	iss := &Issuer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		iss.mu.Lock()
		defer iss.mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: iss.keys})
	}))
	tb.Cleanup(srv.Close)
	iss.URL = srv.URL
	return iss
}

// Key is a signing key.
type Key struct {
	ID  string
	Alg jose.SignatureAlgorithm // jose.RS256 or jose.ES256
	key crypto.Signer
}

// NewKey makes a key; it signs tokens, but the issuer's JWKS holds it only
// once published.
func NewKey(tb testing.TB, id string, alg jose.SignatureAlgorithm) Key {
	tb.Helper()
	var k crypto.Signer
	var err error
	if alg == jose.RS256 {
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return Key{ID: id, Alg: alg, key: k}
}

// Publish adds k's public key to the JWKS.
func (iss *Issuer) Publish(k Key) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.keys = append(iss.keys, jose.JSONWebKey{Key: k.key.Public(), KeyID: k.ID, Algorithm: string(k.Alg), Use: "sig"})
}

// Token signs claims with k.
func Token(tb testing.TB, k Key, claims map[string]any) string {
	tb.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: jose.JSONWebKey{Key: k.key, KeyID: k.ID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := josejwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// Claims are a token's claims for issuer and audience, subject sub, valid
// for an hour, with scope.
func Claims(issuer, audience, sub, scope string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": issuer, "aud": audience, "sub": sub, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "scope": scope}
}
