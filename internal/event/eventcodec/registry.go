package eventcodec

import (
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

// newRegistry is a srclient client for url with auth, each call bounded by
// timeout (default 5s) and its answer by maxRegistryAnswer. hc, if set,
// supplies the transport.
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
		timeout = 5 * time.Second
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
	client := &http.Client{Transport: limitAnswers{base}, Timeout: timeout}
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

// limitAnswers cuts every answer body at maxRegistryAnswer bytes.
type limitAnswers struct{ base http.RoundTripper }

func (l limitAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(r)
	if err == nil {
		resp.Body = limitedBody{io.LimitReader(resp.Body, maxRegistryAnswer), resp.Body}
	}
	return resp, err
}

type limitedBody struct {
	io.Reader
	io.Closer
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
