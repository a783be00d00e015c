package order

import (
	"math/big"
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

// CustomerOrders is what one customer's orders come to in a projection: how
// many are in each status, and what they add up to per currency in each
// status. Totals are big integers: each order's total fits in an int64 of
// minor units, their sum need not.
type CustomerOrders struct {
	CustomerID string
	Orders     map[Status]int64
	Totals     map[Status]map[string]*big.Int // status → currency → sum of total_minor
}
