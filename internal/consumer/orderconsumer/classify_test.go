package orderconsumer_test

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ordersonkafka/orders/internal/consumer/orderconsumer"
	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/order"
)

// eventsDoc holds the table of DLQ classes.
const eventsDoc = "../../../docs/events.md"

// Every permanent failure has a stable class, and the table of DLQ classes
// in docs/events.md lists exactly those: a user filtering letters or
// alerting on consumer_dlq_published_total{class} can trust it.
func TestEveryDLQClassIsDocumented(t *testing.T) {
	t.Parallel()
	permanent := []error{eventcodec.ErrNotFramed, eventcodec.ErrUnknownSchema, eventcodec.ErrIncompatibleSchema,
		eventcodec.ErrUndecodable, eventcodec.ErrInvalidEvent, eventcodec.ErrUnknownSymbol, &pgconn.PgError{Code: "22003"}}
	for _, rule := range order.EventRules {
		permanent = append(permanent, &order.EventError{Rule: rule})
	}
	classes := map[string]bool{}
	for _, err := range permanent {
		p, class := orderconsumer.Classify(fmt.Errorf("wrapped: %w", err))
		if !p {
			t.Errorf("%v is not permanent", err)
		}
		classes[class] = true
	}
	classes[orderconsumer.ClassParkedTooLong] = true // a parked event that waited too long: the sweeper's
	listed := map[string]bool{}
	for _, c := range orderconsumer.Classes() {
		listed[c] = true
	}
	if !maps.Equal(listed, classes) {
		t.Errorf("Classes() = %v, want the classes Classify gives: %v", listed, classes)
	}
	if p, _ := orderconsumer.Classify(errors.New("connection refused")); p {
		t.Error("an unknown error is permanent")
	}
	doc, err := os.ReadFile(eventsDoc)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `((?:eventcodec|order|projection)\\.[A-Za-z.]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	for c := range classes {
		if !documented[c] {
			t.Errorf("%s's DLQ class table lacks %s", eventsDoc, c)
		}
	}
	for c := range documented {
		if !classes[c] {
			t.Errorf("%s documents DLQ class %s, which nothing produces", eventsDoc, c)
		}
	}
}
