package orderapi_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/stacktest"
)

// ADMIN_ADDR serves pprof on a listener of its own; the API's listener
// never does.
func TestPprofOnlyOnTheAdminListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := ln.Addr().String()
	ln.Close()
	s := newStack(t)
	api := s.start(t, "ADMIN_ADDR", admin)
	stacktest.WaitFor(t, "the admin listener", wait, func() bool { return stacktest.Listening(admin) })
	for url, want := range map[string]int{"http://" + admin + "/debug/pprof/cmdline": 200, "http://" + admin + "/debug/pprof/heap?debug=1": 200, api.url + "/debug/pprof/": 404} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", url, resp.StatusCode, want)
		}
	}
	// A profile being taken when the service stops does not hold it up, nor
	// make the stop a failure.
	wrote := make(chan struct{})
	req, _ := http.NewRequest("GET", "http://"+admin+"/debug/pprof/profile?seconds=30", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) }}))
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-wrote
	stacktest.WaitFor(t, "the profile to be under way", wait, func() bool {
		resp, err := http.Get("http://" + admin + "/debug/pprof/goroutine?debug=1")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "pprof.Profile")
	})
	start := time.Now()
	if err := api.stop(); err != nil {
		t.Fatalf("stop with a profile in flight: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %s with a profile in flight", d)
	}
	if stacktest.Listening(admin) {
		t.Error("the admin listener outlives the service")
	}
}
