package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/consumer/deadletter"
	"github.com/ordersonkafka/orders/internal/devkit/kafkatest"
	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
)

// The operator commands, as a user runs them: list in both formats, replay
// refusing without a selection, replay by key.
func TestDLQCommands(t *testing.T) {
	k, getenv := operatorEnv(t, nil)
	ctx := context.Background()
	var dls []deadletter.DeadLetter
	for i, key := range []string{"order-a", "order-b"} {
		dls = append(dls, deadletter.DeadLetter{
			Msg:   kafka.Message{Topic: "order-events", Partition: 2, Offset: int64(10 + i), Time: time.Now(), Key: []byte(key), Value: []byte("garbage-" + key)},
			Class: "eventcodec.ErrNotFramed", Err: errorString("not in the Confluent wire format"),
		})
	}
	publish(t, k, dls)

	var out bytes.Buffer
	if err := run(ctx, []string{"dlq", "list"}, getenv, &out, &out); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "order-a") || !strings.Contains(s, "order-events/2@10") || !strings.Contains(s, "eventcodec.ErrNotFramed") || !strings.Contains(s, "2 dead letters") {
		t.Errorf("table:\n%s", s)
	}
	out.Reset()
	if err := run(ctx, []string{"dlq", "list", "-json", "-key", "order-b"}, getenv, &out, &out); err != nil {
		t.Fatal(err)
	}
	var entries []deadletter.Entry
	if err := json.Unmarshal(out.Bytes(), &entries); err != nil || len(entries) != 1 || entries[0].Key != "order-b" || entries[0].OriginalOffset != 11 {
		t.Fatalf("json %s (%v)", out.String(), err)
	}

	if err := run(ctx, []string{"dlq", "replay"}, getenv, &out, &out); err == nil || !strings.Contains(err.Error(), "-all") {
		t.Fatalf("replay without a selection: %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"dlq", "replay", "-key", "order-a"}, getenv, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"replayed":1`) {
		t.Errorf("replay output %s", out.String())
	}
	msgs := kafkatest.WaitForCount(t, k.Brokers()[0], "order-events", 1, 10*time.Second)
	if len(msgs) != 1 || string(msgs[0].Value) != "garbage-order-a" || string(msgs[0].Key) != "order-a" {
		t.Fatalf("replayed %v", msgs)
	}
	if err := run(ctx, []string{"dlq", "frobnicate"}, getenv, &out, &out); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("unknown subcommand: %v", err)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// health is the container health check: it asks /readyz on HTTP_ADDR's
// port (internal/platform/healthcheck tests the answers; this, the wiring).
func TestHealthUsesHTTPAddr(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	var out bytes.Buffer
	ok := run(context.Background(), []string{"health"}, func(k string) string { return map[string]string{"HTTP_ADDR": ":" + u.Port()}[k] }, &out, &out)
	bad := run(context.Background(), []string{"health"}, func(k string) string { return map[string]string{"HTTP_ADDR": ":1"}[k] }, &out, &out)
	if ok != nil || bad == nil {
		t.Errorf("health against the server: %v; against nothing: %v", ok, bad)
	}
}

// A DATABASE_URL naming no database would be migrated into the database
// PostgreSQL falls back to, the one named like the user. Here that is a
// database made for the test, so a migration shows there; the service and
// each command that opens the database refuse before touching it.
func TestRunRefusesADatabaseURLThatNamesNoDatabase(t *testing.T) {
	for _, args := range [][]string{nil, {"migrate"}, {"rebuild"}, {"dlq", "list"}} {
		t.Run(strings.Join(append([]string{"order-consumer"}, args...), " "), func(t *testing.T) {
			db, dsn := pgtest.MustUserNamedDB(t)
			env := map[string]string{"DATABASE_URL": dsn, "HTTP_ADDR": "127.0.0.1:0"}
			// Bounds a regression in which the service starts and serves.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var out bytes.Buffer
			err := run(ctx, args, func(k string) string { return env[k] }, &out, &out)
			if err == nil || !strings.Contains(err.Error(), "DATABASE_URL=") || !strings.Contains(err.Error(), "names no database") {
				t.Errorf("run = %v, want it to name DATABASE_URL; output:\n%s", err, out.String())
			}
			if tables := db.Tables(t); len(tables) > 0 {
				t.Errorf("the database named like the user was migrated: %v", tables)
			}
		})
	}
}
