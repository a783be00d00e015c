package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/platform/config"
)

type sample struct {
	Addr    string        `env:"ADDR" envDefault:":8080"`
	Brokers []string      `env:"BROKERS" envDefault:"localhost:9092"`
	Timeout time.Duration `env:"TIMEOUT" envDefault:"5s"`
}

func TestLoadAppliesDefaultsAndOverrides(t *testing.T) {
	env := map[string]string{"BROKERS": "a:1,b:2", "UNRELATED": "x"}
	cfg, err := config.Load[sample](func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":8080" || strings.Join(cfg.Brokers, ";") != "a:1;b:2" || cfg.Timeout != 5*time.Second {
		t.Fatalf("got %+v", cfg)
	}
}

func TestLoadNamesTheMalformedVariable(t *testing.T) {
	_, err := config.Load[sample](func(k string) string {
		if k == "TIMEOUT" {
			return "soon"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "TIMEOUT") {
		t.Fatalf("error %v does not name TIMEOUT", err)
	}
}

type Shared struct {
	Grace time.Duration `env:"GRACE" envDefault:"1s"`
}

type embedding struct {
	Shared
	Addr string `env:"ADDR" envDefault:":8080"`
}

// Settings shared by embedding (service.Common) load and are named alike.
func TestLoadReadsAndNamesEmbeddedSettings(t *testing.T) {
	cfg, err := config.Load[embedding](func(k string) string { return map[string]string{"GRACE": "3s"}[k] })
	if err != nil || cfg.Grace != 3*time.Second || cfg.Addr != ":8080" {
		t.Fatalf("got %+v, %v", cfg, err)
	}
	_, err = config.Load[embedding](func(k string) string { return map[string]string{"GRACE": "soon"}[k] })
	if err == nil || !strings.Contains(err.Error(), `GRACE="soon"`) {
		t.Fatalf("error %v does not name GRACE and its value", err)
	}
}

func TestVarsListsEveryVariableWithItsDefault(t *testing.T) {
	vars, err := config.Vars[sample]()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vars {
		got = append(got, v.Name+"="+v.Default)
	}
	if want := "ADDR=:8080 BROKERS=localhost:9092 TIMEOUT=5s"; strings.Join(got, " ") != want {
		t.Fatalf("vars %v, want %s", got, want)
	}
}
