package web

import (
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/order"
)

// Order is the JSON representation of an order in both services' APIs:
// order-api's answers, and order-consumer's projection (which adds when the
// event occurred and was applied).
type Order struct {
	ID               uuid.UUID    `json:"id"`
	CustomerID       string       `json:"customer_id"`
	Currency         string       `json:"currency"`
	Items            []order.Item `json:"items"`
	TotalMinor       int64        `json:"total_minor"`
	Status           order.Status `json:"status"`
	Version          int64        `json:"version"`
	PaymentReference string       `json:"payment_reference,omitempty"`
	CancelReason     string       `json:"cancel_reason,omitempty"`
	RefundReason     string       `json:"refund_reason,omitempty"`
	CreatedAt        time.Time    `json:"created_at"`
	UpdatedAt        time.Time    `json:"updated_at"`
}

// OrderOf is o's representation.
func OrderOf(o order.Order) Order {
	items := o.Items
	if items == nil {
		items = []order.Item{}
	}
	return Order{
		ID: o.ID, CustomerID: o.CustomerID, Currency: o.Currency, Items: items, TotalMinor: o.TotalMinor,
		Status: o.Status, Version: o.Version, PaymentReference: o.PaymentReference,
		CancelReason: o.CancelReason, RefundReason: o.RefundReason, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	}
}

// ETag is the entity tag of an order at version: `"<version>"`, strong, the
// same in both APIs for the same version of the same order.
func ETag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }
