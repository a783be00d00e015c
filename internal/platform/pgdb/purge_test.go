package pgdb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/platform/pgdb"
)

func TestPurgerRunsStepsUntilABatchIsNotFull(t *testing.T) {
	left := int64(7)
	var limits []int
	p := pgdb.Purger{Name: "rows", Interval: time.Hour, Batch: 3, Step: func(_ context.Context, limit int) (int64, error) {
		limits = append(limits, limit)
		n := min(left, int64(limit))
		left -= n
		return n, nil
	}}
	n, err := p.Once(context.Background())
	if err != nil || n != 7 || len(limits) != 3 {
		t.Fatalf("purged %d in %d steps (%v), want 7 in 3", n, len(limits), err)
	}
	p.Step = func(context.Context, int) (int64, error) { return 0, errors.New("down") }
	if _, err := p.Once(context.Background()); err == nil {
		t.Fatal("a failing step was not reported")
	}
	if err := (pgdb.Purger{Name: "x"}).Run(context.Background()); err == nil {
		t.Fatal("a purger without a step ran")
	}
}
