// Package logging builds the services' slog loggers: JSON lines by default
// (for log shippers), text for humans at a terminal. Lines logged with a
// context carry that context's trace_id, span_id and correlation_id.
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// New returns a logger writing to w at level ("debug", "info", "warn",
// "error") in format ("json" or "text").
func New(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(contextHandler{slog.NewJSONHandler(w, opts)}), nil
	case "text":
		return slog.New(contextHandler{slog.NewTextHandler(w, opts)}), nil
	}
	return nil, fmt.Errorf("log format %q: want json or text", format)
}

// Check reports what is wrong with the LOG_LEVEL and LOG_FORMAT settings,
// naming the variables, for the services' Config.Validate.
func Check(level, format string) error {
	var errs []error
	switch level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("LOG_LEVEL=%q must be debug, info, warn or error", level))
	}
	switch format {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("LOG_FORMAT=%q must be json or text", format))
	}
	return errors.Join(errs...)
}
