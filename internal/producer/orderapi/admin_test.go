package orderapi_test

import (
	"net"
	"net/http"
	"testing"

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
	if err := api.stop(); err != nil {
		t.Fatal(err)
	}
	if stacktest.Listening(admin) {
		t.Error("the admin listener outlives the service")
	}
}
