package projectionapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/ordersonkafka/orders/internal/consumer/projectionapi"
	"github.com/ordersonkafka/orders/internal/devkit/openapitest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/platform/web"
	"github.com/ordersonkafka/orders/openapi"
)

// The router serves exactly the operations of openapi/order-consumer.yaml,
// with authentication on or off. Every other test of this package checks its
// requests and answers against the same document (serve).
func TestRoutesAreTheDocumentsOperations(t *testing.T) {
	t.Parallel()
	contract := openapitest.Load(t, openapi.OrderConsumer())
	for name, auth := range map[string]*web.Auth{
		"authentication off": nil,
		"authentication on":  web.NewAuth(context.Background(), "http://127.0.0.1:1/jwks", "https://issuer.example", "orders"),
	} {
		t.Run(name, func(t *testing.T) {
			h := projectionapi.New(projectionapi.Config{Logger: stacktest.Logger(t), Metrics: telemetry.MetricsHandler(telemetry.NewRegistry()), Auth: auth, MaxWaiting: 1}, nil)
			contract.Routes(t, h.(chi.Routes))
		})
	}
}

// GET /openapi.yaml is the document kept in the repository, byte for byte,
// without a token.
func TestServesItsOpenAPIDocument(t *testing.T) {
	t.Parallel()
	auth := web.NewAuth(context.Background(), "http://127.0.0.1:1/jwks", "https://issuer.example", "orders")
	srv := serve(t, projectionapi.New(projectionapi.Config{Logger: stacktest.Logger(t), Auth: auth, MaxWaiting: 1}, nil))
	resp, err := http.Get(srv.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("%d %q, want 200 application/yaml", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !bytes.Equal(body, openapi.OrderConsumer()) {
		t.Errorf("served %d bytes that are not openapi/order-consumer.yaml (%d bytes)", len(body), len(openapi.OrderConsumer()))
	}
}
