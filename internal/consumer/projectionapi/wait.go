package projectionapi

import (
	"sync"

	"github.com/google/uuid"
)

// Versions tells waiting readers when an order's projection reached a
// version. The consumer calls Applied after each batch commits; GET
// /orders/{id}?min_version=N&wait=D then answers as soon as version N is
// there instead of the client polling. It only hears about this instance's
// partitions, so a waiting request also re-reads the database every
// RecheckInterval: with several consumer instances it still answers, a
// little later.
type Versions struct {
	mu      sync.Mutex
	waiters map[uuid.UUID][]waiter
	closed  chan struct{} // closed by Close
	once    sync.Once
}

type waiter struct {
	min  int64
	done chan struct{}
}

// NewVersions returns an empty Versions.
func NewVersions() *Versions {
	return &Versions{waiters: map[uuid.UUID][]waiter{}, closed: make(chan struct{})}
}

// Close ends every wait, now and later: the requests answer with what the
// projection holds. The service calls it when shutting down.
func (v *Versions) Close() { v.once.Do(func() { close(v.closed) }) }

// Applied reports that order id's projection is at version, committed.
func (v *Versions) Applied(id uuid.UUID, version int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	ws, ok := v.waiters[id]
	if !ok {
		return
	}
	kept := ws[:0]
	for _, w := range ws {
		if version >= w.min {
			close(w.done)
		} else {
			kept = append(kept, w)
		}
	}
	if len(kept) == 0 {
		delete(v.waiters, id)
	} else {
		v.waiters[id] = kept
	}
}

// wait returns a channel closed once id reaches min, and a function that
// stops waiting (always call it).
func (v *Versions) wait(id uuid.UUID, min int64) (<-chan struct{}, func()) {
	w := waiter{min: min, done: make(chan struct{})}
	v.mu.Lock()
	v.waiters[id] = append(v.waiters[id], w)
	v.mu.Unlock()
	return w.done, func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		ws := v.waiters[id]
		for i := range ws {
			if ws[i].done == w.done {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(v.waiters, id)
		} else {
			v.waiters[id] = ws
		}
	}
}
