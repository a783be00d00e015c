package eventcodec

// CheckBounds exposes checkBounds to the tests of hostile bodies under
// schemas other than the order event's.
var CheckBounds = checkBounds

// Permanent is Class's verdict alone, for tests.
func Permanent(err error) bool { _, p := Class(err); return p }
