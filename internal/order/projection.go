package order

import (
	"time"

	"github.com/google/uuid"
)

// Projection is an order as a consumer of its events holds it: the state the
// newest applied event carries, and when that event occurred and was applied.
type Projection struct {
	Order       Order     // the state carried by LastEventID
	LastEventID uuid.UUID // the newest event applied
	LastEventAt time.Time // when that event occurred in order-api
	ProjectedAt time.Time // when the consumer's database applied it
}
