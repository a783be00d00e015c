package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/ordersonkafka/orders/internal/devkit/pgtest"
)

// TestMain lets the test binary stand in for loadgen when -floor starts it
// again as the floor's server.
func TestMain(m *testing.M) {
	if pgURL := os.Getenv(floorServerEnv); pgURL != "" {
		if err := floorServer(pgURL); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// -floor measures both routes of its own server, started as a process of
// its own: each run is answered without errors, at about the rate asked,
// and reports the server's CPU per request.
func TestFloor(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-floor", "-rate", "200", "-duration", "1s", "-pg-url", pgtest.ServerURL(), "-json"}, &out); err != nil {
		t.Fatal(err)
	}
	var rep floorReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(rep.Runs) != 2 || rep.Runs[0].Route != "/db" || rep.Runs[1].Route != "/nodb" {
		t.Fatalf("runs %+v", rep.Runs)
	}
	for _, r := range rep.Runs {
		if r.Requests < 100 || r.Errors != 0 || r.MicrosPerRequest <= 0 {
			t.Errorf("%s: %+v, want about 200 requests without errors and some CPU per request", r.Route, r)
		}
	}
}
