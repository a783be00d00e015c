// Package envelope is the contract between the producer and the consumer
// around an event's Avro value: the Kafka header names and their parsing.
//
// The outbox package writes an event's headers into its outbox row, the relay
// turns the row's headers into the message's Kafka headers in HeaderOrder
// (KafkaHeaders), and the consumer reads them back (TraceHeaders). The names
// and their order are what docs/events.md documents; they never change.
package envelope

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/order"
)

// The Kafka headers of every event.
const (
	HeaderEventID       = "event_id"       // the event's UUID, the same on a redelivered duplicate
	HeaderEventType     = "event_type"     // the Avro enum symbol, order.EventType
	HeaderTraceparent   = "traceparent"    // W3C trace context of the request that caused the event
	HeaderCorrelationID = "correlation_id" // the request's correlation ID
)

// HeaderOrder is the order of the headers on every message the relay
// publishes. A header an outbox row lacks is left out; a name not listed
// here is never published.
var HeaderOrder = [...]string{HeaderEventID, HeaderEventType, HeaderTraceparent, HeaderCorrelationID}

// MaxTraceHeader is the longest traceparent or correlation_id TraceHeaders
// believes: a W3C traceparent is 55 bytes, and order-api makes up a
// correlation ID past 128.
const MaxTraceHeader = 256

// KafkaHeaders returns the Kafka headers of an outbox row's headers column,
// in HeaderOrder, or an error if it is not a JSON object of strings.
func KafkaHeaders(headers []byte) ([]kafka.Header, error) {
	if out, ok := plainHeaders(headers); ok {
		return out, nil
	}
	var m map[string]string
	if err := json.Unmarshal(headers, &m); err != nil {
		return nil, err
	}
	var out []kafka.Header
	for _, k := range HeaderOrder {
		if v, ok := m[k]; ok {
			out = append(out, kafka.Header{Key: k, Value: []byte(v)})
		}
	}
	return out, nil
}

// plainHeaders reads the headers column in the form the relay meets: a flat
// JSON object whose keys and values are strings with no escapes, as
// PostgreSQL prints the jsonb the store wrote. It returns what KafkaHeaders
// would, without json.Unmarshal and its map (the relay's largest cost per
// row when draining a backlog); ok is false for anything else — an escape,
// a control character, invalid UTF-8, a value that is not a string, any
// other shape — which json.Unmarshal then reads, or refuses, as before. As
// with the map, a repeated key's last value wins.
func plainHeaders(b []byte) ([]kafka.Header, bool) {
	var values [len(HeaderOrder)][]byte
	var found [len(HeaderOrder)]bool
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			key, next, ok := plainString(b, i)
			if !ok {
				return nil, false
			}
			i = skipSpace(b, next)
			if i >= len(b) || b[i] != ':' {
				return nil, false
			}
			value, next, ok := plainString(b, skipSpace(b, i+1))
			if !ok {
				return nil, false
			}
			for k, name := range HeaderOrder {
				if string(key) == name {
					values[k], found[k] = value, true
				}
			}
			i = skipSpace(b, next)
			if i >= len(b) {
				return nil, false
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return nil, false
			}
			i = skipSpace(b, i+1)
		}
	}
	if skipSpace(b, i) != len(b) {
		return nil, false
	}
	// The values are copied (b is the caller's), into one allocation.
	size := 0
	for k := range HeaderOrder {
		size += len(values[k])
	}
	buf := make([]byte, 0, size)
	out := make([]kafka.Header, 0, len(HeaderOrder))
	for k, name := range HeaderOrder {
		if found[k] {
			start := len(buf)
			buf = append(buf, values[k]...)
			out = append(out, kafka.Header{Key: name, Value: buf[start:len(buf):len(buf)]})
		}
	}
	if len(out) == 0 {
		return nil, true // as the map's version: no headers is a nil slice
	}
	return out, true
}

// plainString reads the JSON string starting at b[i] if it has no escape,
// no control character and is valid UTF-8; it returns its contents and the
// index after its closing quote.
func plainString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	end := i + 1
	for ; end < len(b) && b[end] != '"'; end++ {
		if b[end] == '\\' || b[end] < 0x20 {
			return nil, 0, false
		}
	}
	if end >= len(b) || !utf8.Valid(b[i+1:end]) {
		return nil, 0, false
	}
	return b[i+1 : end], end + 1, true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// TraceHeaders returns the traceparent and correlation_id of a message's
// headers, each only if it is at most MaxTraceHeader bytes of valid text
// (order.ValidText), and "" otherwise: they come from outside and end up in
// spans and log lines. If a header is repeated, the last believable one wins.
func TraceHeaders(headers []kafka.Header) (traceparent, correlationID string) {
	for _, h := range headers {
		if len(h.Value) > MaxTraceHeader || !order.ValidText(string(h.Value)) {
			continue
		}
		switch h.Key {
		case HeaderTraceparent:
			traceparent = string(h.Value)
		case HeaderCorrelationID:
			correlationID = string(h.Value)
		}
	}
	return traceparent, correlationID
}
