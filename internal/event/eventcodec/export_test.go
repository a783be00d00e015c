package eventcodec

import "github.com/ordersonkafka/orders/internal/order"

// CheckBounds exposes checkBounds to the tests of hostile bodies under
// schemas other than the order event's.
var CheckBounds = checkBounds

// Permanent is Class's verdict alone, for tests.
func Permanent(err error) bool { _, p := Class(err); return p }

// StatusSymbol and EventTypeSymbol are the Avro symbols the codec writes
// for a status and an event type, and false for one it does not know.
func StatusSymbol(s order.Status) (string, bool) {
	sym, ok := statusSymbols.symbol[s]
	return sym, ok
}

func EventTypeSymbol(t order.EventType) (string, bool) {
	sym, ok := eventTypeSymbols.symbol[t]
	return sym, ok
}

// NewDecoderReading is a Decoder whose reader schema is readerSchema: the
// consumer of a future version.
var NewDecoderReading = newDecoder
