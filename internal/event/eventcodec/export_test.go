package eventcodec

// CheckBounds exposes checkBounds to the tests of hostile bodies under
// schemas other than the order event's.
var CheckBounds = checkBounds
