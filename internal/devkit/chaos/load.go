package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/ordersonkafka/orders/internal/order"
)

// Outcomes of a request, as the client saw them.
const (
	Acked   = "acked"    // a 2xx answer: the API acknowledged the version
	InDoubt = "in_doubt" // no answer (timeout, reset, 5xx): applied or not, either is allowed
	Refused = "refused"  // a 4xx answer, or never sent (connection refused): must not have happened
	// Confirmed: no 2xx answered the request itself, but its retry was
	// refused because it was done, and a read of the order showed it done.
	Confirmed = "confirmed"
)

// Request is one logical request of the load and what came of it, after
// its retries: the client's own log, the first of the checker's three
// records.
type Request struct {
	Corr     string    `json:"corr"`     // X-Correlation-ID of every attempt; the events carry it
	Action   string    `json:"action"`   // place, pay, refund, cancel
	OrderID  uuid.UUID `json:"order_id"` // zero for a place that was never answered
	Version  int64     `json:"version"`  // acknowledged, or the version it would have made
	Outcome  string    `json:"outcome"`
	Attempts int       `json:"attempts"`
	At       time.Time `json:"at"` // when it ended
}

// eventType is the event a request's action makes.
var eventType = map[string]order.EventType{"place": order.EventPlaced, "pay": order.EventPaid, "refund": order.EventRefunded, "cancel": order.EventCancelled}

// load drives order lifecycles against the order-api replicas: place with
// an Idempotency-Key, then pay (then perhaps refund) or cancel, each change
// with If-Match. A request whose answer is lost is retried, to another
// replica: the same key for a place, the same If-Match for a change (a 412
// then means the first attempt did it, which a GET confirms).
type load struct {
	apis   []string
	rate   float64 // lifecycles started per second
	client *http.Client
	seed   uint64
	prefix string

	mu   sync.Mutex
	log  []Request
	errs []error // answers that break the API's contract
}

func (l *load) record(r Request) {
	r.At = time.Now()
	l.mu.Lock()
	l.log = append(l.log, r)
	l.mu.Unlock()
}

// Requests returns the log so far.
func (l *load) requests() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Request(nil), l.log...)
}

// run starts a lifecycle every 1/rate seconds until ctx ends, each in a
// goroutine of its own (so that lifecycles stuck retrying through a fault
// do not hold back the others), then waits for those under way: they
// take no new step once ctx has ended, and a request in flight is retried
// for up to retryFor to learn what came of it.
func (l *load) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(time.Duration(float64(time.Second) / l.rate))
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.lifecycle(ctx, rand.New(rand.NewPCG(l.seed, uint64(n))), n)
		}()
	}
}

// fail records an answer the API should never give.
func (l *load) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, fmt.Errorf(format, args...))
	}
}

// retryFor is how long a request is retried before it is left in doubt.
const retryFor = 20 * time.Second

type answer struct {
	status  int
	version int64
	order   orderJSON
}

type orderJSON struct {
	ID      uuid.UUID `json:"id"`
	Status  string    `json:"status"`
	Version int64     `json:"version"`
}

