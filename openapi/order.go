package openapi

import (
	"math/big"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/order"
)

// Order is the JSON form of an order, the Order schema of order-api.yaml:
// order-api's answers, and the part of order-consumer's ProjectedOrder that
// is the same order.
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

// OrderOf is o's JSON form.
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

// ProjectedOrder is the JSON form of an order as order-consumer projects
// it, the ProjectedOrder schema of order-consumer.yaml: order-api's form of
// the same order, plus when its newest event occurred and was applied.
type ProjectedOrder struct {
	Order
	LastEventAt time.Time `json:"last_event_at"`
	ProjectedAt time.Time `json:"projected_at"`
}

// ProjectedOrderOf is p's JSON form.
func ProjectedOrderOf(p order.Projection) ProjectedOrder {
	return ProjectedOrder{Order: OrderOf(p.Order), LastEventAt: p.LastEventAt, ProjectedAt: p.ProjectedAt}
}

// CustomerSummary is the JSON form of what one customer's orders come to,
// the CustomerSummary schema of order-consumer.yaml: how many orders are in
// each status, and their totals per currency in each status, in minor
// units. A total is a JSON integer of any size (*big.Int encodes as one):
// a customer's orders may sum past 2^63.
type CustomerSummary struct {
	CustomerID string                               `json:"customer_id"`
	Orders     map[order.Status]int64               `json:"orders"`
	Totals     map[order.Status]map[string]*big.Int `json:"totals"`
}

// CustomerSummaryOf is c's JSON form.
func CustomerSummaryOf(c order.CustomerOrders) CustomerSummary {
	return CustomerSummary{CustomerID: c.CustomerID, Orders: c.Orders, Totals: c.Totals}
}
