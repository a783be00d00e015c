// Package openapi embeds the OpenAPI 3.1 documents of both HTTP APIs: the
// contracts that client generators and gateways read, and that each service
// serves at GET /openapi.yaml. It also holds the JSON form of an order the
// documents specify (Order, ProjectedOrder, CustomerSummary), which the APIs serve: next to
// the schemas it must match, tested against them, and outside the platform,
// which knows nothing of orders. It imports only the domain, so both APIs
// can use it without depending on each other.
//
// The documents are written by hand and kept true by tests: every request
// and response the HTTP tests make is validated against them
// (internal/devkit/openapitest), the routes each router registers must be
// exactly their operations, their vocabulary (statuses, actions) must be the
// domain's, and the JSON form's fields must be their schemas' properties.
package openapi

import _ "embed"

//go:embed order-api.yaml
var orderAPI string

//go:embed order-consumer.yaml
var orderConsumer string

// OrderAPI returns order-api's document (openapi/order-api.yaml).
func OrderAPI() []byte { return []byte(orderAPI) }

// OrderConsumer returns the document of order-consumer's read API
// (openapi/order-consumer.yaml).
func OrderConsumer() []byte { return []byte(orderConsumer) }
