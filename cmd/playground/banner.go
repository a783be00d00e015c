package main

import (
	"strings"
	"text/template"
)

// bannerData is what the banner shows; Secure is set by -secure.
type bannerData struct {
	API, Consumer, Brokers, Registry string
	Inspect                          string // the inspector page's URL
	Topic, DLQTopic                  string
	Partitions                       int
	OrdersDB, ProjectionDB           string
	Secure                           *security
	State                            *state
	EnvFiles                         map[string]string // by service; none when nothing is kept
	Env                              []serviceEnv      // what the playground sets for each service
}

// bannerTemplate is the playground's banner: where everything is and
// commands that work as printed.
var bannerTemplate = template.Must(template.New("banner").Parse(`
Orders on Kafka — playground{{if .Secure}} (secure){{end}}
  order-api        {{.API}}
  order-consumer   {{.Consumer}}   group order-projector
  Kafka            {{.Brokers}}   topics {{.Topic}}, {{.DLQTopic}} ({{.Partitions}} partitions){{if .Secure}}
                   SASL_SSL, SCRAM-SHA-512 only{{end}}
  Schema Registry  {{.Registry}}   subject {{.Topic}}-value{{if .Secure}}   basic auth{{end}}
  PostgreSQL       {{.OrdersDB}} (order-api), {{.ProjectionDB}} (order-consumer)
  State            {{.State.Summary}}
  Inspector        {{with .Inspect}}{{.}}   topics, lag, subjects, events, dead letters; {{.}}/orders/<id> for an order's trail{{end}}

The playground sets these for the services (the environment gives the rest, e.g. LOG_LEVEL):
{{- range .Env}}
  {{.Name}}:{{range .Vars}}
    {{.}}{{end}}
{{- end}}
{{- with .EnvFiles}}
Each service's variables are in {{index . "order-api"}} and {{index . "order-consumer"}},
for the operator commands in another terminal (make build puts them in bin/):
  (set -a; . {{index . "order-consumer"}}; bin/order-consumer dlq list)
{{- end}}
{{- with .Secure}}
  Token issuer     {{.Issuer}}   JWKS {{.JWKSURL}}

Everything is secured. The CA, the credentials and the token are in {{.Dir}} (removed on exit):
  ca.pem             the CA of the broker's and the registry's certificates
  order-api.env      order-api's variables, order-consumer.env the consumer's: set -a; . <file>; set +a
  client.properties  for Java clients and Confluent's tools (librdkafka clients such as kcat
                     cannot log in to the embedded broker: they use the plain gateway below)
  token              a bearer token for both APIs (scopes {{.Scopes}}, valid 24h)
  token-read         a read-only one (scope orders:read): a write with it is 403
{{- end}}

{{- if .Secure}}
Set the bearer token (both scopes; also in {{.Secure.Dir}}/token), and the read-only one, in your shell:
  export TOKEN='{{.Secure.Token}}'
  export READ_TOKEN='{{.Secure.ReadToken}}'
{{- end}}
Place an order:
  curl -si {{.API}}/orders{{.Auth}} -H 'Content-Type: application/json' \
    -d '{"customer_id":"c-42","currency":"EUR","items":[{"sku":"BOOK-1","quantity":2,"unit_price_minor":1250}]}'
Pay it (use the id from the Location header), then read the projection:
  curl -si -X POST {{.API}}/orders/<id>/pay{{.Auth}}
  curl -s {{.Consumer}}/orders/<id>{{.Auth}}
{{- if .Secure}}
A write with the read-only token is refused (403, insufficient_scope):
  curl -si -X POST {{.API}}/orders/<id>/cancel -H "Authorization: Bearer $READ_TOKEN" -H 'Content-Type: application/json' -d '{"reason":"test"}'
Read the events decoded, and the dead-letter topic, through the secured broker:
  make build; (set -a; . {{.Secure.EnvFile "order-consumer"}}; bin/order-consumer events tail; bin/order-consumer dlq list)
{{- with .Secure.PlainBrokers}}
kcat and other librdkafka clients: the plain gateway on {{.}} (localhost only) logs in to the broker for them:
  kcat -b {{.}} -t {{$.Topic}} -C -e -f '%p/%o key=%k headers=%h\n'
  echo 'not avro' | kcat -b {{.}} -t {{$.Topic}} -P -X partitioner=murmur2_random -k some-order
{{- end}}
{{- else}}
Read the events (raw bytes; any Confluent Avro client decodes them with the registry above):
  kcat -b {{.Brokers}} -t {{.Topic}} -C -e -f '%p/%o key=%k headers=%h\n'
Send a poison message (murmur2_random: kcat's default partitioner is not Kafka's), then see it in the dead-letter topic:
  echo 'not avro' | kcat -b {{.Brokers}} -t {{.Topic}} -P -X partitioner=murmur2_random -k some-order
  bin/order-consumer dlq list                      (after make build)
{{- end}}
{{- if .Secure}}
Metrics (open without a token, like /healthz, /livez and /readyz):
  curl -s {{.API}}/metrics; curl -s {{.Consumer}}/metrics
{{- else}}
Metrics, and a minute of load at 500 orders/s:
  curl -s {{.API}}/metrics; curl -s {{.Consumer}}/metrics
  make bench
{{- end}}

Ctrl-C stops everything.
`))

// Auth is the curl option that sends the bearer token, when there is one
// (the banner prints the export of $TOKEN above it).
func (b bannerData) Auth() string {
	if b.Secure == nil {
		return ""
	}
	return ` -H "Authorization: Bearer $TOKEN"`
}

// Issuer is the token issuer's URL (the tokens' iss claim).
func (s *security) Issuer() string { return s.issuer.Issuer }

// JWKSURL is where the issuer serves its keys.
func (s *security) JWKSURL() string { return s.issuer.JWKSURL }

// Scopes are the token's scopes.
func (s *security) Scopes() string { return strings.ReplaceAll(tokenScopes, " ", ", ") }

// EnvFile is the file holding service's variables.
func (s *security) EnvFile(service string) string { return s.EnvFiles[service] }
