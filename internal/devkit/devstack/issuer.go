package devstack

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// TokenIssuer stands in for an identity provider: it serves a JWKS over
// HTTP and its keys sign JWTs for the services' API authentication
// (AUTH_JWKS_URL). Keys can be published after start, as in a key rotation.
type TokenIssuer struct {
	// Issuer is the server's base URL, for the tokens' iss claim.
	Issuer string
	// JWKSURL is where the key set is served (it is served on every path).
	JWKSURL string

	srv  *http.Server
	mu   sync.Mutex
	keys []jose.JSONWebKey
}

// StartTokenIssuer serves an empty key set on addr ("127.0.0.1:0" picks a
// port). Its issuer URL (the iss claim) is the server's base URL.
func StartTokenIssuer(addr string) (*TokenIssuer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("token issuer: listen on %s: %w", addr, err)
	}
	base := LocalURL("http", ln.Addr().String())
	iss := &TokenIssuer{Issuer: base, JWKSURL: base + "/.well-known/jwks.json"}
	iss.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		iss.mu.Lock()
		defer iss.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: iss.keys})
	})}
	go func() { _ = iss.srv.Serve(ln) }()
	return iss, nil
}

// Close stops serving the key set.
func (iss *TokenIssuer) Close() { _ = iss.srv.Close() }

// Publish adds k's public key to the key set.
func (iss *TokenIssuer) Publish(k SigningKey) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.keys = append(iss.keys, jose.JSONWebKey{Key: k.key.Public(), KeyID: k.ID, Algorithm: string(k.Alg), Use: "sig"})
}

// SigningKey signs tokens; the issuer's key set holds it only once
// published.
type SigningKey struct {
	ID  string
	Alg jose.SignatureAlgorithm // jose.RS256 or jose.ES256
	key crypto.Signer
}

// NewSigningKey makes an RS256 (2048-bit) or ES256 (P-256) key.
func NewSigningKey(id string, alg jose.SignatureAlgorithm) (SigningKey, error) {
	var k crypto.Signer
	var err error
	switch alg {
	case jose.RS256:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		err = fmt.Errorf("algorithm %s: only RS256 and ES256", alg)
	}
	if err != nil {
		return SigningKey{}, err
	}
	return SigningKey{ID: id, Alg: alg, key: k}, nil
}

// Sign makes a compact JWT of claims.
func (k SigningKey) Sign(claims map[string]any) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: jose.JSONWebKey{Key: k.key, KeyID: k.ID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	return josejwt.Signed(sig).Claims(claims).Serialize()
}

// TokenClaims are the claims of a token for issuer and audience, subject
// sub, valid for ttl from now, with scope (space-separated).
func TokenClaims(issuer, audience, sub, scope string, ttl time.Duration) map[string]any {
	now := time.Now()
	return map[string]any{"iss": issuer, "aud": audience, "sub": sub, "exp": now.Add(ttl).Unix(), "iat": now.Unix(), "scope": scope}
}
