// Package config loads a service's configuration from environment variables
// (12-factor) into a struct whose fields carry `env` and `envDefault` tags,
// using github.com/caarlos0/env. It reads only through the getenv function it
// is given, so tests and the playground configure services without touching
// the process environment.
package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/caarlos0/env/v11"
)

// Load returns a T filled from getenv, defaults applied. Unknown variables are
// ignored; malformed values (a bad duration, a non-number) are errors that
// name the variable.
func Load[T any](getenv func(string) string) (T, error) {
	var zero T
	vars, err := Vars[T]()
	if err != nil {
		return zero, err
	}
	environ := make(map[string]string, len(vars))
	for _, v := range vars {
		if val := getenv(v.Name); val != "" {
			environ[v.Name] = val
		}
	}
	cfg, err := env.ParseAsWithOptions[T](env.Options{Environment: environ})
	if err != nil {
		return zero, fmt.Errorf("configuration: %w", explain[T](err, environ))
	}
	return cfg, nil
}

// explain rewrites the library's parse errors, which name Go struct fields,
// into ones that name the environment variable and the value given.
func explain[T any](err error, environ map[string]string) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	keys := map[string]string{} // struct field name → variable name
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if tag, ok := f.Tag.Lookup("env"); ok {
				keys[f.Name], _, _ = strings.Cut(tag, ",")
			} else if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type) // settings shared by embedding (service.Common)
			}
		}
	}
	walk(reflect.TypeFor[T]())
	var msgs []string
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) && keys[pe.Name] != "" {
			k := keys[pe.Name]
			msgs = append(msgs, fmt.Sprintf("%s=%q: %v", k, environ[k], pe.Err))
			continue
		}
		msgs = append(msgs, e.Error())
	}
	return errors.New(strings.Join(msgs, "; "))
}

// Var describes one environment variable a configuration reads.
type Var struct {
	Name    string
	Default string
}

// Vars lists the environment variables T reads, sorted by name. Tests use it
// to check that docs/configuration.md and docker-compose.yml name only real variables.
func Vars[T any]() ([]Var, error) {
	var cfg T
	params, err := env.GetFieldParams(&cfg)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	vars := make([]Var, 0, len(params))
	for _, p := range params {
		vars = append(vars, Var{Name: p.Key, Default: p.DefaultValue})
	}
	sort.Slice(vars, func(i, j int) bool { return vars[i].Name < vars[j].Name })
	return vars, nil
}
