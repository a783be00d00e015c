package text_test

import (
	"testing"

	"github.com/ordersonkafka/orders/internal/text"
)

func TestQuoteCutsLongInputOnARuneBoundary(t *testing.T) {
	if got := text.Quote("short", 10); got != `"short"` {
		t.Errorf("got %s", got)
	}
	if got := text.Quote("ééééé", 3); got != `"é"…` {
		t.Errorf("got %s", got)
	}
}

func TestValidIsUTF8WithoutNUL(t *testing.T) {
	for s, want := range map[string]bool{
		"":             true,
		"café":         true,
		"a\x00b":       false,
		"\x00":         false,
		"caf\xc3":      false,
		"\xed\xa0\x80": false, // an encoded surrogate
		"\xc0\xaf":     false, // an overlong encoding
	} {
		if got := text.Valid(s); got != want {
			t.Errorf("Valid(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCutKeepsTextAsItIsAndCutsAtARuneBoundary(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"BREW", 32, "BREW"},
		{`say "hi"`, 32, `say "hi"`},
		{"ééé", 3, "é…"}, // é is 2 bytes: the second does not fit whole
	} {
		if got := text.Cut(c.in, c.max); got != c.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}
