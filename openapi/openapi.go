// Package openapi embeds the OpenAPI 3.1 documents of both HTTP APIs: the
// contracts that client generators and gateways read, and that each service
// serves at GET /openapi.yaml.
//
// They are written by hand and kept true by tests: every request and response
// the HTTP tests make is validated against them (internal/devkit/openapitest),
// the routes each router registers must be exactly their operations, and
// their vocabulary (statuses, actions) must be the domain's.
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
