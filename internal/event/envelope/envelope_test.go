package envelope_test

import (
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/event/envelope"
)

const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

// The consumer believes a traceparent or correlation_id only if it is at
// most MaxTraceHeader bytes of valid text; anything else is ignored, as are
// other headers.
func TestTraceHeadersBounds(t *testing.T) {
	at := strings.Repeat("a", envelope.MaxTraceHeader)
	over := at + "a"
	for _, tc := range []struct {
		name     string
		headers  []kafka.Header
		tp, corr string
	}{
		{"none", nil, "", ""},
		{"both", []kafka.Header{{Key: "traceparent", Value: []byte(traceparent)}, {Key: "correlation_id", Value: []byte("c")}}, traceparent, "c"},
		{"at the bound", []kafka.Header{{Key: "traceparent", Value: []byte(at)}, {Key: "correlation_id", Value: []byte(at)}}, at, at},
		{"over the bound", []kafka.Header{{Key: "traceparent", Value: []byte(over)}, {Key: "correlation_id", Value: []byte(over)}}, "", ""},
		{"invalid UTF-8", []kafka.Header{{Key: "correlation_id", Value: []byte("c\xff")}}, "", ""},
		{"NUL", []kafka.Header{{Key: "traceparent", Value: []byte("00-\x00")}}, "", ""},
		{"names are case-sensitive", []kafka.Header{{Key: "Traceparent", Value: []byte(traceparent)}, {Key: "CORRELATION_ID", Value: []byte("c")}}, "", ""},
		{"other headers are ignored", []kafka.Header{{Key: "event_id", Value: []byte("e")}, {Key: "dlq_original_topic", Value: []byte("t")}}, "", ""},
		{"the last believable one wins", []kafka.Header{{Key: "correlation_id", Value: []byte("a")}, {Key: "correlation_id", Value: []byte("b")}, {Key: "correlation_id", Value: []byte(over)}}, "", "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, corr := envelope.TraceHeaders(tc.headers)
			if tp != tc.tp || corr != tc.corr {
				t.Errorf("got %.20q %.20q, want %.20q %.20q", tp, corr, tc.tp, tc.corr)
			}
		})
	}
}
