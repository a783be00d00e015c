package telemetry

import (
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Vars are the standard OpenTelemetry environment variables the services
// honour. They are read through the getenv a service is given, never the
// process environment behind it, and passed to the SDK and its OTLP/HTTP
// exporter as explicit options; an unusable value is refused at start-up,
// naming the variable, as the services' own settings are. (The SDK's other,
// undocumented variables, OTEL_BSP_* and the exporter's TLS and compression
// ones, it still reads itself.) They are not part of the services' Config
// structs; tests use this list to check that docker-compose.yml and the
// docs name only variables that are read.
var Vars = []string{
	"OTEL_SDK_DISABLED",
	"OTEL_SERVICE_NAME",
	"OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_TRACES_EXPORTER",
	"OTEL_TRACES_SAMPLER",
	"OTEL_TRACES_SAMPLER_ARG",
	"OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_HEADERS",
	"OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_EXPORTER_OTLP_PROTOCOL",
	"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_TIMEOUT",
	"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
}

// first returns the first of the variables that is set, and its name.
func first(getenv func(string) string, names ...string) (name, value string) {
	for _, n := range names {
		if v := strings.TrimSpace(getenv(n)); v != "" {
			return n, v
		}
	}
	return names[len(names)-1], ""
}

// otlpOptions are the OTLP/HTTP exporter's endpoint, headers and timeout as
// getenv gives them (the signal's own variable first), each given even when
// unset, so the exporter's own reading of the process environment is
// overridden.
func otlpOptions(getenv func(string) string) ([]otlptracehttp.Option, error) {
	endpoint := "http://localhost:4318/v1/traces"
	name, v := first(getenv, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
	if v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%s=%q: want an http:// or https:// URL", name, v)
		}
		if name == "OTEL_EXPORTER_OTLP_ENDPOINT" {
			u.Path = path.Join(u.Path, "v1/traces") // the generic endpoint gets the signal's path
			if !strings.HasPrefix(u.Path, "/") {
				u.Path = "/" + u.Path
			}
		}
		endpoint = u.String() // the signal's own endpoint is used as it is
	}
	headers := map[string]string{}
	if name, v := first(getenv, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"); v != "" {
		for i, kv := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(kv, "=")
			k = strings.TrimSpace(k)
			dec, err := url.PathUnescape(strings.TrimSpace(val))
			if !ok || k == "" || err != nil {
				// Header values are often credentials: never shown.
				return nil, fmt.Errorf("%s: entry %d is not key=value with a percent-encoded value", name, i+1)
			}
			headers[k] = dec
		}
	}
	timeout := 10 * time.Second
	if name, v := first(getenv, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return nil, fmt.Errorf("%s=%q: want a positive number of milliseconds", name, v)
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	return []otlptracehttp.Option{otlptracehttp.WithEndpointURL(endpoint), otlptracehttp.WithHeaders(headers),
		otlptracehttp.WithTimeout(timeout)}, nil
}

// resourceAttributes are OTEL_RESOURCE_ATTRIBUTES (key=value pairs, values
// percent-encoded) followed by OTEL_SERVICE_NAME, which wins.
func resourceAttributes(getenv func(string) string) ([]attribute.KeyValue, error) {
	var attrs []attribute.KeyValue
	if v := strings.TrimSpace(getenv("OTEL_RESOURCE_ATTRIBUTES")); v != "" {
		for _, kv := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(kv, "=")
			k = strings.TrimSpace(k)
			dec, err := url.PathUnescape(strings.TrimSpace(val))
			if !ok || k == "" || err != nil {
				return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %q is not key=value (values percent-encoded)", kv)
			}
			attrs = append(attrs, attribute.String(k, dec))
		}
	}
	if v := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); v != "" {
		attrs = append(attrs, semconv.ServiceName(v))
	}
	return attrs, nil
}

// samplerFrom is OTEL_TRACES_SAMPLER with OTEL_TRACES_SAMPLER_ARG, the
// specification's default (parentbased_always_on) when unset.
func samplerFrom(getenv func(string) string) (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio from 0 to 1", arg)
		}
		return r, nil
	}
	given := getenv("OTEL_TRACES_SAMPLER")
	name := strings.ToLower(strings.TrimSpace(given))
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio", "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		if name == "traceidratio" {
			return sdktrace.TraceIDRatioBased(r), nil
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER=%q: want always_on, always_off, traceidratio or their parentbased_ forms", given)
}
