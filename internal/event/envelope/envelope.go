// Package envelope is the contract between the producer and the consumer
// around an event's Avro value: the names of the Kafka headers every event
// carries, the order they are published in, and their reading on the
// consumer's side.
//
// The outbox package writes these headers into an event's outbox row and its
// relay publishes them in HeaderOrder; the consumer reads them back with
// TraceHeaders, which believes only bounded, valid text. The names and their
// order are what docs/events.md documents; they never change. The package
// knows nothing of how the producer stores an event: it imports no database
// driver.
package envelope

import (
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/text"
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

// TraceHeaders returns the traceparent and correlation_id of a message's
// headers, each only if it is at most MaxTraceHeader bytes of valid text
// (text.Valid), and "" otherwise: they come from outside and end up in
// spans and log lines. If a header is repeated, the last believable one wins.
func TraceHeaders(headers []kafka.Header) (traceparent, correlationID string) {
	for _, h := range headers {
		if len(h.Value) > MaxTraceHeader || !text.Valid(string(h.Value)) {
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
