package projectionapi_test

import (
	"net/http"
	"testing"

	"github.com/ordersonkafka/orders/internal/consumer/projectionapi"
	"github.com/ordersonkafka/orders/internal/devkit/openapitest"
	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
	"github.com/ordersonkafka/orders/internal/platform/telemetry"
	"github.com/ordersonkafka/orders/internal/platform/web"
	"github.com/ordersonkafka/orders/openapi"
)

// The router serves exactly the operations of openapi/order-consumer.yaml, with
// authentication on or off, and GET /openapi.yaml is that document, byte for
// byte, without a token. Every other test of this package checks its requests
// and answers against the same document (serve).
func TestHoldsItsDocument(t *testing.T) {
	t.Parallel()
	openapitest.HoldsAPI(t, openapi.OrderConsumer(), func(auth *web.Auth) http.Handler {
		return projectionapi.New(projectionapi.Config{Logger: stacktest.Logger(t), Metrics: telemetry.MetricsHandler(telemetry.NewRegistry()), Auth: auth, MaxWaiting: 1}, projectionapi.Stores{})
	})
}
