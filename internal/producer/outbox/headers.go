package outbox

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/event/envelope"
)

// KafkaHeaders returns the Kafka headers of an outbox row's headers column,
// in envelope.HeaderOrder, or an error if it is not a JSON object of strings.
func KafkaHeaders(headers []byte) ([]kafka.Header, error) {
	if out, ok := plainHeaders(headers); ok {
		return out, nil
	}
	var m map[string]string
	if err := json.Unmarshal(headers, &m); err != nil {
		return nil, err
	}
	var out []kafka.Header
	for _, k := range envelope.HeaderOrder {
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
	var values [len(envelope.HeaderOrder)][]byte
	var found [len(envelope.HeaderOrder)]bool
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
			for k, name := range envelope.HeaderOrder {
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
	for k := range envelope.HeaderOrder {
		size += len(values[k])
	}
	buf := make([]byte, 0, size)
	out := make([]kafka.Header, 0, len(envelope.HeaderOrder))
	for k, name := range envelope.HeaderOrder {
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
