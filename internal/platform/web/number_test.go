package web_test

import (
	"testing"

	"github.com/ordersonkafka/orders/internal/platform/web"
)

// A query number is taken written one way only: plain decimal digits.
func TestPositiveIntTakesOnlyCanonicalDigits(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1", 1, true}, {"50", 50, true}, {"200", 200, true}, {"999999999999999999", 999999999999999999, true},
		{"", 0, false}, {"0", 0, false}, {"+5", 0, false}, {"-5", 0, false}, {"05", 0, false}, {" 5", 0, false},
		{"5 ", 0, false}, {"5.0", 0, false}, {"1e3", 0, false}, {"0x10", 0, false}, {"１", 0, false},
		{"1000000000000000000", 0, false}, // 19 digits: past what int64 surely holds
	} {
		got, ok := web.PositiveInt(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("PositiveInt(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
