// Package inspect serves a read-only web page of what the playground holds,
// as Confluent Control Center shows a cluster: the topics' partitions and
// offsets, the consumer group's lag, the registry's subjects, the latest
// events decoded, the dead letters with the command that replays each, and
// one order's whole trail through both services' databases and the topic.
//
// It guarantees that it never writes. It reads through the clients the
// services use — kafka-go's protocol client (metadata, list offsets, fetch,
// offset fetch: it never joins the group, so it moves no partition and
// commits nothing), the registry's REST API with GET only, and PostgreSQL
// sessions opened with default_transaction_read_only — and it has no
// handler for any method but GET. Pages are rendered on the server with
// html/template; no JavaScript is built or needed.
package inspect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/ordersonkafka/orders/internal/event/eventcodec"
	"github.com/ordersonkafka/orders/internal/platform/kafkaconn"
	"github.com/ordersonkafka/orders/internal/platform/pgdb"
)

// Config is what the page reads. Every field but the defaulted ones is
// required.
type Config struct {
	OrdersDB     string   // order-api's database URL: orders, outbox, outbox_published, outbox_set_aside
	ProjectionDB string   // order-consumer's database URL: order_projection, processed_events, parked_events, customer_orders
	Brokers      []string // Kafka
	RegistryURL  string   // the Schema Registry's base URL
	// KafkaSecurity, when set, is how the services reach a secured broker
	// (TLS, SASL); RegistryAuth how they reach a secured registry.
	KafkaSecurity *kafkaconn.Security
	RegistryAuth  eventcodec.RegistryAuth
	Topic         string // the events' topic; default order-events
	DLQTopic      string // the dead-letter topic; default order-events.dlq
	Group         string // the consumer group whose lag is shown; default order-projector
	Latest        int    // how many of the latest events and dead letters are shown; default 50
	Timeout       time.Duration
	Logger        *slog.Logger // default slog.Default()
}

func (c *Config) defaults() {
	if c.Topic == "" {
		c.Topic = "order-events"
	}
	if c.DLQTopic == "" {
		c.DLQTopic = "order-events.dlq"
	}
	if c.Group == "" {
		c.Group = "order-projector"
	}
	if c.Latest <= 0 {
		c.Latest = 50
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every missing setting.
func (c Config) Validate() error {
	var errs []error
	if c.OrdersDB == "" {
		errs = append(errs, errors.New("inspect: OrdersDB is required"))
	}
	if c.ProjectionDB == "" {
		errs = append(errs, errors.New("inspect: ProjectionDB is required"))
	}
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("inspect: Brokers are required"))
	}
	if u, err := url.Parse(c.RegistryURL); c.RegistryURL == "" || err != nil || u.Host == "" {
		errs = append(errs, fmt.Errorf("inspect: RegistryURL %q is not a URL", c.RegistryURL))
	}
	return errors.Join(errs...)
}

// Page is the inspector: open it with New, serve it with Serve or Handler,
// release it with Close.
type Page struct {
	cfg                Config
	orders, projection *pgxpool.Pool
	kafka              *kafka.Client
	decoder            *eventcodec.Decoder
	http               *http.Client
}

// New opens read-only pools on both databases and the clients of Kafka and
// the registry. The databases must exist; their tables may not yet (a
// section whose table is missing says so when the page is read).
func New(ctx context.Context, cfg Config) (*Page, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Page{cfg: cfg, kafka: &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: cfg.Timeout},
		http: &http.Client{Timeout: cfg.Timeout}}
	if cfg.KafkaSecurity != nil {
		p.kafka = cfg.KafkaSecurity.Client(cfg.Brokers, cfg.Timeout)
	}
	var err error
	if cfg.RegistryAuth.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.RegistryAuth.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("inspect: registry CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("inspect: registry CA %s: no PEM certificate in it", cfg.RegistryAuth.TLSCAFile)
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
		p.http.Transport = t
	}
	if p.decoder, err = eventcodec.NewDecoder(eventcodec.DecoderConfig{URL: cfg.RegistryURL, Auth: cfg.RegistryAuth, Timeout: cfg.Timeout}); err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	if p.orders, err = pgdb.Open(ctx, readOnly(cfg.OrdersDB), 2); err != nil {
		return nil, fmt.Errorf("inspect: order-api's database: %w", err)
	}
	if p.projection, err = pgdb.Open(ctx, readOnly(cfg.ProjectionDB), 2); err != nil {
		p.orders.Close()
		return nil, fmt.Errorf("inspect: order-consumer's database: %w", err)
	}
	return p, nil
}

// readOnly makes every transaction of the sessions opened on dsn read-only,
// so that a mistake in this package is an error, never a write.
func readOnly(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn // pgdb.Open reports it
	}
	q := u.Query()
	q.Set("default_transaction_read_only", "on")
	q.Set("application_name", "playground-inspect")
	u.RawQuery = q.Encode()
	return u.String()
}

// Close releases the pools.
func (p *Page) Close() {
	p.orders.Close()
	p.projection.Close()
}

// Handler serves the overview at / and an order's trail at /orders/{id}.
func (p *Page) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", p.overview)
	mux.HandleFunc("GET /orders", func(w http.ResponseWriter, r *http.Request) {
		// The overview's form: /orders?id=X is /orders/X.
		http.Redirect(w, r, "/orders/"+url.PathEscape(r.URL.Query().Get("id")), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /orders/{id}", p.trail)
	return mux
}

// Serve serves the page on ln until ctx ends, then shuts down within a
// few seconds; it returns nil after that shutdown.
func (p *Page) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 4 * p.cfg.Timeout}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("inspect: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("inspect: shut down: %w", err)
	}
	return nil
}

func (p *Page) overview(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*p.cfg.Timeout)
	defer cancel()
	v := overviewView{Config: p.cfg, Refresh: 5, Now: time.Now().UTC()}
	if r.URL.Query().Get("refresh") == "off" {
		v.Refresh = 0
	}
	if s := r.URL.Query().Get("order"); s != "" {
		id, err := uuid.Parse(s)
		if err != nil {
			v.FilterError = fmt.Sprintf("%q is not an order ID (a UUID)", s)
		} else {
			v.Filter = id.String()
		}
	}
	v.Topics, v.TopicsError = p.topics(ctx)
	v.Lag, v.LagError = p.lag(ctx)
	v.Registry, v.RegistryError = p.registry(ctx)
	if v.FilterError == "" {
		v.Events, v.EventsError = p.events(ctx, v.Filter)
	}
	v.Letters, v.LettersError = p.letters(ctx, "")
	p.render(w, "overview", v)
}

func (p *Page) trail(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*p.cfg.Timeout)
	defer cancel()
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		p.render(w, "trail", trailView{Config: p.cfg, Error: fmt.Sprintf("%q is not an order ID (a UUID)", r.PathValue("id"))})
		return
	}
	p.render(w, "trail", p.readTrail(ctx, id))
}

func (p *Page) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		p.cfg.Logger.Warn("inspect: render", "page", name, "error", err)
	}
}
