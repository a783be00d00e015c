package eventcodec

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/riferrei/srclient"
)

// RegistryAuth is how the codec authenticates to the Schema Registry and
// which CAs it trusts there; the zero value is neither.
type RegistryAuth struct {
	// BasicAuthUserInfo is "user:password", Confluent's
	// basic.auth.user.info (Confluent Cloud: API key and secret).
	BasicAuthUserInfo string
	// BearerToken is sent as "Authorization: Bearer <token>".
	BearerToken string
	// TLSCAFile is a PEM file of the CAs to trust for an https:// registry;
	// empty: the system's roots.
	TLSCAFile string
}

// maxRegistryAnswer bounds what the codec reads of one registry answer: a
// schema is a few KiB; a registry (or something posing as one) answering
// more is cut off, and the answer does not parse.
const maxRegistryAnswer = 4 << 20

// DefaultRegistryTimeout bounds each registry call, its answer read
// included, when the caller gives no bound (SCHEMA_REGISTRY_TIMEOUT's
// default). A lookup is answered in milliseconds; five seconds ride out a
// registry's garbage collection or a leader election of its cluster, and a
// registry that hangs costs the relay or the consumer no more before they
// report it and try again.
const DefaultRegistryTimeout = 5 * time.Second

// newRegistry is a srclient client for url with auth, each call bounded by
// timeout (default DefaultRegistryTimeout) and its answer by
// maxRegistryAnswer. hc, if set, supplies the transport.
func newRegistry(url string, auth RegistryAuth, hc *http.Client, timeout time.Duration) (*srclient.SchemaRegistryClient, error) {
	c, _, err := newRegistryClient(url, auth, hc, timeout)
	return c, err
}

// newRegistryClient is newRegistry, and the HTTP client under it (bounded,
// trusting the CAs; credentials are srclient's to add) for the one call
// srclient lacks.
func newRegistryClient(url string, auth RegistryAuth, hc *http.Client, timeout time.Duration) (*srclient.SchemaRegistryClient, *http.Client, error) {
	if url == "" {
		return nil, nil, errors.New("schema registry URL is empty")
	}
	if timeout <= 0 {
		timeout = DefaultRegistryTimeout
	}
	base := http.DefaultTransport
	if hc != nil && hc.Transport != nil {
		base = hc.Transport
	}
	if auth.TLSCAFile != "" {
		pem, err := os.ReadFile(auth.TLSCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("schema registry CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("schema registry CA file %s: no PEM certificate in it", auth.TLSCAFile)
		}
		t, ok := base.(*http.Transport)
		if !ok {
			return nil, nil, errors.New("schema registry CA file: the HTTP client's transport is not an *http.Transport")
		}
		t = t.Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
		base = t
	}
	// The transport bounds each call, not the client: srclient's calls take
	// no context, and so the error of one that timed out says the bound.
	client := &http.Client{Transport: bounded{base: base, timeout: timeout}}
	c := srclient.NewSchemaRegistryClient(strings.TrimRight(url, "/"), srclient.WithClient(client))
	c.CodecCreationEnabled(false) // the codec compiles schemas itself, bounded (hamba/avro)
	switch {
	case auth.BasicAuthUserInfo != "":
		user, pass, _ := strings.Cut(auth.BasicAuthUserInfo, ":")
		c.SetCredentials(user, pass)
	case auth.BearerToken != "":
		c.SetBearerToken(auth.BearerToken)
	}
	return c, client, nil
}

// bounded is the registry's transport: each call, from connecting to the
// last byte of its answer, ends within timeout, as a registry that accepts
// the connection and never answers would otherwise hold it for ever; and
// each answer's body is cut at maxRegistryAnswer bytes.
type bounded struct {
	base    http.RoundTripper
	timeout time.Duration
}

func (b bounded) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(r.Context(), b.timeout)
	resp, err := b.base.RoundTrip(r.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, b.explain(ctx, err)
	}
	resp.Body = &boundedBody{Reader: io.LimitReader(resp.Body, maxRegistryAnswer), body: resp.Body, ctx: ctx, cancel: cancel, b: b}
	return resp, nil
}

// explain says that err is the bound running out, if it is.
func (b bounded) explain(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s (SCHEMA_REGISTRY_TIMEOUT): %w", b.timeout, err)
	}
	return err
}

// boundedBody is an answer's body, read within the call's bound; closing
// it ends the call.
type boundedBody struct {
	io.Reader
	body   io.Closer
	ctx    context.Context
	cancel context.CancelFunc
	b      bounded
}

func (r *boundedBody) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = r.b.explain(r.ctx, err)
	}
	return n, err
}

func (r *boundedBody) Close() error {
	err := r.body.Close()
	r.cancel()
	return err
}

// registryCode is the registry's error_code of err (40403: schema not
// found, 409: incompatible, 50001…: its own failure), or 0 if err is not an
// answer of the registry (the network, a proxy's page).
func registryCode(err error) int {
	var se srclient.Error
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}
