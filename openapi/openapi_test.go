package openapi_test

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/openapi"
)

var documents = []struct {
	name string
	doc  []byte
}{
	{"order-api.yaml", openapi.OrderAPI()},
	{"order-consumer.yaml", openapi.OrderConsumer()},
}

// load parses doc as kin-openapi does for the validating tests.
func load(t *testing.T, doc []byte) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	d, err := loader.LoadFromData(doc)
	if err != nil {
		t.Fatalf("the document does not load: %v", err)
	}
	return d
}

// Each document is valid OpenAPI 3.1: it declares 3.1.0 and passes
// kin-openapi's validation for 3.1 (JSON Schema 2020-12 schemas, every
// $ref resolved, unknown fields refused, and every example and default
// valid against its schema).
func TestDocumentsAreValidOpenAPI31(t *testing.T) {
	t.Parallel()
	for _, d := range documents {
		t.Run(d.name, func(t *testing.T) {
			doc := load(t, d.doc)
			if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() || doc.IsOpenAPI32OrLater() {
				t.Fatalf("openapi: %q, want 3.1.0", doc.OpenAPI)
			}
			err := doc.Validate(context.Background(), openapi3.EnableMultiError(), openapi3.EnableExamplesValidation(),
				openapi3.EnableSchemaDefaultsValidation(), openapi3.EnableSchemaPatternValidation())
			var me openapi3.MultiError
			if errors.As(err, &me) {
				for _, e := range me {
					t.Error(e)
				}
			} else if err != nil {
				t.Error(err)
			}
		})
	}
}

// The documents name the domain's statuses, all of them and only them: a
// new status (docs/events.md, "How to add a state") fails here until it is added.
// The action routes are checked against each router (openapitest.Routes).
func TestDocumentsSpeakTheDomainsVocabulary(t *testing.T) {
	t.Parallel()
	var want []string
	for _, s := range order.Standard.Statuses() {
		want = append(want, string(s))
	}
	for _, d := range documents {
		t.Run(d.name, func(t *testing.T) {
			doc := load(t, d.doc)
			ref := doc.Components.Schemas["Status"]
			if ref == nil || ref.Value == nil {
				t.Fatal("no Status schema")
			}
			var got []string
			for _, v := range ref.Value.Enum {
				s, _ := v.(string)
				got = append(got, s)
			}
			if !slices.Equal(got, want) {
				t.Errorf("Status enumerates %v; the domain's statuses are %v", got, want)
			}
		})
	}
}

// kin-openapi refuses unknown fields in most objects but not in Header
// Objects, where a misspelt "required" would silently make a header
// optional, and the tests that hold the APIs to the documents would stop
// requiring it. OpenAPI allows only x- extensions besides its fields.
func TestHeaderObjectsHaveNoUnknownFields(t *testing.T) {
	t.Parallel()
	for _, d := range documents {
		t.Run(d.name, func(t *testing.T) {
			doc := load(t, d.doc)
			check := func(where string, headers openapi3.Headers) {
				for name, h := range headers {
					if h == nil || h.Value == nil {
						continue
					}
					for field := range h.Value.Extensions {
						if !strings.HasPrefix(field, "x-") {
							t.Errorf("%s: header %s has the unknown field %q", where, name, field)
						}
					}
				}
			}
			check("components.headers", doc.Components.Headers)
			for name, r := range doc.Components.Responses {
				check("components.responses."+name, r.Value.Headers)
			}
			for path, item := range doc.Paths.Map() {
				for method, op := range item.Operations() {
					for status, r := range op.Responses.Map() {
						if r.Ref == "" {
							check(method+" "+path+" "+status, r.Value.Headers)
						}
					}
				}
			}
		})
	}
}

// The JSON forms are what the documents say they are: each field of
// openapi.Order, ProjectedOrder and CustomerSummary is a property of the schema it
// answers with, every property is a field, and a field may be left out
// (omitempty) exactly when the schema does not require it.
func TestTheJSONFormOfAnOrderIsTheDocumentsSchema(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		document, schema string
		doc              []byte
		form             reflect.Type
	}{
		{"order-api.yaml", "Order", openapi.OrderAPI(), reflect.TypeFor[openapi.Order]()},
		{"order-consumer.yaml", "ProjectedOrder", openapi.OrderConsumer(), reflect.TypeFor[openapi.ProjectedOrder]()},
		{"order-consumer.yaml", "CustomerSummary", openapi.OrderConsumer(), reflect.TypeFor[openapi.CustomerSummary]()},
	} {
		t.Run(tc.document+" "+tc.schema, func(t *testing.T) {
			ref := load(t, tc.doc).Components.Schemas[tc.schema]
			if ref == nil || ref.Value == nil {
				t.Fatalf("no %s schema", tc.schema)
			}
			var properties, required []string
			for name := range ref.Value.Properties {
				properties = append(properties, name)
			}
			required = append(required, ref.Value.Required...)
			var fields, always []string
			for name, optional := range jsonNames(tc.form) {
				fields = append(fields, name)
				if !optional {
					always = append(always, name)
				}
			}
			for _, s := range [][]string{properties, required, fields, always} {
				slices.Sort(s)
			}
			if !slices.Equal(fields, properties) {
				t.Errorf("the Go form has the fields %v; the schema the properties %v", fields, properties)
			}
			if !slices.Equal(always, required) {
				t.Errorf("the Go form always writes %v; the schema requires %v", always, required)
			}
		})
	}
}

// jsonNames returns the JSON names of struct t's fields, embedded structs'
// included, each with whether encoding/json may leave it out (omitempty).
func jsonNames(t reflect.Type) map[string]bool {
	names := map[string]bool{}
	for f := range t.Fields() {
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			maps.Copy(names, jsonNames(f.Type))
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		names[name] = strings.Contains(","+opts+",", ",omitempty,")
	}
	return names
}
