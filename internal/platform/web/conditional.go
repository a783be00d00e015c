package web

import "strconv"

// ETag is the strong entity tag of a representation at version:
// `"<version>"`. Both APIs tag an order so, so the same version of the same
// order has the same tag in both.
func ETag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }
