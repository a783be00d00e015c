package kafkatest

import "testing"

// Vectors computed with the Java client (kafka-clients Utils.murmur2 and
// toPositive), as published in its own test suite (UtilsTest.testMurmur2)
// and widely reproduced by other clients' partitioner tests.
func TestMurmur2MatchesJavaVectors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := int32(murmur2([]byte(tc.in))); got != tc.want {
			t.Errorf("murmur2(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
