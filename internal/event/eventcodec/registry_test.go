package eventcodec_test

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riferrei/srclient"

	"github.com/ordersonkafka/orders/internal/devkit/schemaregistry"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
)

// A registry that wants credentials (Confluent Cloud's basic auth, a bearer
// token) or speaks TLS with a private CA is reached by the framer and the
// decoder alike; without the credentials they get its refusal, transient
// (a retry after the operator fixes the setting succeeds), never a verdict
// on the message.
func TestTheRegistryIsReachedWithItsCredentialsAndCA(t *testing.T) {
	requireAuth := func(want string) http.Handler {
		reg := schemaregistry.New()
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != want {
				w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error_code":401,"message":"Unauthorized"}`))
				return
			}
			reg.ServeHTTP(w, r)
		})
	}
	basic := httptest.NewServer(requireAuth("Basic " + "a2V5OnNlY3JldA==")) // key:secret
	defer basic.Close()
	bearer := httptest.NewServer(requireAuth("Bearer t0ken"))
	defer bearer.Close()
	tlsSrv := httptest.NewTLSServer(schemaregistry.New())
	defer tlsSrv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		url  string
		auth eventcodec.RegistryAuth
	}{
		{"basic auth", basic.URL, eventcodec.RegistryAuth{BasicAuthUserInfo: "key:secret"}},
		{"bearer token", bearer.URL, eventcodec.RegistryAuth{BearerToken: "t0ken"}},
		{"TLS with a private CA", tlsSrv.URL, eventcodec.RegistryAuth{TLSCAFile: caFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			enc, _ := eventcodec.NewEncoder()
			ev := events(t)[0]
			payload, v, err := enc.Encode(ev)
			if err != nil {
				t.Fatal(err)
			}

			// Without the setting: refused, and transient.
			fr, err := eventcodec.NewFramer(eventcodec.FramerConfig{URL: tc.url, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			_, err = fr.Frame(ctx, "order-events", v, payload)
			if err == nil || eventcodec.Permanent(err) || !strings.Contains(err.Error(), "schema registry") {
				t.Fatalf("framing without %s: %v, want a transient refusal naming the schema registry", tc.name, err)
			}

			fr, err = eventcodec.NewFramer(eventcodec.FramerConfig{URL: tc.url, Auth: tc.auth, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			framed, err := fr.Frame(ctx, "order-events", v, payload)
			if err != nil {
				t.Fatalf("framing with %s: %v", tc.name, err)
			}
			dec, err := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: tc.url, Auth: tc.auth, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			got, err := dec.Decode(ctx, framed)
			if err != nil || got.ID != ev.ID {
				t.Fatalf("decoding with %s: %v", tc.name, err)
			}
		})
	}
}

// An unknown schema ID is the registry's 40403, permanent; any other
// refusal of the registry (here a 500 with its error code) is transient.
func TestOnlyAnUnknownSchemaIsPermanent(t *testing.T) {
	for _, tc := range []struct {
		status    int
		body      string
		permanent bool
	}{
		{404, `{"error_code":40403,"message":"Schema 7 not found"}`, true},
		{500, `{"error_code":50001,"message":"Error in the backend data store"}`, false},
		{502, `<html>Bad Gateway</html>`, false},
		{404, `<html>no such page (a wrong SCHEMA_REGISTRY_URL)</html>`, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(tc.body))
		}))
		dec, err := eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: srv.URL, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = dec.Decode(context.Background(), []byte{0, 0, 0, 0, 7, 2})
		srv.Close()
		if err == nil || eventcodec.Permanent(err) != tc.permanent || errors.Is(err, eventcodec.ErrUnknownSchema) != tc.permanent {
			t.Errorf("HTTP %d %s: %v (permanent %v), want permanent %v", tc.status, tc.body, err, eventcodec.Permanent(err), tc.permanent)
		}
		var se srclient.Error
		if tc.body[0] == '{' && (!errors.As(err, &se) || !strings.Contains(tc.body, `"error_code":`+strconv.Itoa(se.Code))) {
			t.Errorf("HTTP %d: the registry's error code is lost: %v", tc.status, err)
		}
	}
}
