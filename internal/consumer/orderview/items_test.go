package orderview

import (
	"encoding/json"
	"testing"

	"github.com/ordersonkafka/orders/internal/order"
)

// appendItems writes what encoding/json writes for the same items, which
// the projection stored before and the read API decodes: quotes,
// backslashes, control characters, non-ASCII text, no items at all.
func TestAppendItemsIsWhatEncodingJSONWrites(t *testing.T) {
	for _, items := range [][]order.Item{
		nil,
		{},
		{{SKU: "BOOK-1", Quantity: 2, UnitPriceMinor: 1250}},
		{{SKU: `a"b\c`, Quantity: 1, UnitPriceMinor: 1}, {SKU: "tab\there\nnew\x01\x1f", Quantity: 2147483647, UnitPriceMinor: 9223372036854775807}},
		{{SKU: "üñíçødé 日本 \u2028\u2029 <&>", Quantity: 3, UnitPriceMinor: 5}},
	} {
		want := items
		if want == nil {
			want = []order.Item{}
		}
		w, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var got, back []order.Item
		if err := json.Unmarshal(appendItems(nil, items), &got); err != nil {
			t.Fatalf("%q: not JSON: %v", appendItems(nil, items), err)
		}
		if err := json.Unmarshal(w, &back); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(back) {
			t.Fatalf("%q decodes to %v, want %v", appendItems(nil, items), got, back)
		}
		for i := range got {
			if got[i] != back[i] {
				t.Errorf("%q decodes to %v, want %v", appendItems(nil, items), got, back)
			}
		}
	}
}

func FuzzAppendItems(f *testing.F) {
	f.Add("sku", int32(1), int64(1))
	f.Add("a\"\\\x00\x7f", int32(-5), int64(-9))
	f.Fuzz(func(t *testing.T, sku string, q int32, p int64) {
		items := []order.Item{{SKU: sku, Quantity: q, UnitPriceMinor: p}}
		var got []order.Item
		b := appendItems(nil, items)
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		// Invalid UTF-8 never reaches here (CheckEvent); json reads it as U+FFFD.
		want, _ := json.Marshal(items)
		var back []order.Item
		_ = json.Unmarshal(want, &back)
		if got[0] != back[0] {
			t.Fatalf("%q decodes to %+v, want %+v", b, got[0], back[0])
		}
	})
}
