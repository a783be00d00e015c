package config_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/platform/config"
	"github.com/ordersonkafka/orders/internal/producer/orderapi"
)

// The docs these tests hold to the code: configurationDoc's tables of
// variables and tracing variables, operationsDoc's metrics table.
const (
	configurationDoc = "../../../docs/configuration.md"
	operationsDoc    = "../../../docs/operations.md"
)

// TestConfigurationDocDocumentsEveryVariable keeps the tables of
// docs/configuration.md true: each service's table lists every variable it
// reads, with the real default, and nothing it does not read.
func TestConfigurationDocDocumentsEveryVariable(t *testing.T) {
	doc, err := os.ReadFile(configurationDoc)
	if err != nil {
		t.Fatal(err)
	}
	apiVars, _ := config.Vars[orderapi.Config]()
	consumerVars, _ := config.Vars[orderconsumer.Config]()
	for _, tc := range []struct {
		marker string
		vars   []config.Var
	}{
		{"order-api reads only environment variables", apiVars},
		{"order-consumer reads only environment variables", consumerVars},
	} {
		t.Run(tc.marker, func(t *testing.T) {
			section := string(doc)
			start := strings.Index(section, tc.marker)
			if start < 0 {
				t.Fatalf("%s has no section introduced by %q", configurationDoc, tc.marker)
			}
			section = section[start:]
			if end := strings.Index(section, "\n\n\n"); end > 0 {
				section = section[:end]
			}
			if end := strings.Index(section[1:], "\n## "); end > 0 {
				section = section[:end]
			}
			// The table is the first one after the marker.
			if end := strings.Index(section, "|\n\n"); end > 0 {
				section = section[:end+1]
			}
			row := regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\| `([^`]*)` \\|")
			documented := map[string]string{}
			for _, m := range row.FindAllStringSubmatch(section, -1) {
				documented[m[1]] = m[2]
			}
			for _, v := range tc.vars {
				def, ok := documented[v.Name]
				if !ok {
					t.Errorf("%s does not document %s", configurationDoc, v.Name)
				} else if def != v.Default {
					t.Errorf("%s says %s defaults to %q; the code says %q", configurationDoc, v.Name, def, v.Default)
				}
				delete(documented, v.Name)
			}
			for name := range documented {
				t.Errorf("%s documents %s, which the service does not read", configurationDoc, name)
			}
		})
	}
}
