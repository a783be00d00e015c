package health_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/ordersonkafka/orders/internal/platform/health"
)

// A condition logs one line when it starts and one when it ends, however
// often it is set, or its reason changes, meanwhile.
func TestAConditionLogsItsStartAndItsEndOnce(t *testing.T) {
	var buf bytes.Buffer
	c := health.NewCondition("outbox_relay", slog.New(slog.NewTextHandler(&buf, nil)))
	c.Set(nil)
	if buf.Len() != 0 || c.Degraded() {
		t.Fatalf("a condition that never held logged %q", buf.String())
	}
	for _, reason := range []string{"1 row waits", "1 row waits", "2 rows wait"} {
		c.Set(errors.New(reason))
	}
	if err := c.Check(context.Background()); err == nil || err.Error() != "2 rows wait" {
		t.Errorf("Check = %v, want the last reason", err)
	}
	c.Set(nil)
	c.Set(nil)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 ||
		!strings.Contains(lines[0], "level=WARN msg=degraded check=outbox_relay") || !strings.Contains(lines[0], `reason="1 row waits"`) ||
		!strings.Contains(lines[1], `level=INFO msg="no longer degraded" check=outbox_relay lasted=`) {
		t.Errorf("logged:\n%s\nwant one warning when it started and one line when it ended", buf.String())
	}
	if c.Degraded() {
		t.Error("still degraded once set to nil")
	}
}