func (l *load) lifecycle(ctx context.Context, rnd *rand.Rand, n int) {
	corr := fmt.Sprintf("%s-%d", l.prefix, n)
	body := fmt.Sprintf(`{"customer_id":"%s","currency":"EUR","items":[{"sku":"SKU-%d","quantity":%d,"unit_price_minor":%d}]}`,
		corr, rnd.IntN(50), 1+rnd.IntN(3), 100+rnd.IntN(10000))
	place := Request{Corr: corr + "-place", Action: "place", Version: 1}
	ans, outcome, attempts := l.send(rnd, n, http.MethodPost, "/orders", body, map[string]string{"Idempotency-Key": corr}, place.Corr, nil)
	place.Outcome, place.Attempts = outcome, attempts
	if outcome == Acked {
		place.OrderID, place.Version = ans.order.ID, ans.version
	}
	l.record(place)
	if outcome != Acked {
		return
	}
	id, version := place.OrderID, place.Version
	var steps []string
	switch p := rnd.IntN(10); {
	case p < 4:
		steps = []string{"pay"}
	case p < 7:
		steps = []string{"pay", "refund"}
	case p < 9:
		steps = []string{"cancel"}
	}
	for _, action := range steps {
		hold(ctx, time.Duration(rnd.IntN(200))*time.Millisecond)
		if ctx.Err() != nil {
			return
		}
		field := "reason"
		if action == "pay" {
			field = "payment_reference"
		}
		req := Request{Corr: fmt.Sprintf("%s-%s", corr, action), Action: action, OrderID: id, Version: version + 1}
		path := "/orders/" + id.String() + "/" + action
		ans, outcome, attempts := l.send(rnd, n, http.MethodPost, path, fmt.Sprintf(`{%q:"chaos %s"}`, field, corr),
			map[string]string{"If-Match": strconv.Quote(strconv.FormatInt(version, 10))}, req.Corr,
			func(a answer) bool { return a.order.Version == version+1 })
		req.Outcome, req.Attempts = outcome, attempts
		if outcome == Acked {
			req.Version = ans.version
		}
		l.record(req)
		switch {
		case outcome == Acked:
			version = ans.version
		case outcome == Confirmed:
			// A retry was refused because the first attempt did it, as
			// a read showed: the lifecycle goes on from there.
			version = ans.order.Version
		default:
			return
		}
	}
}

// send makes one logical request, retrying what may not have been
// answered. confirm, for a change, is asked when a retry is refused with
// 412 or 409 after an attempt that may have succeeded: the order is read,
// and if confirm says the read shows the change, the request is in doubt
// (and ans holds the order read) rather than refused.
func (l *load) send(rnd *rand.Rand, n int, method, path, body string, headers map[string]string, corr string, confirm func(answer) bool) (ans answer, outcome string, attempts int) {
	deadline := time.Now().Add(retryFor)
	doubt := false
	backoff := 100 * time.Millisecond
	for attempts = 1; ; attempts++ {
		base := l.apis[(n+attempts)%len(l.apis)]
		a, err := l.do(method, base+path, body, headers, corr)
		switch {
		case err == nil && a.status >= 200 && a.status < 300:
			return a, Acked, attempts
		case err == nil && (a.status == http.StatusPreconditionFailed || a.status == http.StatusConflict) && doubt && confirm != nil:
			got, gerr := l.do(http.MethodGet, base+path[:strings.LastIndex(path, "/")], "", nil, corr)
			if gerr == nil && got.status == http.StatusOK && confirm(got) {
				return got, Confirmed, attempts
			}
			if gerr == nil && got.status == http.StatusOK {
				return got, Refused, attempts
			}
			// The read failed too: keep trying.
		case err == nil && a.status == http.StatusTooManyRequests:
			// Shed before it was handled: this attempt did nothing.
		case err == nil && a.status >= 400 && a.status < 500:
			if doubt {
				// A 4xx after a lost answer (a 422 for a key whose first
				// attempt was cut in the middle, say) leaves the first in doubt.
				return a, InDoubt, attempts
			}
			return a, Refused, attempts
		case err != nil && errors.Is(err, syscall.ECONNREFUSED):
			// Never reached a server: this attempt did nothing.
		default:
			// A timeout, a reset, a 5xx: the attempt may have been applied.
			doubt = true
		}
		if time.Now().After(deadline) {
			if doubt {
				return answer{}, InDoubt, attempts
			}
			return answer{}, Refused, attempts
		}
		time.Sleep(backoff/2 + time.Duration(rnd.Int64N(int64(backoff))))
		backoff = min(2*backoff, time.Second)
	}
}

func (l *load) do(method, url, body string, headers map[string]string, corr string) (answer, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return answer{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Correlation-ID", corr)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return answer{status: resp.StatusCode}, err
	}
	a := answer{status: resp.StatusCode}
	if resp.StatusCode < 300 {
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(&a.order); err != nil {
			return a, fmt.Errorf("%s %s: %d with a body that is not an order: %w", method, url, resp.StatusCode, err)
		}
		v, err := strconv.ParseInt(strings.Trim(resp.Header.Get("ETag"), `"`), 10, 64)
		if err != nil || v != a.order.Version {
			l.fail("%s %s: %d with ETag %q and body version %d", method, url, resp.StatusCode, resp.Header.Get("ETag"), a.order.Version)
		}
		a.version = a.order.Version
	}
	return a, nil
}
