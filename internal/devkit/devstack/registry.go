package devstack

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/schemaregistry"
)

// RegistryServer serves an in-memory Schema Registry over HTTP. Stop and
// Start simulate an outage: the port refuses connections in between, and the
// registry's data survives.
type RegistryServer struct {
	reg  *schemaregistry.Registry
	addr string // the resolved address, reused by Start

	mu  sync.Mutex
	srv *http.Server
}

// StartRegistry serves a new registry on addr ("127.0.0.1:0" picks a port).
func StartRegistry(addr string) (*RegistryServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("schema registry: listen on %s: %w", addr, err)
	}
	r := &RegistryServer{reg: schemaregistry.New(), addr: ln.Addr().String()}
	r.serve(ln)
	return r, nil
}

func (r *RegistryServer) serve(ln net.Listener) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.srv = &http.Server{Handler: r.reg, ReadHeaderTimeout: 5 * time.Second}
	srv := r.srv
	go func() { _ = srv.Serve(ln) }()
}

// URL is the registry's base URL.
func (r *RegistryServer) URL() string {
	host, port, _ := net.SplitHostPort(r.addr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Stop closes the listener and every connection: clients get "connection
// refused" until Start.
func (r *RegistryServer) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		_ = r.srv.Close()
		r.srv = nil
	}
}

// Start serves again on the same address, with the same data.
func (r *RegistryServer) Start() error {
	r.mu.Lock()
	running := r.srv != nil
	r.mu.Unlock()
	if running {
		return errors.New("schema registry: already running")
	}
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		return fmt.Errorf("schema registry: listen on %s again: %w", r.addr, err)
	}
	r.serve(ln)
	return nil
}

// Close stops the server for good.
func (r *RegistryServer) Close() { r.Stop() }
