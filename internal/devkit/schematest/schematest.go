// Package schematest helps tests of schema evolution: a scratch future
// version of the order event (testdata/order_event.future.avsc: a new
// state, SHIPPED, in both enums and a new optional field, tracking_number)
// and the record a producer of any version writes for a domain event.
package schematest

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/ordersonkafka/orders/internal/order"
	"github.com/ordersonkafka/orders/schemas"
)

//go:embed testdata/order_event.future.avsc
var future string

// Future is the scratch future version, numbered after the newest in
// schemas/.
func Future() schemas.Schema {
	return schemas.Schema{Version: schemas.Latest().Version + 1, Text: future}
}

// Shipped is the future state and event type; today's code knows neither.
const Shipped = "SHIPPED"

// Record is ev as the Avro record of any version, by field name (a version
// ignores what it lacks); extra sets or overrides fields, e.g. "status":
// Shipped or "tracking_number": "TRK-1".
func Record(ev order.Event, extra map[string]any) map[string]any {
	o := ev.Order
	items := make([]map[string]any, len(o.Items))
	for i, it := range o.Items {
		items[i] = map[string]any{"sku": it.SKU, "quantity": int(it.Quantity), "unit_price_minor": it.UnitPriceMinor}
	}
	opt := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	r := map[string]any{
		"event_id": ev.ID.String(), "event_type": string(ev.Type), "order_id": o.ID.String(), "version": o.Version,
		"status": strings.ToUpper(string(o.Status)), "occurred_at": ev.OccurredAt, "customer_id": o.CustomerID,
		"currency": o.Currency, "items": items, "total_minor": o.TotalMinor, "created_at": o.CreatedAt,
		"updated_at": o.UpdatedAt, "payment_reference": opt(o.PaymentReference), "cancel_reason": opt(o.CancelReason),
		"refund_reason": opt(o.RefundReason), "tracking_number": nil,
	}
	for k, v := range extra {
		r[k] = v
	}
	return r
}

// Encode writes record with s, unframed.
func Encode(s schemas.Schema, record map[string]any) ([]byte, error) {
	parsed, err := avro.ParseWithCache(s.Text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, err
	}
	return avro.Marshal(parsed, record)
}

// Register registers text under subject at the registry at url, as a
// producer of that version would (the registry judges it under the
// subject's level), and returns its ID; a refusal fails tb.
func Register(tb testing.TB, url, subject, text string) uint32 {
	tb.Helper()
	body, _ := json.Marshal(map[string]string{"schema": text})
	resp, err := http.Post(url+"/subjects/"+subject+"/versions", "application/vnd.schemaregistry.v1+json", bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		ID      uint32 `json:"id"`
		Message string `json:"message"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&got)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("the registry refused the schema: %d %s", resp.StatusCode, got.Message)
	}
	return got.ID
}

// Frame is body in the Confluent wire format with schema id.
func Frame(id uint32, body []byte) []byte {
	return append(binary.BigEndian.AppendUint32([]byte{0}, id), body...)
}
