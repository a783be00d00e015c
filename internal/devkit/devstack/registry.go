package devstack

import (
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ordersonkafka/orders/internal/devkit/schemaregistry"
)

// RegistryServer serves an in-memory Schema Registry over HTTP. Stop and
// Start simulate an outage: the port refuses connections in between, and the
// registry's data survives.
type RegistryServer struct {
	reg     *schemaregistry.Registry
	addr    string // the resolved address, reused by Start
	handler http.Handler
	tls     *tls.Config

	mu  sync.Mutex
	srv *http.Server
}

// StartRegistry serves a new registry on addr ("127.0.0.1:0" picks a port).
func StartRegistry(addr string) (*RegistryServer, error) {
	return StartRegistryWith(RegistryConfig{Addr: addr})
}

// RegistryConfig configures StartRegistryWith.
type RegistryConfig struct {
	Addr string // "127.0.0.1:0" picks a port
	// TLS, when set, serves HTTPS only.
	TLS *tls.Config
	// BasicAuthUserInfo, when set ("user:password", Confluent's
	// basic.auth.user.info), refuses any request without those
	// credentials with 401, as a secured Confluent registry does.
	BasicAuthUserInfo string
	// StatePath, when set, keeps the registry's state in that file: read at
	// start when it exists, and written (whole, atomically) before any
	// change is acknowledged, so schema IDs survive a restart. A change
	// that cannot be saved answers 500, as Confluent's registry does when
	// it cannot write its _schemas topic.
	StatePath string
}

// StartRegistryWith serves a new registry as cfg says.
func StartRegistryWith(cfg RegistryConfig) (*RegistryServer, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("schema registry: listen on %s: %w", cfg.Addr, err)
	}
	reg := schemaregistry.New()
	if cfg.StatePath != "" {
		if reg, err = loadRegistry(cfg.StatePath); err != nil {
			_ = ln.Close()
			return nil, err
		}
	}
	r := &RegistryServer{reg: reg, addr: ln.Addr().String(), tls: cfg.TLS}
	r.handler = r.reg
	if cfg.StatePath != "" {
		r.handler = persistChanges(reg, cfg.StatePath, r.handler)
	}
	if cfg.BasicAuthUserInfo != "" {
		r.handler = requireBasicAuth(cfg.BasicAuthUserInfo, r.reg)
	}
	r.serve(ln)
	return r, nil
}

// requireBasicAuth answers 401 in the registry's error format unless the
// request carries userInfo's credentials.
func requireBasicAuth(userInfo string, next http.Handler) http.Handler {
	wantUser, wantPass, _ := strings.Cut(userInfo, ":")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(wantUser)) != 1 ||
			subtle.ConstantTimeCompare([]byte(pass), []byte(wantPass)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="SchemaRegistry"`)
			w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error_code":401,"message":"Unauthorized"}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (r *RegistryServer) serve(ln net.Listener) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.srv = &http.Server{Handler: r.handler, ReadHeaderTimeout: 5 * time.Second}
	srv := r.srv
	if r.tls != nil {
		ln = tls.NewListener(ln, r.tls)
	}
	go func() { _ = srv.Serve(ln) }()
}

// URL is the registry's base URL.
func (r *RegistryServer) URL() string {
	if r.tls != nil {
		return LocalURL("https", r.addr)
	}
	return LocalURL("http", r.addr)
}

// LocalURL is the URL of a server listening on addr, as this machine
// reaches it: a listener on every interface (":8080") is localhost.
func LocalURL(scheme, addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
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
