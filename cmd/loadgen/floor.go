package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ordersonkafka/orders/internal/devkit/cpustat"
)

// -floor measures what this stack costs before any of the services' own
// work: the CPU of a bare net/http server answering a place-order body,
// decoded with encoding/json, with one pgx INSERT per request and without
// it, at -rate for -duration each, open loop, as make bench loads
// order-api. The server is this binary started again (floorServerEnv), so
// its CPU is its own; the INSERT goes to a temporary table of each pooled
// connection on -pg-url's server, so nothing is left behind. order-api's
// CPU per request is read against these figures.

// floorServerEnv, set to a PostgreSQL URL, makes loadgen the floor's server.
const floorServerEnv = "LOADGEN_FLOOR_SERVER"

type floorReport struct {
	Rate    float64      `json:"rate"`
	Seconds float64      `json:"seconds"`
	Runs    []floorRoute `json:"runs"`
}

type floorRoute struct {
	Route             string  `json:"route"`
	Requests          int     `json:"requests"`
	Errors            int     `json:"errors"`
	CPUSeconds        float64 `json:"cpu_seconds"`
	MicrosPerRequest  float64 `json:"cpu_us_per_request"`
	SecondsPer1000Req float64 `json:"cpu_seconds_per_1000_requests"`
}

func runFloor(ctx context.Context, o options, stdout io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), floorServerEnv+"="+o.pgURL)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("the floor's server did not start: %w", err)
	}
	base := "http://" + strings.TrimSpace(line)

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 4*o.concurrency, 4*o.concurrency
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	rep := floorReport{Rate: o.rate, Seconds: o.duration.Seconds()}
	for _, route := range []string{"/db", "/nodb"} {
		r, err := floorRun(ctx, client, base, route, o)
		if err != nil {
			return err
		}
		rep.Runs = append(rep.Runs, r)
	}
	if o.json {
		return json.NewEncoder(stdout).Encode(rep)
	}
	fmt.Fprintf(stdout, "bench-floor: a bare net/http server decoding a place-order body, open loop at %.0f requests/s, %s each\n", o.rate, o.duration)
	for _, r := range rep.Runs {
		what := "with one pgx INSERT per request"
		if r.Route == "/nodb" {
			what = "HTTP and JSON only"
		}
		fmt.Fprintf(stdout, "  %-32s %d requests (%d errors): %.1f µs of CPU per request, %.3f s per 1,000\n", what, r.Requests, r.Errors, r.MicrosPerRequest, r.SecondsPer1000Req)
	}
	return nil
}

// floorRun sends -rate requests a second to route for -duration and
// returns the server's CPU per request.
func floorRun(ctx context.Context, client *http.Client, base, route string, o options) (floorRoute, error) {
	cpu := func() (float64, error) {
		resp, err := client.Get(base + "/cpu")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strconv.ParseFloat(string(b), 64)
	}
	before, err := cpu()
	if err != nil {
		return floorRoute{}, err
	}
	body := `{"customer_id":"c-42","currency":"EUR","items":[{"sku":"BOOK-1","quantity":2,"unit_price_minor":1250}]}`
	jobs := make(chan struct{}, int(o.rate)+1)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, errs int
	)
	for range o.concurrency {
		wg.Go(func() {
			for range jobs {
				resp, err := client.Post(base+route, "application/json", strings.NewReader(body))
				good := err == nil && resp.StatusCode == http.StatusCreated
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				if good {
					ok++
				} else {
					errs++
				}
				mu.Unlock()
			}
		})
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / o.rate))
	end := time.After(o.duration)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-end:
			break loop
		case <-tick.C:
			select {
			case jobs <- struct{}{}:
			default: // every worker busy and the queue full: not sent
			}
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	after, err := cpu()
	if err != nil {
		return floorRoute{}, err
	}
	if ok == 0 {
		return floorRoute{}, fmt.Errorf("floor %s: no request succeeded (%d errors)", route, errs)
	}
	used := after - before
	return floorRoute{Route: route, Requests: ok, Errors: errs, CPUSeconds: round(used, 3),
		MicrosPerRequest: round(used/float64(ok)*1e6, 1), SecondsPer1000Req: round(used/float64(ok)*1000, 3)}, nil
}

// floorServer is the floor's server: it prints its address, then serves
// until its parent kills it.
func floorServer(pgURL string) error {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgURL)
	if err != nil {
		return err
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "CREATE TEMP TABLE floor (id bigserial PRIMARY KEY, customer_id text NOT NULL, body jsonb NOT NULL)")
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("PostgreSQL at -pg-url: %w", err)
	}
	type item struct {
		SKU            string `json:"sku"`
		Quantity       int    `json:"quantity"`
		UnitPriceMinor int64  `json:"unit_price_minor"`
	}
	type place struct {
		CustomerID string `json:"customer_id"`
		Currency   string `json:"currency"`
		Items      []item `json:"items"`
	}
	handler := func(db bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
			var p place
			if err == nil {
				err = json.Unmarshal(b, &p)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if db {
				if _, err := pool.Exec(r.Context(), "INSERT INTO floor (customer_id, body) VALUES ($1, $2)", p.CustomerID, b); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(b)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /db", handler(true))
	mux.HandleFunc("POST /nodb", handler(false))
	mux.HandleFunc("GET /cpu", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%f", cpustat.Self())
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	err = (&http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}).Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
